"""`opsmith worker` (make step calls for the runs of `executor: celery`) and `opsmith workers`."""

from __future__ import annotations

from typing import Annotated

import typer

from opsmith.cli.context import emit_json, err, out, state

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def worker_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="default: HOST:PID")] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, max=500, help="default: celery.concurrency")
    ] = None,
) -> None:
    """Make the step calls of runs driven elsewhere (`executor: celery`), until stopped (Ctrl-C, SIGTERM)."""
    from opsmith.distributed.worker import run_worker, worker_name
    from opsmith.services.workers import live_workers

    app = state(ctx).app
    live_workers(app)  # says plainly when the executor is local
    assert app.broker is not None  # wired with step_calls
    chosen = name or worker_name()
    threads = concurrency or app.config.celery.concurrency
    err.print(f"worker {chosen}: {threads} at once, from {app.broker.where}")
    run_worker(app, name=chosen, concurrency=threads)


def workers_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The live workers: heard from within celery.lost_after_seconds."""
    from opsmith.services.workers import live_workers

    found = live_workers(state(ctx).app)
    if as_json:
        emit_json(
            [
                {
                    "name": w.name,
                    "host": w.host,
                    "pid": w.pid,
                    "concurrency": w.concurrency,
                    "started_at": w.started_at.isoformat(),
                    "heartbeat_at": w.heartbeat_at.isoformat(),
                }
                for w in found
            ]
        )
        return
    if not found:
        out.print("no live workers: start one with `opsmith worker`")
        return
    for w in found:
        out.print(f"{w.name}  {w.concurrency} at once  up since {w.started_at:%Y-%m-%d %H:%M:%S} UTC")

"""Notifications through the real outbox (SQLite), to real local receivers: an aiosmtpd SMTP server
with STARTTLS (a test CA made with `cryptography`) and AUTH, and an HTTP receiver on loopback for
the Slack and the signed webhook channels. The exact requests are checked; an unreachable SMTP
server and a receiver answering 500 become recorded failures with their reasons and retry times,
then deliveries once they work; a new process over the same database loses nothing; two workers
never send a row twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from typer.testing import CliRunner

from opsmith.bootstrap import App, bootstrap
from opsmith.cli.app import app as cli_app
from opsmith.domain.intent import Intent
from opsmith.domain.notifications import DeliveryStatus, signature_valid
from opsmith.domain.notify_messages import APPROVE_ACTION, REJECT_ACTION
from opsmith.domain.plan import PlanStatus
from opsmith.services.notifications import deliver_due, notify, notify_plan, notify_run
from tests.conftest import OS_USER
from tests.fakes import FakeClock
from tests.fleet.wsman import Certificates
from tests.integration.test_cli import opsmith
from tests.unit.test_explain import CANARY, the_plan, the_run

pytestmark = pytest.mark.integration

HOOK_SECRET = "hook-secret-7c21e0"
SMTP_PASSWORD = "smtp-pw-52d9"
CRASH = "CrashLoopBackOff: Error: Cannot find module './config/production.json'"


# --- the test certificate: a CA and a server certificate for 127.0.0.1 -----------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throwaway CA and a server certificate it signed for 127.0.0.1, as the WinRM tests use."""
    return Certificates.make(tmp_path_factory.mktemp("certs"), name="opsmith test CA")


# --- an SMTP server: STARTTLS required, AUTH required ---------------------------------------


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], bytes, str | None]] = field(
        default_factory=list
    )  # from, to, data, login
    tls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tls.append(session.ssl is not None)
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login))
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ops", SMTP_PASSWORD.encode())
    return AuthResult(success=ok, auth_data=data if ok else None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_port() -> int:
    return free_port()


def start_smtp(port: int, certs: Certificates) -> tuple[Controller, Mailbox]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticate,
        ready_timeout=5.0,
    )
    controller.start()
    return controller, mailbox


@pytest.fixture
def smtp(smtp_port: int, certs: Certificates) -> Iterator[Mailbox]:
    controller, mailbox = start_smtp(smtp_port, certs)
    yield mailbox
    controller.stop()


# --- an HTTP receiver for Slack and the webhook ---------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # two workers' sends may arrive at once


class Receiver:
    """Records each POST; answers the statuses in `answers` first, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    if status == 200:
                        receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"receiver is sick")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


# --- the project ----------------------------------------------------------------------------


def write_project(tmp_path: Path, receiver: Receiver, smtp_port: int, certs: Certificates) -> Path:
    (tmp_path / "opsmith.yaml").write_text(
        f"""
state_dir: {tmp_path / ".opsmith"}
rbac:
  allow_as: true
  users: {{{OS_USER}: admin, vic: viewer}}
api: {{public_url: "https://opsmith.example.com"}}
notifications:
  max_attempts: 4
  backoff_initial: 30
  backoff_max: 600
  send_timeout: 3
  channels:
    chat: {{type: slack, webhook_url: "${{SLACK_URL}}"}}
    hook: {{type: webhook, url: "{receiver.url}/hook", secret: "${{HOOK_SECRET}}"}}
    mail:
      type: email
      host: 127.0.0.1
      port: {smtp_port}
      username: ops
      password: "${{SMTP_PASSWORD}}"
      from: opsmith@example.com
      to: [oncall@example.com]
      ca_bundle: {certs.ca_file}
  rules:
    - {{events: [approval_requested], channels: [chat]}}
    - {{events: [rolled_back], environments: [production], channels: [chat, hook, mail]}}
    - {{events: [succeeded], channels: [hook]}}
"""
    )
    return tmp_path


def environ(receiver: Receiver) -> dict[str, str]:
    return {
        "SLACK_URL": f"{receiver.url}/slack/T0/B0/secret-path",
        "HOOK_SECRET": HOOK_SECRET,
        "SMTP_PASSWORD": SMTP_PASSWORD,
    }


@pytest.fixture
def project(tmp_path: Path, receiver: Receiver, smtp_port: int, certs: Certificates) -> Path:
    return write_project(tmp_path, receiver, smtp_port, certs)


def open_app(project: Path, receiver: Receiver, clock: FakeClock | None = None) -> App:
    app = bootstrap(project / "opsmith.yaml", environ(receiver))
    return app if clock is None else replace(app, clock=clock)


def production_plan() -> Any:
    intent = Intent(request="deploy", action="deploy", environment="production")
    return the_plan().model_copy(update={"intent": intent, "request": "Deploy my-application to production"})


def deliver(app: App, owner: str = "worker-1") -> list[Any]:
    return asyncio.run(deliver_due(app, owner=owner))


# --- the tests ------------------------------------------------------------------------------


def test_a_rolled_back_run_reaches_slack_the_signed_webhook_and_the_mailbox(
    project: Path, receiver: Receiver, smtp: Mailbox
) -> None:
    app = open_app(project, receiver)
    queued = notify_run(app, production_plan(), the_run(CRASH))
    assert sorted(d.channel for d in queued) == ["chat", "hook", "mail"]
    assert {d.status for d in deliver(app)} == {DeliveryStatus.DELIVERED}

    (slack,) = receiver.on("/slack/T0/B0/secret-path")
    assert slack.headers["Content-Type"] == "application/json"
    payload = json.loads(slack.body)
    assert payload["text"].startswith("Run rolled back: plan-1 (production)")
    sections = json.dumps(payload["blocks"])
    assert "production.json" in sections and "https://opsmith.example.com/runs/run-1" in sections

    (hook,) = receiver.on("/hook")
    assert signature_valid(HOOK_SECRET.encode(), hook.body, hook.headers["X-Opsmith-Signature"])
    assert not signature_valid(b"another key", hook.body, hook.headers["X-Opsmith-Signature"])
    body = json.loads(hook.body)
    assert str(body["timestamp"]) == hook.headers["X-Opsmith-Timestamp"]
    assert body["id"] == hook.headers["X-Opsmith-Delivery"] and body["event"] == "rolled_back"
    assert body["notice"]["run_id"] == "run-1" and "production.json" in body["notice"]["root_cause"]

    ((sender, to, data, login),) = smtp.messages
    assert (sender, to, login, smtp.tls) == ("opsmith@example.com", ["oncall@example.com"], "ops", [True])
    mail = message_from_bytes(data)
    assert mail["Subject"] == "[opsmith] Run rolled back: plan-1 (production)"
    text = mail.get_payload(decode=True).decode()
    assert "Root cause:" in text and "production.json" in text and "opsmith explain run-1" in text
    everything = json.dumps([r.body.decode() for r in receiver.requests]) + data.decode()
    for secret in (HOOK_SECRET, SMTP_PASSWORD, CANARY):
        assert secret not in everything


def test_an_approval_request_carries_buttons_naming_the_plan_and_its_hash(
    project: Path, receiver: Receiver
) -> None:
    app = open_app(project, receiver)
    plan = production_plan().model_copy(
        update={"status": PlanStatus.PENDING_APPROVAL, "requires_approval": True, "hash": "sha256:feed"}
    )
    assert [d.channel for d in notify_plan(app, plan)] == ["chat"]
    deliver(app)
    (slack,) = receiver.requests
    (actions,) = [b for b in json.loads(slack.body)["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["text"]["text"]) for e in actions["elements"]] == [
        (APPROVE_ACTION, "Approve"),
        (REJECT_ACTION, "Reject"),
    ]
    assert {json.loads(e["value"])["plan_hash"] for e in actions["elements"]} == {"sha256:feed"}


def test_an_unreachable_smtp_server_and_a_sick_receiver_are_recorded_then_delivered(
    project: Path, receiver: Receiver, smtp_port: int, certs: Certificates
) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC))
    app = open_app(project, receiver, clock)
    receiver.answers = [500, 500]  # the Slack post and the webhook both fail once
    notify_run(app, production_plan(), the_run(CRASH))
    first = {d.channel: d for d in deliver(app)}
    assert {d.status for d in first.values()} == {DeliveryStatus.PENDING}
    assert "could not be reached" in (first["mail"].last_error or "")
    assert "answered 500" in (first["hook"].last_error or "") and "receiver is sick" in (
        first["hook"].last_error or ""
    )
    for delivery in first.values():
        assert delivery.attempts == 1
        assert (
            clock.now() + dt.timedelta(seconds=15)
            <= delivery.next_attempt_at
            <= clock.now() + dt.timedelta(seconds=30)
        )
    stored = {d.channel: d for d in app.outbox.recent()}  # type: ignore[union-attr]
    assert (
        stored["mail"].last_error == first["mail"].last_error and stored["mail"].next_attempt_at is not None
    )
    assert SMTP_PASSWORD not in json.dumps([d.model_dump(mode="json") for d in stored.values()])

    assert deliver(app) == []  # nothing is due yet: no retry comes straight back
    controller, mailbox = start_smtp(smtp_port, certs)
    try:
        clock.advance(31)
        second = deliver(app)
        assert {d.status for d in second} == {DeliveryStatus.DELIVERED} and len(second) == 3
        assert len(mailbox.messages) == 1 and len(receiver.requests) == 2
    finally:
        controller.stop()
    listed = app.outbox.recent()  # type: ignore[union-attr]
    assert {(d.status, d.attempts, d.last_error) for d in listed} == {(DeliveryStatus.DELIVERED, 2, None)}


def test_a_new_process_over_the_same_database_sends_what_the_last_one_left(
    project: Path, receiver: Receiver
) -> None:
    clock = FakeClock(dt.datetime.now(dt.UTC))
    before = open_app(project, receiver, clock)
    notify(before, "succeeded", "run-a", {"summary": "run-a succeeded", "plan_id": "plan-a"})
    notify(before, "succeeded", "run-b", {"summary": "run-b succeeded", "plan_id": "plan-b"})
    # One row was claimed by a worker that died while sending: its lease must pass first.
    assert before.outbox is not None
    (held,) = before.outbox.claim_due("dead-worker", clock.now(), limit=1, lease_seconds=60)
    assert before.database is not None
    before.database.dispose()

    after = open_app(project, receiver, clock)
    (sent,) = deliver(after)
    assert sent.id != held.id and sent.status is DeliveryStatus.DELIVERED
    clock.advance(61)
    (resent,) = deliver(after)
    assert resent.id == held.id and resent.attempts == 2 and resent.status is DeliveryStatus.DELIVERED
    assert sorted(json.loads(r.body)["id"] for r in receiver.on("/hook")) == sorted([sent.id, held.id])
    assert deliver(after) == []


def test_two_workers_never_send_the_same_row(project: Path, receiver: Receiver) -> None:
    first, second = open_app(project, receiver), open_app(project, receiver)
    for number in range(24):
        notify(first, "succeeded", f"run-{number}", {"summary": "ok", "plan_id": f"plan-{number}"})
    results: dict[str, list[Any]] = {}

    def work(name: str, app: App) -> None:
        found: list[Any] = []
        for _ in range(6):  # several rounds each, at once: batches of 20 overlap
            found += asyncio.run(deliver_due(app, owner=name))
        results[name] = found

    threads = [threading.Thread(target=work, args=(n, a)) for n, a in (("w1", first), ("w2", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ids = [json.loads(r.body)["id"] for r in receiver.on("/hook")]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert sorted(d.id for found in results.values() for d in found) == sorted(ids)
    assert {d.status for d in first.outbox.recent(limit=100)} == {DeliveryStatus.DELIVERED}  # type: ignore[union-attr]


def test_only_an_admin_retries_a_given_up_delivery_from_the_cli(
    project: Path, receiver: Receiver, root_logging: None
) -> None:
    app = open_app(project, receiver)
    receiver.answers = [404]
    (queued,) = notify(app, "succeeded", "run-z", {"summary": "ok", "plan_id": "plan-z"})
    (failed,) = deliver(app)
    assert failed.status is DeliveryStatus.FAILED and "answered 404" in (failed.last_error or "")
    env = {**os.environ, **environ(receiver)}
    # Through the installed command: the refusal's exit code and message.
    refused = opsmith(project, "--as", "vic", "notifications", "retry", queued.id, env=env)
    assert refused.returncode == 2 and "admin" in refused.stderr.lower()
    # The rest in this process: the same commands, without a process' start-up each.
    runner, config = CliRunner(), ["--config", str(project / "opsmith.yaml")]
    listed = runner.invoke(cli_app, [*config, "notifications", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    ((row,),) = [json.loads(listed.stdout)]
    assert (row["id"], row["status"], row["attempts"], row["next_attempt_at"]) == (
        queued.id,
        "failed",
        1,
        None,
    )
    assert "answered 404 Not Found: receiver is sick" in row["reason"]
    retried = runner.invoke(cli_app, [*config, "notifications", "retry", queued.id, "--json"], env=env)
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout)["status"] == "pending"
    sent = runner.invoke(cli_app, [*config, "notify", "deliver", "--json"], env=env)
    assert sent.exit_code == 0, sent.output
    assert [(d["id"], d["status"]) for d in json.loads(sent.stdout)] == [(queued.id, "delivered")]
    assert app.outbox is not None and app.outbox.get(queued.id).status is DeliveryStatus.DELIVERED


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The CLI, run in this process, logs to its project's file from the root logger: undone after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)

"""What happens after a run settles, beyond telling people: the follow-ups of a failure.

`after_settle` is called by services.running once a run reaches a final status and its plan is
saved. Each follow-up is its own service; a follow-up that cannot be done is logged by it and never
undoes the settled run.
"""

from __future__ import annotations

from opsmith.bootstrap import App
from opsmith.domain.plan import Plan
from opsmith.engine.state import RunState

__all__ = ["after_settle"]


def after_settle(app: App, plan: Plan, state: RunState) -> None:
    """The follow-ups of a run that reached a final status (called once per settle; each follow-up
    is itself idempotent, since a run may be settled again by a resume)."""
    from opsmith.services.notifications import notify_run

    notify_run(app, plan, state)  # queued once per run, however often it is settled
    from opsmith.services.issues import after_run

    after_run(app, plan, state)  # recorded once per run in the built-in tracker, then mirrored on GitHub
    from opsmith.services.tasks import task_for_failed_run

    task_for_failed_run(app, plan, state)  # one emergency task per failed production run

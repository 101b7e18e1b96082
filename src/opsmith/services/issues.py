"""Issues for failures: a run that failed or was rolled back, in an environment `issues.environments`
names, becomes an issue of the built-in tracker, one open issue per failure fingerprint, mirrored on
GitHub when `issues.github` is set.

The built-in tracker is written first, in one transaction, and only then is GitHub asked: a first
failure opens an issue, a repeat while it is open comments on it (its occurrence count, the new run
and its evidence), and a repeat after it was closed reopens it or opens a new one, as
`issues.on_recurrence` says. Whether the GitHub copy was closed is read just before a repeat is
mirrored, so a close made on GitHub counts even when GitHub was unreachable at the time of the failure.

Mirroring happens right away when GitHub answers; otherwise the issue stays pending with the reason
and `sync_issues` tries again with exponential backoff (`opsmith serve` every issues.sync_seconds,
`opsmith tracker sync` once). A refusal (401, 403, 404, 422) is not retried: the issue is marked
failed with GitHub's reason until `opsmith tracker sync --failed` after the configuration is fixed.
A worker that stops between GitHub's answer and recording it makes the next attempt repeat that
request (GitHub has no idempotency keys): at worst a comment or an issue twice, never none.

Every text that leaves (title, body, comments, reasons) is redacted of the secret values opsmith
knows: those of the MCP servers' and channels' references, and the GitHub token.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsmith.bootstrap import App
from opsmith.domain.errors import OpsmithError, UsageError
from opsmith.domain.identity import Action, Identity
from opsmith.domain.issues import (
    Issue,
    IssueState,
    IssueUpdate,
    Occurrence,
    Recurrence,
    SyncState,
    TrackerError,
    UpdateKind,
    occurrence_of,
)
from opsmith.domain.notifications import backoff
from opsmith.domain.plan import Plan
from opsmith.domain.redaction import Redactor
from opsmith.engine.state import RunState, RunStatus

__all__ = [
    "FILED",
    "after_run",
    "close_issue",
    "drain",
    "get_issue",
    "issue_for_run",
    "list_issues",
    "record_failure",
    "sync_issue",
    "sync_issues",
]

if TYPE_CHECKING:
    from opsmith.ports import IssueStore

_log = logging.getLogger(__name__)

FILED = frozenset({RunStatus.FAILED, RunStatus.ROLLED_BACK})  # the run statuses that become issues
_syncing: set[asyncio.Task[Any]] = set()  # mirrors begun by after_run, held until they end


def after_run(app: App, plan: Plan, state: RunState) -> Issue | None:
    """The follow-up of a settled run (services.incidents.after_settle): record it, then mirror it
    on GitHub without holding up the caller. The issue, or None when the run files none."""
    issue = record_failure(app, plan, state)
    if issue is not None and app.issue_tracker is not None:
        _soon(sync_issue(app, issue.id))
    return issue


def record_failure(app: App, plan: Plan, state: RunState) -> Issue | None:
    """Record a failed or rolled-back run in the built-in tracker (once per run). The issue it went
    to; None when it files no issue (not failed, no tracker, environment not configured) or was
    recorded already. A store that cannot be written is logged, never raised: an issue must not
    undo the settled run it tells of."""
    settings = app.config.issues
    if state.status not in FILED or app.issues is None or not settings.applies_to(plan.intent.environment):
        return None
    try:
        occurrence = _occurrence(app, plan, state)
        sync = SyncState.LOCAL if app.issue_tracker is None else SyncState.PENDING
        issue = app.issues.record(occurrence, on_recurrence=Recurrence(settings.on_recurrence), sync=sync)
    except OpsmithError as error:
        _log.error("could not record the failure of run %s as an issue: %s", state.run_id, error)
        return None
    if issue is not None:
        _log.info("run %s is issue %s (occurrence %s)", state.run_id, issue.id, issue.occurrences)
    return issue


def issue_for_run(app: App, run_id: str) -> Issue | None:
    """The issue a run's failure was recorded in, if any."""
    return None if app.issues is None else app.issues.for_run(run_id)


def list_issues(
    app: App, *, state: IssueState | None = None, limit: int = 50, offset: int = 0
) -> list[Issue]:
    """The built-in tracker's issues, the most recently changed first."""
    return [] if app.issues is None else app.issues.recent(state, limit=limit, offset=offset)


def get_issue(app: App, issue_id: int) -> Issue:
    """One issue with its updates (what was mirrored, what waits); UnknownIssueError if none."""
    return _store(app).get(issue_id, with_updates=True)


def close_issue(app: App, identity: Identity, issue_id: int) -> Issue:
    """Close an issue of the built-in tracker (one not mirrored on GitHub: that one is closed on
    GitHub, where opsmith reads it). A repeat then follows issues.on_recurrence. Audited."""
    from opsmith.services.access import require

    require(app, identity, Action.EXECUTE, hint="ask someone who may run plans to close the issue")
    store = _store(app)
    issue = store.get(issue_id)
    if issue.external is not None:
        raise UsageError(
            f"issue {issue_id} is mirrored as GitHub issue #{issue.external.number}: close it there",
            hint=f"close {issue.external.url or 'it on GitHub'}; opsmith reads the state at the next repeat",
        )
    closed = store.close(issue_id, _now(app))
    app.audit.append(identity.user, "issue.closed", f"issue-{issue_id}", {"fingerprint": issue.fingerprint})
    return closed


async def sync_issues(app: App, *, include_failed: bool = False) -> list[Issue]:
    """Mirror the issues whose next attempt is due (up to issues.batch), one after another (GitHub
    asks clients not to create content in parallel); `include_failed` also retries refused ones.
    The issues as they stand after this attempt."""
    if app.issues is None or app.issue_tracker is None:
        return []
    owner = f"issues-{secrets.token_hex(4)}"
    due = app.issues.due(_now(app), limit=app.config.issues.batch, include_failed=include_failed)
    done: list[Issue] = []
    for issue_id in due:
        found = await sync_issue(app, issue_id, owner=owner, include_failed=include_failed)
        if found is not None:
            done.append(found)
    return done


async def sync_issue(
    app: App, issue_id: int, *, owner: str | None = None, include_failed: bool = False
) -> Issue | None:
    """Mirror one issue's waiting updates on GitHub now, under a lease; the issue afterwards, or
    None when there was nothing to do (not configured, mirrored, held by another worker)."""
    store, tracker = app.issues, app.issue_tracker
    if store is None or tracker is None:
        return None
    owner = owner or f"issues-{secrets.token_hex(4)}"
    settings = app.config.issues
    claimed = store.claim(
        issue_id, owner, _now(app), lease_seconds=settings.lease_seconds, include_failed=include_failed
    )
    if claimed is None:
        return None
    try:
        others = await _mirror(app, claimed, owner)
    except TrackerError as error:
        return _record_failure(app, claimed, owner, error)
    settled = store.settle(issue_id, owner, _now(app), error=None, next_attempt_at=None)
    for other in others:  # a repeat after a close on GitHub that became a new issue
        await sync_issue(app, other, owner=owner)
    return settled


async def drain(timeout: float = 30.0) -> None:
    """Wait (at most `timeout` seconds) for the mirrors `after_run` began in this event loop."""
    loop = asyncio.get_running_loop()
    mine = [t for t in _syncing if t.get_loop() is loop and not t.done()]
    if mine:
        await asyncio.wait(mine, timeout=timeout)


async def _mirror(app: App, issue: Issue, owner: str) -> list[int]:
    """Send the issue's waiting updates in order, recording each as it is accepted. The ids of
    other issues that repeats moved to (a close found on GitHub, on_recurrence: new)."""
    store, tracker = _store(app), app.issue_tracker
    assert tracker is not None
    on_recurrence = Recurrence(app.config.issues.on_recurrence)
    external = issue.external
    pending: list[IssueUpdate] = list(issue.updates)
    others: list[int] = []
    while pending:
        update = pending.pop(0)
        if external is None:
            external = await tracker.open(issue.title, issue.body, issue.labels)
            opening = update.kind is UpdateKind.OPEN
            store.linked(issue.id, external, update.id if opening else None, _now(app))
            _log.info("issue %s is GitHub issue #%s", issue.id, external.number)
            if opening:
                continue
        if update.kind is UpdateKind.OPEN:
            store.mirrored(update.id, _now(app))
        elif update.kind is UpdateKind.COMMENT:
            if await tracker.state(external.number) is IssueState.CLOSED:
                moved = store.closed_elsewhere(issue.id, _now(app), on_recurrence=on_recurrence)
                others += [m.id for m in moved if m.id != issue.id]
                again = store.claim(issue.id, owner, _now(app), lease_seconds=app.config.issues.lease_seconds)
                pending = [] if again is None else list(again.updates)
                continue
            await tracker.comment(external.number, update.body)
            store.mirrored(update.id, _now(app))
        else:
            await tracker.reopen(external.number)
            await tracker.comment(external.number, update.body)
            store.mirrored(update.id, _now(app))
    return others


def _record_failure(app: App, issue: Issue, owner: str, error: TrackerError) -> Issue:
    settings = app.config.issues
    now = _now(app)
    reason = _redactor(app).text(str(error))
    next_at: datetime | None = None
    if error.retryable:
        wait = backoff(
            issue.sync_attempts + 1,
            initial=settings.backoff_initial,
            maximum=settings.backoff_max,
            draw=random.random(),
        )
        next_at = now + timedelta(seconds=max(wait, error.retry_after or 0.0))
        _log.warning("issue %s not mirrored yet, next at %s: %s", issue.id, f"{next_at:%H:%M:%S}", reason)
    else:
        _log.error("issue %s not mirrored, and not retried until the cause is fixed: %s", issue.id, reason)
    return _store(app).settle(issue.id, owner, now, error=reason, next_attempt_at=next_at)


def _occurrence(app: App, plan: Plan, state: RunState) -> Occurrence:
    from opsmith.engine.run_evidence import recorded_artifacts
    from opsmith.services.explain import analysis_of, rules_of

    redactor = _redactor(app)
    notes: list[str] = []
    try:
        rules = rules_of(app)
    except OpsmithError as error:  # a broken rule file must not keep the failure unrecorded
        rules, notes = [], [f"the root-cause rules were not read: {error.message}"]
    analysis = analysis_of(
        rules, plan, state, recorded_artifacts(plan, state, redactor), notes, redactor=redactor
    )
    base = app.config.api.public_url
    found = occurrence_of(
        analysis,
        subject=plan.intent.subjects[0] if plan.intent.subjects else plan.playbook,
        environment=plan.intent.environment,
        labels=list(app.config.issues.labels),
        link=None if base is None else f"{base.rstrip('/')}/runs/{state.run_id}",
        at=_now(app),
    )
    texts = {"title": found.title, "body": found.body, "evidence": found.evidence}
    return found.model_copy(update={k: redactor.text(v) for k, v in texts.items()})


def _redactor(app: App) -> Redactor:
    from opsmith.services.known_secrets import secret_values

    return Redactor(secret_values(app))


def _soon(work: Coroutine[Any, Any, Issue | None]) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_quietly(work))  # called outside an event loop: mirror now, bounded by the timeout
        return
    task = loop.create_task(_quietly(work))
    _syncing.add(task)
    task.add_done_callback(_syncing.discard)


async def _quietly(work: Coroutine[Any, Any, Issue | None]) -> None:
    try:
        await work
    except Exception:  # a bug must not surface in the run that settled; the lease lets a sync retry
        _log.exception("mirroring an issue failed unexpectedly; `opsmith tracker sync` tries again")


def _store(app: App) -> IssueStore:
    if app.issues is None:
        raise UsageError("this opsmith keeps no issues", hint="configure issues: in opsmith.yaml")
    return app.issues


def _now(app: App) -> datetime:
    return app.clock.now().astimezone(UTC)

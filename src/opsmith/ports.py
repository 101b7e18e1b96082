"""The ports: what the services and the engine need from the outside world, as small Protocols.

Each has one real adapter, named only in `opsmith.bootstrap`, and an in-memory fake under
`tests/fakes.py` that the unit tests of the services use:

    port           real adapter                          what it holds
    ToolProvider   tools.mcp.ServerPool, tools.hosts      tools discovered and called (MCP, and the fleet)
    ToolSource     bootstrap.McpToolSource               opens a ToolProvider over the wanted servers
    HostShell      tools.hosts.shells.Shells             one script on one host (SSH or WinRM)
    ServerHost     tools.mcp.warm.WarmServers            a ToolSource kept running (`opsmith serve`)
    PlanStore      store.plans.PlanRepository            plans
    ApprovalStore  store.access.ApprovalRepository       approvals pinned to plan hashes
    RoleStore      store.access.RoleRepository           role changes an admin made
    TokenStore     store.tokens.TokenRepository          bearer tokens (hashes of their secrets), signed
    InventoryStore store.inventory.InventoryRepository   the fleet's groups and hosts as last imported, signed
    SecretVault    store.vault.SecretRepository          credentials for hosts, encrypted (AES-256-GCM)
    AuditTrail     store.audit.AuditLog                  the hash-chained audit trail
    RunJournal     store.runs.RunRepository              runs, their events, leases (one tx per change)
    ServerRegistry store.servers.ServerRepository        servers an operator stopped, the last catalog
    Executor       engine.local.LocalExecutor            drives one run: schedules, calls, rolls back
    Clock          bootstrap.SystemClock                 the time
    NotificationStore  store.notifications.NotificationRepository  the outbox of notifications, leased
    NotificationSender tools.notify.ChannelSenders       Slack, signed webhooks, e-mail over SMTP
    WebhookStore   store.webhooks.WebhookRepository      webhook deliveries (each id once), re-plan records
    IssueStore     store.issues.IssueRepository          the built-in tracker: issues per failure fingerprint
    IssueTracker   tools.issues.github.GithubIssues      an external tracker (GitHub) they are mirrored on
    TaskStore          store.tasks.TaskRepository        tasks, agents and the task log (compare-and-set)
    ChatDecisionStore  store.chat.ChatDecisionRepository  Slack decisions, one per user and plan version
    ChatResponder      tools.notify.slack_responses.SlackResponder  POSTs to a Slack click's response_url
    EventWakeups       store.wakeups.PostgresWakeups     LISTEN/NOTIFY: a run has new events (PostgreSQL)
    StepCallStore      distributed.store.StepCallRepository  step calls handed to workers, and the workers
    Broker             distributed.broker.CeleryBroker   asks a worker (Celery over Redis) to make a step call
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from opsmith.domain.agents import Agent
from opsmith.domain.approval import Approval
from opsmith.domain.audit import AuditEntry, Head, Verification
from opsmith.domain.call_stats import CallStats
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.hosts import Credential, CredentialKind, Host, HostResult
from opsmith.domain.identity import Identity, Permission
from opsmith.domain.inventory import Inventory, InventorySource
from opsmith.domain.issues import (
    ExternalRef,
    Issue,
    IssueState,
    Occurrence,
    Recurrence,
    SyncState,
    UpdateKind,
)
from opsmith.domain.journal import AuditNote, Lease, RunSummary
from opsmith.domain.notifications import Delivery, DeliveryStatus
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.push import DeliveryOutcome, DeliveryRecord, ReplanRecord
from opsmith.domain.results import ToolResult
from opsmith.domain.scripts import Script
from opsmith.domain.servers import RecordedServer, ServerStatus
from opsmith.domain.slack import ChatDecision
from opsmith.domain.step_calls import CallStatus, StepCall, WorkerInfo
from opsmith.domain.tasks import Task, TaskLogEntry, TaskStatus
from opsmith.domain.tokens import TokenInfo
from opsmith.domain.vault import KeyRotation, SecretInfo
from opsmith.engine.events import RunEvent
from opsmith.engine.settings import ExecutionSettings
from opsmith.engine.state import RunState, RunStatus

if TYPE_CHECKING:
    from opsmith.config import ChannelConfig

Listener = Callable[[RunEvent], None]
# How far a call that fans out (one command on every host of a group) has got: its counts
# (total, completed, failed, pending), the host last finished and, as `row`, that host's outcome
# (host, ok and short, bounded fields; never a secret). Called often; it must not block.
Progress = Callable[[Mapping[str, Any]], None]


class ToolProvider(Protocol):
    """Discovers tools and calls them. The real adapter is `opsmith.tools.mcp.ServerPool`."""

    @property
    def catalog(self) -> Catalog: ...

    def statuses(self) -> list[ServerStatus]: ...

    async def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        progress: Progress | None = None,
        finished: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ToolResult:
        """Call one tool; raises ToolCallError / ServerUnavailableError / ToolArgumentsError.
        `progress` hears how far a call that fans out over hosts has got (others never call it).
        `finished`: the rows (as `progress` reported them), by host name, of hosts an earlier,
        interrupted attempt of the same call finished; the call does not contact them again, and its
        answer holds their rows with the new ones. A tool that does not fan out refuses a non-empty one."""
        ...


class FleetProvider(ToolProvider, Protocol):
    """A ToolProvider that holds connections (the fleet's `hosts`): `close` ends them."""

    async def close(self) -> None: ...


class HostShell(Protocol):
    """Runs one script on one host and puts files there, over the host's own connection (SSH for
    Linux, WinRM for Windows). Failures come back as a HostResult's `failure`, never raised."""

    async def run_script(
        self, host: Host, credential: Credential, script: Script, *, timeout: float
    ) -> HostResult: ...

    async def upload(
        self, host: Host, credential: Credential, data: bytes, remote_path: str, *, timeout: float
    ) -> HostResult: ...

    async def close(self) -> None: ...


class ToolSource(Protocol):
    """Starts the providers of the named servers (all when None) and stops them on exit."""

    def open(self, names: Sequence[str]) -> AbstractAsyncContextManager[ToolProvider]: ...


class ServerHost(ToolSource, Protocol):
    """A ToolSource whose servers stay up between uses (`opsmith serve`)."""

    async def reconcile(self, wanted: Iterable[str]) -> list[ServerStatus]:
        """Run exactly the `wanted` servers: start the missing ones, stop the others."""
        ...

    def statuses(self) -> list[ServerStatus]:
        """Every configured server's status as it is now (nothing started for the answer)."""
        ...

    async def close(self) -> None: ...


class PlanStore(Protocol):
    """Plans; `save` signs what it writes (id, hash, requester, status) with the store's seal."""

    def save(self, plan: Plan) -> None: ...

    def get(self, plan_id: str) -> Plan:
        """The plan; UnknownPlanError when there is none."""
        ...

    def list(self, status: PlanStatus | None = None, limit: int = 50, offset: int = 0) -> list[Plan]:
        """Newest first."""
        ...

    def count(self, status: PlanStatus | None = None) -> int:
        """How many plans `list` would give with no limit, without reading them."""
        ...

    def ids_with_prefix(self, prefix: str) -> frozenset[str]: ...

    def recent_failures(self, application: str, environment: str, days: int, now: datetime) -> int: ...

    def history(
        self, id_prefix: str, subjects: Sequence[str], environment: str, days: int, now: datetime
    ) -> tuple[frozenset[str], dict[str, int]]:
        """In one read, what a new plan is made with: `ids_with_prefix(id_prefix)`, and each
        subject's `recent_failures` in `environment`."""
        ...


class ApprovalStore(Protocol):
    def add(self, approval: Approval) -> Approval:
        """Store the approval, signed; returns it as stored."""
        ...

    def for_plan(self, plan_id: str) -> list[Approval]: ...


class RoleStore(Protocol):
    def all(self) -> dict[str, str]:
        """Stored roles whose signature verifies; a row written outside opsmith is ignored."""
        ...

    def set(self, user: str, role: str, set_by: str) -> None: ...


class TokenStore(Protocol):
    """Bearer tokens, each row signed with the store's seal: a row whose signature does not verify
    (written outside opsmith) is unknown to every method, so nobody plants a token by writing SQL."""

    def add(self, info: TokenInfo, token_hash: str) -> None: ...

    def add_first(self, info: TokenInfo, token_hash: str) -> bool:
        """Store the token only when no active token exists, decided inside the same write
        transaction (two servers starting at once make one first token); False: one existed."""
        ...

    def get(self, token_id: str) -> tuple[TokenInfo, str] | None:
        """The token and the stored hash of its secret; None when unknown."""
        ...

    def revoke(self, token_id: str, at: datetime) -> TokenInfo | None:
        """Mark it revoked at `at` (a revoked one keeps its first time); None when unknown."""
        ...

    def touch(self, token_id: str, at: datetime) -> None:
        """Record its last use: one cheap write, nothing read."""
        ...

    def count_active(self) -> int: ...

    def list(self) -> list[TokenInfo]:
        """Every known token, oldest first."""
        ...


class SecretVault(Protocol):
    """Credentials the executors log in with, encrypted at rest under a key kept outside the
    database. Only `get` returns a value; everything else is metadata (`SecretInfo`)."""

    def put(
        self,
        name: str,
        kind: CredentialKind,
        username: str | None,
        secret: str,
        passphrase: str | None,
        by: str,
    ) -> SecretInfo:
        """Store (or replace) the secret `name`, encrypted."""
        ...

    def list(self) -> list[SecretInfo]:
        """Every secret's metadata, by name; never a value."""
        ...

    def get(self, name: str) -> Credential:
        """The secret decrypted, for an adapter that logs in; UnknownSecretError naming the nearest
        names when there is none, VaultKeyError when it is under another key, VaultError when its
        row was changed outside opsmith."""
        ...

    def delete(self, name: str) -> SecretInfo:
        """Remove it (no key needed); UnknownSecretError when there is none."""
        ...

    def rotate(self) -> KeyRotation:
        """Re-encrypt every secret under a new key, in one transaction; the new key comes from
        where the current one does (a new key file, or OPSMITH_SECRET_KEY_NEW)."""
        ...


class InventoryStore(Protocol):
    """The inventory as last imported. An import is the source of truth: `replace` swaps the whole
    inventory in one transaction. A stored inventory whose signature does not verify (written
    outside opsmith) is unknown: `load` and `source` answer None for it."""

    def replace(self, inventory: Inventory, *, source: str, by: str, at: datetime) -> InventorySource: ...

    def load(self) -> Inventory | None: ...

    def source(self) -> InventorySource | None:
        """Where the stored inventory came from, its content hash, when and by whom it was imported."""
        ...


class AuditTrail(Protocol):
    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        *,
        secrets: Iterable[str] = (),
    ) -> AuditEntry:
        """Redact `details`, chain the entry after the last one, store it."""
        ...

    def entries(self, subject: str | None = None, limit: int | None = None) -> list[AuditEntry]: ...

    def call_durations(self, window: int) -> dict[str, float]:
        """Average seconds of each tool's successful calls among the newest `window` entries."""
        ...

    def tool_calls(self, window: int, bounds: Sequence[float]) -> dict[str, CallStats]:
        """Per tool, what its `tool.called` entries among the newest `window` say: calls, errors,
        and how many successful ones took at most each of `bounds` seconds (see `fold_calls`)."""
        ...

    def verify(self) -> Verification:
        """The chain, every signature, and the head recorded by the witness outside the store."""
        ...


class AuditWitness(Protocol):
    """Where the audit head is recorded outside the database, so a removed tail shows."""

    where: str  # how a person finds it, for messages

    def read(self) -> Head | None:
        """The last head recorded, or None when there is none (or it cannot be read)."""
        ...

    def advance(self, head: Head) -> None:
        """Record `head` unless a newer one is recorded already."""
        ...


class RunJournal(Protocol):
    """Runs, their events and the audit entries of their changes, one transaction per change; the
    lease that lets one process at a time drive a run."""

    def commit(
        self,
        state: RunState,
        *,
        owner: str,
        events: Sequence[RunEvent] = (),
        audits: Sequence[AuditNote] = (),
        started_by: str = "",
        lease_seconds: float = 30.0,
        clear_request: bool = False,
        changed: Sequence[str] | None = None,
        claim: Plan | None = None,
    ) -> list[RunEvent]:
        """Write the change, fenced on `owner`; with `claim`, move the approved plan to running in the
        same transaction (PlanTaken and nothing written if it is no longer approved as it was)."""
        ...

    def claim(self, run_id: str, owner: str, *, seconds: float = 30.0) -> RunState | None:
        """Take the lease (free, expired, ours, or its local holder died): the run as it stands,
        read in the same transaction as the lease update; None when another process holds it."""
        ...

    def heartbeat(self, run_id: str, owner: str, *, seconds: float) -> str | None: ...

    def release(self, run_id: str, owner: str) -> None: ...

    def lease(self, run_id: str) -> Lease: ...

    def request(self, run_id: str, what: str | None) -> None: ...

    def get(self, run_id: str) -> RunState:
        """The run; UnknownRunError when there is none."""
        ...

    def ids(self, statuses: Iterable[RunStatus]) -> list[str]: ...

    def latest_for_plan(self, plan_id: str) -> RunState | None: ...

    def summaries(
        self, statuses: Iterable[RunStatus] | None = None, limit: int = 50, offset: int = 0
    ) -> list[RunSummary]:
        """Runs newest first, without their steps (all statuses when None)."""
        ...

    def started_by(self, run_id: str) -> str:
        """Who started the run ("" when there is no such run)."""
        ...

    def last_seq(self, run_id: str) -> int:
        """The sequence number of the run's newest event (0 when it has none)."""
        ...

    def events(self, run_id: str, after: int = 0, limit: int | None = None) -> list[RunEvent]:
        """The run's events with a sequence number above `after`, in order, at most `limit`."""
        ...


class ServerRegistry(Protocol):
    def disabled(self) -> set[str]: ...

    def set_enabled(self, name: str, enabled: bool) -> None: ...

    def record(
        self, statuses: Iterable[ServerStatus], config_hashes: Mapping[str, str] | None = None
    ) -> None: ...

    def recorded(self) -> list[RecordedServer]: ...

    def replace_tools(self, server: str, tools: Iterable[ToolSpec]) -> None: ...

    def known_tools(self, server: str | None = None) -> list[ToolSpec]: ...

    def record_applications(self, server: str, names: Sequence[str]) -> None:
        """The applications a server's live listing named (its deployments, its CI jobs)."""
        ...

    def applications(self) -> dict[str, list[str]]:
        """Per server, the applications its last listing named."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class Executor(Protocol):
    """Drives one run of one plan while holding its lease. `state` is the run as last committed."""

    owner: str
    state: RunState | None

    @property
    def failure(self) -> str | None: ...

    async def execute(self, state: RunState) -> RunState:
        """Run the ready steps until the run ends, pauses or waits at a gate; roll back on failure."""
        ...

    async def fail_and_rollback(self, why: str) -> RunState: ...

    def mark_touched(self, step_id: str) -> None:
        """A failed step that may have changed something: its undo runs in a rollback."""
        ...


class ExecutorFactory(Protocol):
    def __call__(
        self,
        plan: Plan,
        *,
        tools: ToolProvider,
        runs: RunJournal,
        identity: Identity,
        permission: Permission,
        settings: ExecutionSettings | None = None,
        auto_validate: bool = False,
        listener: Listener | None = None,
        owner: str | None = None,
    ) -> Executor: ...


class NotificationStore(Protocol):
    """The outbox: deliveries written when their event is decided, claimed under a lease by the
    worker that sends them (two workers never hold one row), retried at a stored time."""

    def enqueue(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Store each unless one with its key is stored already; the ones stored."""
        ...

    def claim_due(self, owner: str, now: datetime, *, limit: int, lease_seconds: float) -> list[Delivery]:
        """Lease the pending rows due at `now` that nobody holds, counting the attempt of each."""
        ...

    def delivered(self, delivery_id: str, owner: str, at: datetime) -> bool: ...

    def failed(
        self, delivery_id: str, owner: str, reason: str, at: datetime, next_attempt_at: datetime | None
    ) -> bool:
        """Pending again at `next_attempt_at`, or given up when None; False if `owner` lost it."""
        ...

    def retry(self, delivery_id: str, at: datetime, *, extra_attempts: int) -> Delivery: ...

    def get(self, delivery_id: str) -> Delivery:
        """The delivery; UnknownNotificationError when there is none."""
        ...

    def recent(self, limit: int = 50, status: DeliveryStatus | None = None) -> list[Delivery]:
        """Newest first."""
        ...


class TaskStore(Protocol):
    """Tasks, their agents and the task log. Every change of a task is a compare-and-set on the
    status (and lease owner) its writer read, so two orchestrators never both take one task."""

    def add(
        self, task: Task, log: Sequence[TaskLogEntry] = (), *, audit: Sequence[AuditNote] = ()
    ) -> tuple[Task, bool]:
        """Store it unless a task with its key is stored: (the stored one, whether it is new). The
        log entries and the `audit` entries are written with it, in its transaction, if it is new."""
        ...

    def get(self, task_id: str) -> Task:
        """The task; UnknownTaskError when there is none."""
        ...

    def save(
        self,
        task: Task,
        *,
        expected: TaskStatus,
        owner: str | None = None,
        log: Sequence[TaskLogEntry] = (),
        audit: Sequence[AuditNote] = (),
        notices: Sequence[Delivery] = (),
    ) -> bool:
        """Write it, its log and `audit` entries and the `notices` to queue in one transaction if
        its row is still `expected` (and leased by `owner`); False, and nothing written, otherwise."""
        ...

    def find(
        self, statuses: Sequence[TaskStatus] | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[Task]:
        """Newest first."""
        ...

    def due(self, now: datetime, *, limit: int) -> list[Task]:
        """Queued tasks due at `now`, most severe first."""
        ...

    def held(self) -> list[Task]:
        """Every assigned or running task."""
        ...

    def overdue(self, now: datetime, *, below_level: int, limit: int) -> list[Task]: ...

    def counts(self, now: datetime) -> dict[str, Any]:
        """by_status, by_priority (open tasks) and overdue."""
        ...

    def logs(self, *, limit: int = 50, offset: int = 0, kind: str | None = None) -> list[TaskLogEntry]:
        """Newest first."""
        ...

    def attempts_since(self, since: datetime) -> list[TaskLogEntry]: ...

    def agents(self) -> list[Agent]: ...

    def register(self, agents: Sequence[Agent], at: datetime) -> None:
        """Store the agents' definitions, keeping the record of those stored before."""
        ...

    def heartbeat(self, agent_ids: Sequence[str], at: datetime) -> None: ...

    def record(self, agent_id: str, *, succeeded: bool, seconds: float) -> None: ...


class NotificationSender(Protocol):
    """Sends one delivery over its channel (Slack, webhook, e-mail)."""

    async def send(self, delivery: Delivery, channel: ChannelConfig) -> None:
        """Deliver it, or raise DeliveryFailed saying why and whether a later attempt may succeed."""
        ...


class ChatDecisionStore(Protocol):
    """Decisions taken from Slack, one per key (Slack user and plan version), so a click decides once."""

    def claim(self, decision: ChatDecision, *, stale_before: datetime) -> ChatDecision | None:
        """Store it unless its key is stored; None when stored now, else the one stored before. A
        claim still `deciding` since before `stale_before` (its process stopped) is taken over."""
        ...

    def settle(self, key: str, outcome: str, at: datetime) -> None:
        """The claim decided, with what it amounted to."""
        ...

    def release(self, key: str) -> None:
        """Drop a claim whose decision was refused or failed: the next click tries again."""
        ...


class ChatResponder(Protocol):
    """Sends a message to a chat interaction's response URL (already checked against the allowed)."""

    async def respond(self, url: str, message: Mapping[str, Any]) -> None:
        """POST it; DeliveryFailed saying why when it was not accepted."""
        ...


class IssueStore(Protocol):
    """The built-in tracker: issues per failure fingerprint, and the updates to mirror elsewhere."""

    def record(self, occurrence: Occurrence, *, on_recurrence: Recurrence, sync: SyncState) -> Issue | None:
        """Record a failed run in one transaction (a new issue, a comment on the open one, a reopen);
        None when that run was recorded already."""
        ...

    def get(self, issue_id: int, *, with_updates: bool = False) -> Issue:
        """The issue; UnknownIssueError when there is none."""
        ...

    def for_run(self, run_id: str) -> Issue | None: ...

    def recent(self, state: IssueState | None = None, limit: int = 50, offset: int = 0) -> list[Issue]:
        """Newest first."""
        ...

    def due(self, now: datetime, *, limit: int, include_failed: bool = False) -> list[int]: ...

    def claim(
        self, issue_id: int, owner: str, now: datetime, *, lease_seconds: float, include_failed: bool = False
    ) -> Issue | None:
        """Lease it for mirroring: it with its unmirrored updates, or None (held, or nothing to do)."""
        ...

    def linked(self, issue_id: int, ref: ExternalRef, update_id: int | None, at: datetime) -> None: ...

    def mirrored(self, update_id: int, at: datetime, *, kind: UpdateKind | None = None) -> None: ...

    def closed_elsewhere(self, issue_id: int, at: datetime, *, on_recurrence: Recurrence) -> list[Issue]:
        """Its external copy was closed: close it and record its unmirrored repeats again."""
        ...

    def settle(
        self, issue_id: int, owner: str, at: datetime, *, error: str | None, next_attempt_at: datetime | None
    ) -> Issue:
        """End a sync attempt: synced, pending again at `next_attempt_at`, or failed (None)."""
        ...

    def close(self, issue_id: int, at: datetime) -> Issue: ...


class IssueTracker(Protocol):
    """An external issue tracker (GitHub). Each method raises TrackerUnavailable (try later) or
    TrackerRefused (fix the configuration first)."""

    async def open(self, title: str, body: str, labels: list[str]) -> ExternalRef: ...

    async def comment(self, number: int, body: str) -> None: ...

    async def reopen(self, number: int) -> None: ...

    async def state(self, number: int) -> IssueState: ...


class WebhookStore(Protocol):
    """Webhook deliveries, each id accepted once, and why each plan made after a push was made."""

    def claim(self, delivery: DeliveryRecord) -> bool:
        """Store the delivery as received; False when its id was accepted before (a replay). A
        delivery whose handling failed may be claimed again."""
        ...

    def settle(
        self, delivery_id: str, outcome: DeliveryOutcome, detail: str, plan_id: str | None = None
    ) -> None: ...

    def take(self, delivery_id: str, detail: str, *, seen: str) -> bool:
        """Set a received delivery's detail (who handles it) if it is still `seen`; False otherwise."""
        ...

    def unhandled(self, limit: int = 50) -> list[DeliveryRecord]:
        """The deliveries still received (claimed, not settled), oldest first."""
        ...

    def delivery(self, delivery_id: str) -> DeliveryRecord | None: ...

    def deliveries(self, limit: int = 50) -> list[DeliveryRecord]:
        """Newest first."""
        ...

    def add_replan(self, record: ReplanRecord) -> None: ...

    def replans(self, application: str) -> list[ReplanRecord]:
        """The application's re-plan records, oldest first."""
        ...

    def replan(self, plan_id: str) -> ReplanRecord | None: ...


class EventWakeups(Protocol):
    """Says, soon after any process commits them, that a run has new events. A hint only: the
    journal stays the truth, so a notice lost or repeated costs latency, never an event."""

    @property
    def live(self) -> bool:
        """Notices flow now: a watched run needs polling only as a fallback."""
        ...

    async def listen(self, wake: Callable[[str | None, int], None]) -> None:
        """Until cancelled: `wake(run_id, seq)` when events of the run up to `seq` were committed;
        `wake(None, 0)` whenever `live` changes (notices may have been missed: read every run)."""
        ...


class StepCallStore(Protocol):
    """Step calls handed to workers (`executor: celery`): each moves queued -> claimed -> done by
    compare-and-set, so a call is made at most once however often it is asked for; and the workers."""

    def request(self, call: StepCall) -> StepCall:
        """Store the call unless its key is stored already; the call as stored."""
        ...

    def request_many(self, calls: Iterable[StepCall]) -> dict[str, StepCall]:
        """`request` for several calls in one transaction; each as stored, by key."""
        ...

    def get(self, key: str) -> StepCall | None: ...

    def get_many(self, keys: Iterable[str], *, status: CallStatus | None = None) -> dict[str, StepCall]:
        """The stored calls of these keys (only those in `status`, if given)."""
        ...

    def claim(self, key: str, worker: str, at: datetime) -> StepCall | None:
        """queued -> claimed by `worker`; None when it is claimed or done already."""
        ...

    def beat(self, key: str, worker: str, at: datetime) -> bool:
        """The worker still calls; False when the call is no longer its own."""
        ...

    def finish(self, key: str, worker: str, outcome: Mapping[str, Any], at: datetime) -> bool:
        """claimed by `worker` -> done; False when someone else settled it first."""
        ...

    def settle_queued(self, key: str, outcome: Mapping[str, Any], at: datetime) -> bool:
        """queued -> done without a call; False when a worker claimed it first."""
        ...

    def resent(self, key: str, at: datetime) -> None: ...

    def register_worker(self, worker: WorkerInfo) -> None: ...

    def beat_worker(self, name: str, at: datetime) -> None: ...

    def remove_worker(self, name: str) -> None: ...

    def live_workers(self, since: datetime) -> list[WorkerInfo]: ...


class Broker(Protocol):
    """Carries a step call's key to some worker. A request only: losing or repeating one costs
    time, never a call (the StepCallStore is the truth)."""

    where: str  # the broker's URL with any password masked, for messages

    def send(self, key: str) -> None:
        """Ask for the call; ServerUnavailableError when the broker does not take it."""
        ...

    def ping(self, timeout: float) -> bool:
        """Whether the broker answers within `timeout` seconds."""
        ...

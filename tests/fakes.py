"""Hand-written in-memory fakes of the ports in `opsmith.ports`, for unit tests of the services.

They keep the contracts the real adapters keep (unknown ids raise the same errors, the audit trail
redacts and chains, a run commit is fenced on its lease), and record what was asked of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opsmith.bootstrap import App
from opsmith.config import Config, parse_config
from opsmith.domain.approval import Approval, seal_plan
from opsmith.domain.audit import AuditEntry, Verification, new_entry, verify
from opsmith.domain.call_stats import CallStats, fold_calls
from opsmith.domain.catalog import Catalog, ToolSpec
from opsmith.domain.hosts import Credential, CredentialKind, Host, HostResult
from opsmith.domain.inventory import Inventory, InventorySource
from opsmith.domain.issues import (
    ExternalRef,
    Issue,
    IssueState,
    IssueUpdate,
    Occurrence,
    Recurrence,
    SyncState,
    UnknownIssueError,
    UpdateKind,
    withdrawn,
)
from opsmith.domain.issues import record as record_occurrence
from opsmith.domain.journal import AuditNote, Lease, RunSummary
from opsmith.domain.plan import Plan, PlanStatus
from opsmith.domain.redaction import redact
from opsmith.domain.results import ToolResult
from opsmith.domain.scripts import RESULT_MARKER, Script
from opsmith.domain.seal import Seal
from opsmith.domain.servers import Health, RecordedServer, ServerStatus
from opsmith.domain.step_calls import CallStatus, StepCall, WorkerInfo
from opsmith.domain.tokens import TokenInfo
from opsmith.domain.vault import KeyRotation, SecretInfo, unknown_secret
from opsmith.engine.events import RunEvent
from opsmith.engine.local import LocalExecutor
from opsmith.engine.state import RunState, RunStatus
from opsmith.errors import ServerUnavailableError, ToolArgumentsError, ToolCallError, UnknownToolError
from opsmith.ports import Progress
from opsmith.store.plans import UnknownPlanError
from opsmith.store.runs import PLAN_FOLLOWS, LeaseLost, PlanTaken, UnknownRunError, owner_is_gone


class FakeClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.moment = now or datetime(2026, 12, 1, 10, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


SEAL = Seal(b"a test key, not a secret of anyone's")


class FakePlans:
    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}

    def save(self, plan: Plan) -> None:
        self.plans[plan.id] = seal_plan(plan, SEAL)

    def get(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except KeyError as exc:
            raise UnknownPlanError(f"no plan {plan_id!r}") from exc

    def list(self, status: PlanStatus | None = None, limit: int = 50, offset: int = 0) -> list[Plan]:
        found = [p for p in self.plans.values() if status is None or p.status is status]
        return sorted(found, key=lambda p: p.created_at, reverse=True)[offset : offset + limit]

    def count(self, status: PlanStatus | None = None) -> int:
        return sum(1 for p in self.plans.values() if status is None or p.status is status)

    def ids_with_prefix(self, prefix: str) -> frozenset[str]:
        return frozenset(i for i in self.plans if i.startswith(prefix))

    def recent_failures(self, application: str, environment: str, days: int, now: datetime) -> int:
        return 0

    def history(
        self, id_prefix: str, subjects: Sequence[str], environment: str, days: int, now: datetime
    ) -> tuple[frozenset[str], dict[str, int]]:
        failures = {s: self.recent_failures(s, environment, days, now) for s in subjects}
        return self.ids_with_prefix(id_prefix), failures


class FakeApprovals:
    def __init__(self) -> None:
        self.approvals: list[Approval] = []

    def add(self, approval: Approval) -> Approval:
        approval = approval.sealed_with(SEAL)
        self.approvals.append(approval)
        return approval

    def for_plan(self, plan_id: str) -> list[Approval]:
        return [a for a in self.approvals if a.plan_id == plan_id]


class FakeRoles:
    def __init__(self) -> None:
        self.roles: dict[str, str] = {}

    def all(self) -> dict[str, str]:
        return dict(self.roles)

    def set(self, user: str, role: str, set_by: str) -> None:
        self.roles[user] = role


class FakeTokens:
    """Tokens in memory: `rows` maps an id to its info and the stored hash of its secret."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[TokenInfo, str]] = {}
        self.touched: list[tuple[str, datetime]] = []

    def add(self, info: TokenInfo, token_hash: str) -> None:
        self.rows[info.id] = (info, token_hash)

    def add_first(self, info: TokenInfo, token_hash: str) -> bool:
        if any(stored.active for stored, _ in self.rows.values()):
            return False
        self.add(info, token_hash)
        return True

    def get(self, token_id: str) -> tuple[TokenInfo, str] | None:
        return self.rows.get(token_id)

    def revoke(self, token_id: str, at: datetime) -> TokenInfo | None:
        found = self.rows.get(token_id)
        if found is None:
            return None
        info, token_hash = found
        if info.revoked_at is None:
            info = info.model_copy(update={"revoked_at": at})
            self.rows[token_id] = (info, token_hash)
        return info

    def touch(self, token_id: str, at: datetime) -> None:
        self.touched.append((token_id, at))
        found = self.rows.get(token_id)
        if found is not None:
            self.rows[token_id] = (found[0].model_copy(update={"last_used_at": at}), found[1])

    def count_active(self) -> int:
        return sum(1 for info, _ in self.rows.values() if info.active)

    def list(self) -> list[TokenInfo]:
        return sorted((info for info, _ in self.rows.values()), key=lambda i: (i.created_at, i.id))


class FakeVault:
    """Secrets in memory, encrypted by nothing: `rows` maps a name to its info and its credential.
    Every row is under the fake key `key_id`; a rotation moves them all to the next one."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.rows: dict[str, tuple[SecretInfo, Credential]] = {}
        self.key_id = "fake-key-0001"

    def put(
        self,
        name: str,
        kind: CredentialKind,
        username: str | None,
        secret: str,
        passphrase: str | None,
        by: str,
    ) -> SecretInfo:
        now = self._clock.now()
        old = self.rows.get(name)
        info = SecretInfo(
            name=name,
            kind=kind,
            username=username,
            created_at=old[0].created_at if old else now,
            updated_at=now,
            updated_by=by,
            key_id=self.key_id,
        )
        credential = Credential.model_validate(
            {"name": name, "kind": kind, "username": username, "secret": secret, "passphrase": passphrase}
        )
        self.rows[name] = (info, credential)
        return info

    def list(self) -> list[SecretInfo]:
        return [self.rows[name][0] for name in sorted(self.rows)]

    def get(self, name: str) -> Credential:
        if name not in self.rows:
            raise unknown_secret(name, self.rows)
        return self.rows[name][1]

    def delete(self, name: str) -> SecretInfo:
        if name not in self.rows:
            raise unknown_secret(name, self.rows)
        return self.rows.pop(name)[0]

    def rotate(self) -> KeyRotation:
        before = sorted({info.key_id for info, _ in self.rows.values()})
        self.key_id = f"fake-key-{int(self.key_id.rsplit('-', 1)[1]) + 1:04d}"
        for name, (info, credential) in self.rows.items():
            self.rows[name] = (info.model_copy(update={"key_id": self.key_id}), credential)
        names = sorted(self.rows)
        return KeyRotation(count=len(names), names=names, from_key_ids=before, to_key_id=self.key_id)


class FakeInventoryStore:
    """The inventory in memory, as last replaced; `forged` plays a row written outside opsmith
    (its signature does not verify), which the real store treats as unknown."""

    def __init__(self) -> None:
        self.stored: tuple[Inventory, InventorySource] | None = None
        self.replaced: list[InventorySource] = []
        self.forged = False

    def replace(self, inventory: Inventory, *, source: str, by: str, at: datetime) -> InventorySource:
        record = InventorySource(
            source=source,
            hash=inventory.content_hash(),
            imported_at=at,
            imported_by=by,
            groups=inventory.group_count,
            hosts=inventory.host_count,
        )
        self.stored, self.forged = (inventory, record), False
        self.replaced.append(record)
        return record

    def load(self) -> Inventory | None:
        return None if self.stored is None or self.forged else self.stored[0]

    def source(self) -> InventorySource | None:
        return None if self.stored is None or self.forged else self.stored[1]


class FakeAudit:
    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.chain: list[AuditEntry] = []

    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        *,
        secrets: Iterable[str] = (),
    ) -> AuditEntry:
        entry = new_entry(
            self.chain[-1] if self.chain else None,
            at=self._clock.now(),
            actor=actor,
            action=action,
            subject=subject,
            details=redact(details or {}, secrets),
            seal=SEAL,
        )
        self.chain.append(entry)
        return entry

    def entries(self, subject: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        found = [e for e in self.chain if subject is None or e.subject == subject]
        return found[-limit:] if limit else found

    def call_durations(self, window: int) -> dict[str, float]:
        totals: dict[str, list[float]] = {}
        for entry in self.chain[-window:]:
            details = entry.details
            ms, tool = details.get("ms"), details.get("tool")
            called = entry.action == "tool.called" and details.get("ok") is True
            if called and isinstance(ms, int | float) and isinstance(tool, str):
                totals.setdefault(tool, []).append(float(ms) / 1000)
        return {tool: sum(values) / len(values) for tool, values in totals.items()}

    def tool_calls(self, window: int, bounds: Sequence[float]) -> dict[str, CallStats]:
        return fold_calls(self.chain[-window:], bounds)

    def verify(self) -> Verification:
        return verify(self.chain, SEAL)

    def actions(self) -> list[tuple[str, str, str]]:
        return [(e.actor, e.action, e.subject) for e in self.chain]


class FakeServers:
    def __init__(self) -> None:
        self.off: set[str] = set()
        self.seen: dict[str, RecordedServer] = {}
        self.tools: dict[str, list[ToolSpec]] = {}
        self.apps: dict[str, list[str]] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def disabled(self) -> set[str]:
        return set(self.off)

    def set_enabled(self, name: str, enabled: bool) -> None:
        (self.off.discard if enabled else self.off.add)(name)

    def record(
        self, statuses: Iterable[ServerStatus], config_hashes: Mapping[str, str] | None = None
    ) -> None:
        for s in statuses:
            old = self.seen.get(s.name)
            chash = (config_hashes or {}).get(s.name, old.config_hash if old else None)
            self.seen[s.name] = RecordedServer(
                name=s.name, health=s.health, checked_at=self.clock(), config_hash=chash
            )

    def recorded(self) -> list[RecordedServer]:
        return list(self.seen.values())

    def replace_tools(self, server: str, tools: Iterable[ToolSpec]) -> None:
        self.tools[server] = list(tools)

    def known_tools(self, server: str | None = None) -> list[ToolSpec]:
        names = [server] if server else list(self.tools)
        return [t for n in names for t in self.tools.get(n, [])]

    def record_applications(self, server: str, names: Sequence[str]) -> None:
        self.apps[server] = sorted(set(names))

    def applications(self) -> dict[str, list[str]]:
        return {name: list(found) for name, found in self.apps.items()}


Answer = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass
class FakeTools:
    """A tool provider over a fixed catalog: answers come from `answers` (tool -> function)."""

    specs: list[ToolSpec]
    answers: dict[str, Answer] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    started: list[list[str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def catalog(self) -> Catalog:
        return Catalog(t for t in self.specs if t.server in self.names)

    def statuses(self) -> list[ServerStatus]:
        servers = dict.fromkeys(t.server for t in self.specs)
        return [
            ServerStatus(
                name=name,
                transport="stdio",
                health=Health.UP if name in self.names else Health.STOPPED,
                tool_count=sum(1 for t in self.specs if t.server == name),
            )
            for name in servers
        ]

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
        if finished:
            # As the MCP pool: only the fleet's `hosts` leaves finished hosts out.
            raise ToolArgumentsError(f"{server}/{tool} does not fan out over hosts")
        if self.catalog.get(server, tool) is None:
            raise UnknownToolError(f"server {server!r} has no tool {tool!r}")
        self.calls.append((server, tool, dict(arguments)))
        answer = self.answers.get(tool)
        if answer is None:
            raise ToolCallError(f"{server}/{tool} failed: no answer in this fake")
        return ToolResult(server=server, tool=tool, structured=answer(tool, arguments), text="ok")

    def open(self, names: Sequence[str]) -> AbstractAsyncContextManager[FakeTools]:
        return self._opened(names)

    @asynccontextmanager
    async def _opened(self, names: Sequence[str]) -> AsyncIterator[FakeTools]:
        self.started.append(list(names))
        self.names = list(names)
        try:
            yield self
        finally:
            self.names = []


HostAnswer = Callable[[Host, Script], HostResult]


class FakeShell:
    """The HostShell port in memory. A host answers with `answers[name]` when given, else its
    script succeeds at once with a result line saying it changed something. A host in `blocked`
    waits for its event first (a host in flight when the process stopped). Every script sent is
    recorded as (host, operation), in the order sent."""

    def __init__(self, answers: Mapping[str, HostAnswer] | None = None) -> None:
        self.answers: dict[str, HostAnswer] = dict(answers or {})
        self.blocked: dict[str, asyncio.Event] = {}
        self.runs: list[tuple[str, str]] = []
        self.closed = False

    async def run_script(
        self, host: Host, credential: Credential, script: Script, *, timeout: float
    ) -> HostResult:
        self.runs.append((host.name, script.operation))
        gate = self.blocked.get(host.name)
        if gate is not None:
            await asyncio.wait_for(gate.wait(), timeout)
        answer = self.answers.get(host.name)
        if answer is not None:
            return answer(host, script)
        line = f'{RESULT_MARKER}{{"op": "{script.operation}", "changed": true}}'
        return HostResult(host=host.name, exit_code=0, stdout=f"{line}\n", duration_ms=1.0)

    async def upload(
        self, host: Host, credential: Credential, data: bytes, remote_path: str, *, timeout: float
    ) -> HostResult:
        return HostResult(host=host.name, exit_code=0)

    async def close(self) -> None:
        self.closed = True


class FakeServerHost:
    """The servers of a long-lived process, over FakeTools: what is running is what was wanted."""

    def __init__(self, tools: FakeTools) -> None:
        self.tools = tools
        self.running: set[str] = set()
        self.closed = False

    def open(self, names: Sequence[str]) -> AbstractAsyncContextManager[FakeTools]:
        self.running |= set(names)
        return self.tools.open(names)

    async def reconcile(self, wanted: Iterable[str]) -> list[ServerStatus]:
        self.running = set(wanted)
        return self.statuses()

    def statuses(self) -> list[ServerStatus]:
        return self.tools.statuses()

    async def close(self) -> None:
        self.running = set()
        self.closed = True


class FakeJournal:
    """Runs in memory, fenced on the lease like the real journal; shared by every journal the
    factory hands out (as the database is)."""

    def __init__(self, plans: FakePlans, audit: FakeAudit) -> None:
        self._plans = plans
        self._audit = audit
        self.runs: dict[str, RunState] = {}
        self.leases: dict[str, Lease] = {}
        self.event_log: dict[str, list[RunEvent]] = {}
        self.starters: dict[str, str] = {}
        self.created: dict[str, datetime] = {}

    def __call__(self) -> FakeJournal:
        return self

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
        lease = self.leases.get(state.run_id)
        if lease is not None and lease.owner not in (None, owner):
            raise LeaseLost(f"run {state.run_id} is now driven by another process")
        if claim is not None:
            stored = self._plans.get(claim.id)
            if stored.status is not PlanStatus.APPROVED or stored.hash != claim.hash:
                raise PlanTaken(f"plan {claim.id} is no longer approved as it was")
            self._plans.save(stored.model_copy(update={"status": PlanStatus.RUNNING}))
        follows = PLAN_FOLLOWS.get(state.status)
        if follows is not None and state.plan_id in self._plans.plans:
            plan = self._plans.get(state.plan_id)
            self._plans.save(plan.model_copy(update={"status": follows}))
        self.runs[state.run_id] = state
        if state.run_id not in self.created:
            self.created[state.run_id] = datetime.now(UTC)
            self.starters[state.run_id] = started_by
        requested = None if clear_request or lease is None else lease.requested
        self.leases[state.run_id] = Lease(owner, None, requested)
        log = self.event_log.setdefault(state.run_id, [])
        numbered = [e.model_copy(update={"seq": len(log) + i + 1}) for i, e in enumerate(events)]
        log.extend(numbered)
        for note in audits:
            self._audit.append(note.actor, note.action, note.subject, note.details)
        return numbered

    def claim(self, run_id: str, owner: str, *, seconds: float = 30.0) -> RunState | None:
        lease = self.lease(run_id)
        # As the real journal: a holder whose local process is gone counts as no holder.
        if lease.owner not in (None, owner) and not owner_is_gone(lease.owner):
            return None
        self.leases[run_id] = Lease(owner, None, lease.requested)
        return self.runs[run_id]

    def heartbeat(self, run_id: str, owner: str, *, seconds: float) -> str | None:
        lease = self.lease(run_id)
        if lease.owner != owner:
            raise LeaseLost(f"run {run_id} is now driven by another process")
        return lease.requested

    def release(self, run_id: str, owner: str) -> None:
        lease = self.lease(run_id)
        if lease.owner == owner:
            self.leases[run_id] = Lease(None, None, lease.requested)

    def lease(self, run_id: str) -> Lease:
        self.get(run_id)
        return self.leases.get(run_id, Lease(None, None, None))

    def request(self, run_id: str, what: str | None) -> None:
        lease = self.lease(run_id)
        self.leases[run_id] = Lease(lease.owner, lease.expires, what)

    def get(self, run_id: str) -> RunState:
        try:
            return self.runs[run_id]
        except KeyError as exc:
            raise UnknownRunError(f"no run {run_id!r}") from exc

    def ids(self, statuses: Iterable[RunStatus]) -> list[str]:
        wanted = set(statuses)
        return [i for i, s in self.runs.items() if s.status in wanted]

    def latest_for_plan(self, plan_id: str) -> RunState | None:
        found = [s for s in self.runs.values() if s.plan_id == plan_id]
        return found[-1] if found else None

    def summaries(
        self, statuses: Iterable[RunStatus] | None = None, limit: int = 50, offset: int = 0
    ) -> list[RunSummary]:
        wanted = None if statuses is None else set(statuses)
        found = [
            RunSummary(
                run_id=s.run_id,
                plan_id=s.plan_id,
                status=s.status.value,
                started_by=self.starters.get(s.run_id, ""),
                created_at=self.created[s.run_id],
                updated_at=self.created[s.run_id],
            )
            for s in self.runs.values()
            if wanted is None or s.status in wanted
        ]
        found.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return found[offset : offset + limit]

    def started_by(self, run_id: str) -> str:
        return self.starters.get(run_id, "")

    def last_seq(self, run_id: str) -> int:
        log = self.event_log.get(run_id, [])
        return log[-1].seq if log else 0

    def events(self, run_id: str, after: int = 0, limit: int | None = None) -> list[RunEvent]:
        found = [e for e in self.event_log.get(run_id, []) if e.seq > after]
        return found if limit is None else found[:limit]


@dataclass
class FakeWorld:
    """An App wired to fakes, and the fakes themselves for the test to look at."""

    app: App
    tools: FakeTools
    plans: FakePlans
    approvals: FakeApprovals
    audit: FakeAudit
    servers: FakeServers
    journal: FakeJournal
    clock: FakeClock
    tokens: FakeTokens
    vault: FakeVault
    inventory: FakeInventoryStore = field(default_factory=FakeInventoryStore)


def fake_app(config_text: str, tools: FakeTools) -> FakeWorld:
    config: Config = parse_config(config_text, source="opsmith.yaml (test)")
    clock = FakeClock()
    plans, approvals, audit, servers = FakePlans(), FakeApprovals(), FakeAudit(clock), FakeServers()
    servers.clock = clock.now
    journal = FakeJournal(plans, audit)
    tokens = FakeTokens()
    vault = FakeVault(clock)
    inventory = FakeInventoryStore()
    app = App(
        config=config,
        environ={},
        plans=plans,
        approvals=approvals,
        roles=FakeRoles(),
        tokens=tokens,
        vault=vault,
        audit=audit,
        servers=servers,
        inventory=inventory,
        journal=journal,
        tools=tools,
        clock=clock,
        executors=LocalExecutor,
        seal=SEAL,
    )
    return FakeWorld(
        app, tools, plans, approvals, audit, servers, journal, clock, tokens, vault=vault, inventory=inventory
    )


class FakeOutbox:
    """The notification outbox in memory, with the real one's rules: a key is queued once, a claim
    takes only due rows nobody holds (counting the attempt), a result counts only from the holder."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}  # id -> Delivery
        self.leases: dict[str, tuple[str, datetime]] = {}

    def enqueue(self, deliveries: Sequence[Any]) -> list[Any]:
        keys = {d.key for d in self.rows.values()}
        added = [d for d in deliveries if d.key not in keys]
        for delivery in added:
            self.rows[delivery.id] = delivery
        return added

    def claim_due(self, owner: str, now: datetime, *, limit: int, lease_seconds: float) -> list[Any]:
        from opsmith.domain.notifications import DeliveryStatus

        claimed = []
        due = sorted(self.rows.values(), key=lambda d: (d.next_attempt_at, d.created_at))
        for d in due:
            held = self.leases.get(d.id)
            if d.status is not DeliveryStatus.PENDING or d.next_attempt_at > now or (held and held[1] >= now):
                continue
            if d.attempts >= d.max_attempts:
                gave_up = {"status": DeliveryStatus.FAILED, "last_error": "gave up"}
                self.rows[d.id] = d.model_copy(update=gave_up)
                continue
            if len(claimed) < limit:
                self.leases[d.id] = (owner, now + timedelta(seconds=lease_seconds))
                self.rows[d.id] = d.model_copy(update={"attempts": d.attempts + 1})
                claimed.append(self.rows[d.id])
        return claimed

    def delivered(self, delivery_id: str, owner: str, at: datetime) -> bool:
        from opsmith.domain.notifications import DeliveryStatus

        done = DeliveryStatus.DELIVERED
        return self._settle(delivery_id, owner, status=done, delivered_at=at, last_error=None)

    def failed(
        self, delivery_id: str, owner: str, reason: str, at: datetime, next_attempt_at: datetime | None
    ) -> bool:
        from opsmith.domain.notifications import DeliveryStatus

        status = DeliveryStatus.PENDING if next_attempt_at is not None else DeliveryStatus.FAILED
        at_next = {"next_attempt_at": next_attempt_at}
        return self._settle(delivery_id, owner, status=status, last_error=reason, **at_next)

    def _settle(self, delivery_id: str, owner: str, **update: Any) -> bool:
        held = self.leases.get(delivery_id)
        if held is None or held[0] != owner:
            return False
        del self.leases[delivery_id]
        self.rows[delivery_id] = self.rows[delivery_id].model_copy(update=update)
        return True

    def retry(self, delivery_id: str, at: datetime, *, extra_attempts: int) -> Any:
        from opsmith.domain.notifications import DeliveryStatus

        d = self.get(delivery_id)
        self.rows[delivery_id] = d.model_copy(
            update={"status": DeliveryStatus.PENDING, "max_attempts": d.attempts + extra_attempts,
                    "next_attempt_at": at}
        )  # fmt: skip
        self.leases.pop(delivery_id, None)
        return self.rows[delivery_id]

    def get(self, delivery_id: str) -> Any:
        from opsmith.domain.notifications import UnknownNotificationError

        try:
            return self.rows[delivery_id]
        except KeyError as exc:
            raise UnknownNotificationError(f"no notification {delivery_id!r}") from exc

    def recent(self, limit: int = 50, status: Any = None) -> list[Any]:
        found = [d for d in self.rows.values() if status is None or d.status is status]
        return sorted(found, key=lambda d: (d.created_at, d.id), reverse=True)[:limit]


class FakeSenders:
    """Records what it was asked to send; `failures` are raised, in order, before it succeeds."""

    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        self.sent: list[tuple[Any, Any]] = []  # (delivery, channel)
        self.failures = list(failures)

    async def send(self, delivery: Any, channel: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((delivery, channel))


class FakeChatDecisions:
    """Slack decisions in memory, with the real store's rules: a key is claimed once; a claim still
    deciding since before `stale_before` is taken over; only a deciding claim is released."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}  # key -> ChatDecision

    def claim(self, decision: Any, *, stale_before: datetime) -> Any:
        from opsmith.domain.slack import DecisionStatus

        found = self.rows.get(decision.key)
        if found is not None and (found.status is DecisionStatus.DECIDED or found.updated_at >= stale_before):
            return found
        self.rows[decision.key] = decision
        return None

    def settle(self, key: str, outcome: str, at: datetime) -> None:
        from opsmith.domain.slack import DecisionStatus

        if key in self.rows:
            update = {"status": DecisionStatus.DECIDED, "outcome": outcome, "updated_at": at}
            self.rows[key] = self.rows[key].model_copy(update=update)

    def release(self, key: str) -> None:
        from opsmith.domain.slack import DecisionStatus

        if key in self.rows and self.rows[key].status is DecisionStatus.DECIDING:
            del self.rows[key]


class FakeResponder:
    """Records each reply to a response_url; `failures` are raised, in order, before it succeeds."""

    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.failures = list(failures)

    async def respond(self, url: str, message: Mapping[str, Any]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((url, dict(message)))


class FakeIssueStore:
    """The built-in issue tracker in memory, with the real one's rules: a run is recorded once,
    each change is opsmith.domain.issues.record's, and a sync holds an issue under a lease."""

    def __init__(self) -> None:
        self.issues: dict[int, Issue] = {}
        self.updates: dict[int, tuple[IssueUpdate, Occurrence]] = {}
        self.leases: dict[int, tuple[str, datetime]] = {}

    def record(self, occurrence: Occurrence, *, on_recurrence: Recurrence, sync: SyncState) -> Issue | None:
        if any(u.run_id == occurrence.run_id for u, _ in self.updates.values()):
            return None
        return self._record(occurrence, on_recurrence, sync)

    def _record(self, occurrence: Occurrence, on_recurrence: Recurrence, sync: SyncState) -> Issue:
        same = [i for i in self.issues.values() if i.fingerprint == occurrence.fingerprint.value]
        newest = max(same, key=lambda i: (i.state is IssueState.OPEN, i.id), default=None)
        change = record_occurrence(newest, occurrence, on_recurrence, sync)
        issue = change.issue
        if issue.id == 0:
            issue = issue.model_copy(update={"id": max(self.issues, default=0) + 1})
        self.issues[issue.id] = issue
        update_id = max(self.updates, default=0) + 1
        synced = occurrence.at if sync is SyncState.LOCAL else None
        self.updates[update_id] = (
            IssueUpdate(
                id=update_id, issue_id=issue.id, kind=change.kind, run_id=occurrence.run_id,
                body=change.body, created_at=occurrence.at, synced_at=synced,
            ),
            occurrence,
        )  # fmt: skip
        return issue

    def _updates(self, issue_id: int) -> list[IssueUpdate]:
        return [u for _key, (u, _) in sorted(self.updates.items()) if u.issue_id == issue_id]

    def get(self, issue_id: int, *, with_updates: bool = False) -> Issue:
        if issue_id not in self.issues:
            raise UnknownIssueError(f"no issue {issue_id} in the built-in tracker")
        issue = self.issues[issue_id]
        return issue.model_copy(update={"updates": self._updates(issue_id)}) if with_updates else issue

    def for_run(self, run_id: str) -> Issue | None:
        found = [u.issue_id for u, _ in self.updates.values() if u.run_id == run_id]
        return self.issues[found[0]] if found else None

    def recent(self, state: IssueState | None = None, limit: int = 50, offset: int = 0) -> list[Issue]:
        found = [i for i in self.issues.values() if state is None or i.state is state]
        found.sort(key=lambda i: (i.updated_at, i.id), reverse=True)
        return found[offset : offset + limit]

    def due(self, now: datetime, *, limit: int, include_failed: bool = False) -> list[int]:
        def waiting(issue: Issue) -> bool:
            if issue.sync is SyncState.FAILED:
                return include_failed
            return issue.sync is SyncState.PENDING and (issue.next_attempt_at or now) <= now

        found = [i for i in self.issues.values() if waiting(i)]
        found.sort(key=lambda i: (i.next_attempt_at or now, i.id))
        return [i.id for i in found[:limit]]

    def claim(
        self, issue_id: int, owner: str, now: datetime, *, lease_seconds: float, include_failed: bool = False
    ) -> Issue | None:
        issue = self.get(issue_id)
        wanted = {SyncState.PENDING, SyncState.FAILED} if include_failed else {SyncState.PENDING}
        held = self.leases.get(issue_id)
        if issue.sync not in wanted or (held is not None and held[0] != owner and held[1] >= now):
            return None
        self.leases[issue_id] = (owner, now + timedelta(seconds=lease_seconds))
        pending = [u for u in self._updates(issue_id) if u.synced_at is None]
        return issue.model_copy(update={"updates": pending})

    def linked(self, issue_id: int, ref: ExternalRef, update_id: int | None, at: datetime) -> None:
        self.issues[issue_id] = self.issues[issue_id].model_copy(update={"external": ref, "updated_at": at})
        if update_id is not None:
            self.mirrored(update_id, at)

    def mirrored(self, update_id: int, at: datetime, *, kind: UpdateKind | None = None) -> None:
        update, occurrence = self.updates[update_id]
        changes: dict[str, Any] = {"synced_at": at} | ({} if kind is None else {"kind": kind})
        self.updates[update_id] = (update.model_copy(update=changes), occurrence)

    def closed_elsewhere(self, issue_id: int, at: datetime, *, on_recurrence: Recurrence) -> list[Issue]:
        waiting = [
            (key, occurrence)
            for key, (u, occurrence) in sorted(self.updates.items())
            if u.issue_id == issue_id and u.synced_at is None and u.kind is not UpdateKind.OPEN
        ]
        for key, _ in waiting:
            del self.updates[key]
        self.issues[issue_id] = withdrawn(self.issues[issue_id], [o.run_id for _, o in waiting], at)
        recorded = [self._record(o, on_recurrence, SyncState.PENDING) for _, o in waiting]
        touched = {found.id: found for found in recorded}
        return list(touched.values())

    def settle(
        self, issue_id: int, owner: str, at: datetime, *, error: str | None, next_attempt_at: datetime | None
    ) -> Issue:
        issue = self.issues[issue_id]
        if self.leases.get(issue_id, ("", at))[0] == owner:
            del self.leases[issue_id]
            if error is None:
                left = any(u.synced_at is None for u in self._updates(issue_id))
                changes: dict[str, Any] = {
                    "sync": SyncState.PENDING if left else SyncState.SYNCED,
                    "next_attempt_at": at if left else None,
                    "sync_attempts": 0,
                    "last_error": None,
                }
            else:
                changes = {
                    "sync": SyncState.PENDING if next_attempt_at is not None else SyncState.FAILED,
                    "next_attempt_at": next_attempt_at,
                    "sync_attempts": issue.sync_attempts + 1,
                    "last_error": error,
                }
            self.issues[issue_id] = issue.model_copy(update={**changes, "updated_at": at})
        return self.issues[issue_id]

    def close(self, issue_id: int, at: datetime) -> Issue:
        issue = self.get(issue_id)
        if issue.state is IssueState.OPEN:
            self.issues[issue_id] = issue.model_copy(
                update={"state": IssueState.CLOSED, "closed_at": at, "updated_at": at}
            )
        return self.issues[issue_id]


class FakeIssueTracker:
    """GitHub's issues in memory: every call in order (`calls`), each issue's state and texts.
    `failures` are raised by the next calls, one each (None: that call goes through)."""

    def __init__(self, failures: Sequence[Exception | None] = ()) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.states: dict[int, IssueState] = {}
        self.texts: dict[int, list[str]] = {}
        self.failures = list(failures)

    def _call(self, *call: Any) -> None:
        self.calls.append(call)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure

    async def open(self, title: str, body: str, labels: list[str]) -> ExternalRef:
        self._call("open", title, tuple(labels))
        number = len(self.states) + 1
        self.states[number], self.texts[number] = IssueState.OPEN, [body]
        return ExternalRef(number=number, url=f"https://github.test/acme/shop/issues/{number}")

    async def comment(self, number: int, body: str) -> None:
        self._call("comment", number)
        self.texts[number].append(body)

    async def reopen(self, number: int) -> None:
        self._call("reopen", number)
        self.states[number] = IssueState.OPEN

    async def state(self, number: int) -> IssueState:
        self._call("state", number)
        return self.states[number]


class FakeTaskStore:
    """Tasks, agents and the task log in memory, with the real store's rules: a key is stored once,
    a save is a compare-and-set on the status (and lease owner) its writer read. Audit notes of a
    change that is written go to `audit` (the world's FakeAudit), and only then."""

    def __init__(self, audit: FakeAudit | None = None, outbox: FakeOutbox | None = None) -> None:
        self.tasks: dict[str, Any] = {}  # id -> Task
        self.entries: list[Any] = []  # TaskLogEntry, oldest first
        self.agent_rows: dict[str, Any] = {}  # id -> Agent
        self.audit = audit
        self.outbox = outbox

    def _audited(self, notes: Sequence[Any]) -> None:
        if notes and self.audit is None:
            raise AssertionError("FakeTaskStore was given audit notes but no FakeAudit to chain them")
        for note in notes:
            assert self.audit is not None
            self.audit.append(note.actor, note.action, note.subject, note.details)

    def add(self, task: Any, log: Sequence[Any] = (), *, audit: Sequence[Any] = ()) -> tuple[Any, bool]:
        same = [t for t in self.tasks.values() if task.key is not None and t.key == task.key]
        if same:
            return same[0], False
        self.tasks[task.id] = task
        self.entries += list(log)
        self._audited(audit)
        return task, True

    def get(self, task_id: str) -> Any:
        from opsmith.domain.tasks import UnknownTaskError

        try:
            return self.tasks[task_id]
        except KeyError as exc:
            raise UnknownTaskError(f"no task {task_id!r}") from exc

    def save(
        self,
        task: Any,
        *,
        expected: Any,
        owner: str | None = None,
        log: Sequence[Any] = (),
        audit: Sequence[Any] = (),
        notices: Sequence[Any] = (),
    ) -> bool:
        stored = self.tasks.get(task.id)
        if stored is None or stored.status is not expected:
            return False
        if owner is not None and stored.lease_owner != owner:
            return False
        if notices and self.outbox is None:
            raise AssertionError("FakeTaskStore was given notices but no FakeOutbox to queue them in")
        self.tasks[task.id] = task.model_copy(update={"key": stored.key, "created_at": stored.created_at})
        self.entries += list(log)
        self._audited(audit)
        if self.outbox is not None:
            self.outbox.enqueue(notices)
        return True

    def find(self, statuses: Sequence[Any] | None = None, *, limit: int = 50, offset: int = 0) -> list[Any]:
        found = [t for t in self.tasks.values() if not statuses or t.status in statuses]
        return sorted(found, key=lambda t: (t.created_at, t.id), reverse=True)[offset : offset + limit]

    def due(self, now: datetime, *, limit: int) -> list[Any]:
        found = [t for t in self.tasks.values() if t.due(now)]
        return sorted(found, key=lambda t: (-t.priority.severity, t.created_at, t.id))[:limit]

    def held(self) -> list[Any]:
        from opsmith.domain.tasks import HELD

        return sorted((t for t in self.tasks.values() if t.status in HELD), key=lambda t: t.created_at)

    def overdue(self, now: datetime, *, below_level: int, limit: int) -> list[Any]:
        found = [t for t in self.tasks.values() if t.overdue(now) and t.escalation_level < below_level]
        return sorted(found, key=lambda t: (t.deadline, t.id))[:limit]

    def counts(self, now: datetime) -> dict[str, Any]:
        from opsmith.domain.tasks import OPEN

        by_status: dict[str, int] = {}
        by_priority: dict[str, int] = {}
        for t in self.tasks.values():
            by_status[t.status.value] = by_status.get(t.status.value, 0) + 1
            if t.status in OPEN:
                by_priority[t.priority.value] = by_priority.get(t.priority.value, 0) + 1
        overdue = sum(1 for t in self.tasks.values() if t.overdue(now))
        return {"by_status": by_status, "by_priority": by_priority, "overdue": overdue}

    def logs(self, *, limit: int = 50, offset: int = 0, kind: str | None = None) -> list[Any]:
        found = [e for e in reversed(self.entries) if kind is None or e.kind == kind]
        return found[offset : offset + limit]

    def attempts_since(self, since: datetime) -> list[Any]:
        return [e for e in self.entries if e.kind == "attempt" and e.at >= since]

    def agents(self) -> list[Any]:
        return [self.agent_rows[i] for i in sorted(self.agent_rows)]

    def register(self, agents: Sequence[Any], at: datetime) -> None:
        for agent in agents:
            old = self.agent_rows.get(agent.id)
            kept = {} if old is None else {
                "last_heartbeat": old.last_heartbeat, "successes": old.successes,
                "failures": old.failures, "busy_seconds": old.busy_seconds,
            }  # fmt: skip
            self.agent_rows[agent.id] = agent.model_copy(update=kept)

    def heartbeat(self, agent_ids: Sequence[str], at: datetime) -> None:
        for i in agent_ids:
            if i in self.agent_rows:
                self.agent_rows[i] = self.agent_rows[i].model_copy(update={"last_heartbeat": at})

    def record(self, agent_id: str, *, succeeded: bool, seconds: float) -> None:
        a = self.agent_rows[agent_id]
        counts = {"successes": a.successes + 1} if succeeded else {"failures": a.failures + 1}
        self.agent_rows[agent_id] = a.model_copy(update={**counts, "busy_seconds": a.busy_seconds + seconds})


class FakeWebhookStore:
    """Webhook deliveries and re-plan records in memory: an id accepted once, a failed one again."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.replan_rows: list[Any] = []

    def claim(self, delivery: Any) -> bool:
        from opsmith.domain.push import DeliveryOutcome

        found = self.rows.get(delivery.delivery_id)
        if found is not None and found.outcome is not DeliveryOutcome.FAILED:
            return False
        self.rows[delivery.delivery_id] = delivery
        return True

    def settle(self, delivery_id: str, outcome: Any, detail: str, plan_id: str | None = None) -> None:
        self.rows[delivery_id] = self.rows[delivery_id].model_copy(
            update={"outcome": outcome, "detail": detail, "plan_id": plan_id}
        )

    def take(self, delivery_id: str, detail: str, *, seen: str) -> bool:
        from opsmith.domain.push import DeliveryOutcome

        found = self.rows.get(delivery_id)
        if found is None or found.outcome is not DeliveryOutcome.RECEIVED or found.detail != seen:
            return False
        self.rows[delivery_id] = found.model_copy(update={"detail": detail})
        return True

    def unhandled(self, limit: int = 50) -> list[Any]:
        from opsmith.domain.push import DeliveryOutcome

        found = [d for d in self.rows.values() if d.outcome is DeliveryOutcome.RECEIVED]
        return sorted(found, key=lambda d: d.received_at)[:limit]

    def delivery(self, delivery_id: str) -> Any:
        return self.rows.get(delivery_id)

    def deliveries(self, limit: int = 50) -> list[Any]:
        return sorted(self.rows.values(), key=lambda d: d.received_at, reverse=True)[:limit]

    def add_replan(self, record: Any) -> None:
        self.replan_rows.append(record)

    def replans(self, application: str) -> list[Any]:
        return [r for r in self.replan_rows if r.application == application]

    def replan(self, plan_id: str) -> Any:
        return next((r for r in self.replan_rows if r.plan_id == plan_id), None)


class FakeWakeups:
    """EventWakeups that a test drives: `notice` and `set_live` call the hub as the LISTEN
    connection would, from inside the hub's `listen`."""

    def __init__(self, *, live: bool = True) -> None:
        self._live = live
        self._wake: Callable[[str | None, int], None] | None = None
        self.listening = asyncio.Event()

    @property
    def live(self) -> bool:
        return self._live

    async def listen(self, wake: Callable[[str | None, int], None]) -> None:
        self._wake = wake
        self.listening.set()
        await asyncio.Event().wait()  # until cancelled, as a real listener

    def notice(self, run_id: str, seq: int) -> None:
        assert self._wake is not None, "the hub is not listening"
        self._wake(run_id, seq)

    def set_live(self, live: bool) -> None:
        self._live = live
        if self._wake is not None:
            self._wake(None, 0)


class FakeStepCalls:
    """Step calls and workers in memory, moved by compare-and-set like the real table."""

    def __init__(self) -> None:
        self.rows: dict[str, StepCall] = {}
        self.workers: dict[str, WorkerInfo] = {}

    def request(self, call: StepCall) -> StepCall:
        return self.rows.setdefault(call.key, call)

    def get(self, key: str) -> StepCall | None:
        return self.rows.get(key)

    def request_many(self, calls: Iterable[StepCall]) -> dict[str, StepCall]:
        return {call.key: self.request(call) for call in calls}

    def get_many(self, keys: Iterable[str], *, status: CallStatus | None = None) -> dict[str, StepCall]:
        found = {k: self.rows[k] for k in keys if k in self.rows}
        return {k: row for k, row in found.items() if status is None or row.status is status}

    def claim(self, key: str, worker: str, at: datetime) -> StepCall | None:
        claimed = {"status": CallStatus.CLAIMED, "worker": worker, "claimed_at": at}
        if not self._move(key, CallStatus.QUEUED, None, claimed):
            return None
        return self.rows[key]

    def beat(self, key: str, worker: str, at: datetime) -> bool:
        return self._move(key, CallStatus.CLAIMED, worker, {"heartbeat_at": at})

    def finish(self, key: str, worker: str, outcome: Mapping[str, Any], at: datetime) -> bool:
        done = {"status": CallStatus.DONE, "outcome": dict(outcome), "finished_at": at}
        return self._move(key, CallStatus.CLAIMED, worker, done)

    def settle_queued(self, key: str, outcome: Mapping[str, Any], at: datetime) -> bool:
        done = {"status": CallStatus.DONE, "outcome": dict(outcome), "finished_at": at}
        return self._move(key, CallStatus.QUEUED, None, done)

    def resent(self, key: str, at: datetime) -> None:
        self._move(key, CallStatus.QUEUED, None, {"sent_at": at})

    def _move(self, key: str, status: CallStatus, worker: str | None, changes: dict[str, Any]) -> bool:
        row = self.rows.get(key)
        if row is None or row.status is not status or (worker is not None and row.worker != worker):
            return False
        self.rows[key] = replace(row, **changes)
        return True

    def register_worker(self, worker: WorkerInfo) -> None:
        self.workers[worker.name] = worker

    def beat_worker(self, name: str, at: datetime) -> None:
        self.workers[name] = replace(self.workers[name], heartbeat_at=at)

    def remove_worker(self, name: str) -> None:
        self.workers.pop(name, None)

    def live_workers(self, since: datetime) -> list[WorkerInfo]:
        return sorted((w for w in self.workers.values() if w.heartbeat_at >= since), key=lambda w: w.name)


class FakeBroker:
    """A broker that only records the keys sent (a test plays the workers); `up` False refuses."""

    where = "redis://127.0.0.1:6379/0"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.up = True

    def send(self, key: str) -> None:
        if not self.up:
            raise ServerUnavailableError(f"the broker at {self.where} did not take step call {key}")
        self.sent.append(key)

    def ping(self, timeout: float) -> bool:
        return self.up

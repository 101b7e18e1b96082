"""The composition root: builds configuration, stores and adapters once, at the edge.

It is the only module that names concrete adapters; everything else speaks to the ports in
`opsmith.ports`. Unit tests build an `App` from in-memory fakes instead (`tests/fakes.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opsmith.config import Config, load_config

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterable

    from opsmith.domain.identity import Identity, Permission
    from opsmith.domain.inventory import Inventory
    from opsmith.domain.plan import Plan
    from opsmith.domain.seal import Seal
    from opsmith.domain.servers import ServerStatus
    from opsmith.engine.settings import ExecutionSettings
    from opsmith.planner.warm import Warm
    from opsmith.ports import (
        ApprovalStore,
        AuditTrail,
        Broker,
        ChatDecisionStore,
        ChatResponder,
        Clock,
        EventWakeups,
        Executor,
        ExecutorFactory,
        FleetProvider,
        InventoryStore,
        IssueStore,
        IssueTracker,
        Listener,
        NotificationSender,
        NotificationStore,
        PlanStore,
        RoleStore,
        RunJournal,
        SecretVault,
        ServerHost,
        ServerRegistry,
        StepCallStore,
        TaskStore,
        TokenStore,
        ToolProvider,
        ToolSource,
        WebhookStore,
    )
    from opsmith.store.audit import AuditLog
    from opsmith.store.database import Database
    from opsmith.tools.mcp.warm import WarmServers


def _warm() -> Warm:
    from opsmith.planner.warm import Warm

    return Warm()


@dataclass(frozen=True)
class App:
    """Everything a use case needs, wired once. `runs` is a factory: each driver of a run keeps its
    own journal (it remembers what it wrote last, to write only what changed)."""

    config: Config
    environ: Mapping[str, str]
    plans: PlanStore
    approvals: ApprovalStore
    roles: RoleStore
    tokens: TokenStore
    vault: SecretVault  # credentials hosts are logged in with, encrypted under a key of its own
    audit: AuditTrail
    servers: ServerRegistry
    inventory: InventoryStore  # the fleet's groups and hosts, as last imported
    journal: Callable[[], RunJournal]
    tools: ToolSource
    clock: Clock
    executors: ExecutorFactory
    seal: Seal  # signs plans, approvals, roles, tokens and audit entries with the key outside the database
    database: Database | None = None  # only `opsmith db upgrade` needs it
    # The planner and the recorded catalog between plans, each remade when what it came from changed.
    warm: Warm = field(default_factory=_warm)
    outbox: NotificationStore | None = None  # notifications waiting to be sent; None: none are kept
    senders: NotificationSender | None = None  # what sends them (Slack, webhooks, e-mail)
    webhooks: WebhookStore | None = None  # webhook deliveries and re-plan records; None: none are kept
    tasks: TaskStore | None = None  # follow-up tasks, their agents and log; None: none are kept
    chat_decisions: ChatDecisionStore | None = None  # decisions taken from Slack, each once
    chat_responder: ChatResponder | None = None  # shows a Slack click's outcome in its message
    issues: IssueStore | None = None  # the built-in tracker of failure issues; None: none are kept
    issue_tracker: IssueTracker | None = None  # where they are mirrored (GitHub); None: not configured
    # `executor: celery`: the step calls handed to workers, and the broker that asks for them.
    step_calls: StepCallStore | None = None
    broker: Broker | None = None


class JournalFactory:
    """A new run journal per driver (the real one keeps per-run caches)."""

    def __init__(self, database: Database, audit: AuditLog, seal: Seal) -> None:
        self._database = database
        self._audit = audit
        self._seal = seal

    def __call__(self) -> RunJournal:
        from opsmith.store.runs import RunRepository

        return RunRepository(self._database, self._audit, self._seal)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class McpToolSource:
    """Starts the named MCP servers as one pool, and stops them all on exit."""

    def __init__(self, config: Config, environ: Mapping[str, str]) -> None:
        self._config = config
        self._environ = environ

    def open(self, names: Sequence[str]) -> AbstractAsyncContextManager[ToolProvider]:
        return self._pool(names)

    @asynccontextmanager
    async def _pool(self, names: Sequence[str]) -> AsyncIterator[ToolProvider]:
        from opsmith.tools.mcp import ServerPool  # the MCP SDK: loaded only when tools are needed

        pool = ServerPool(self._config, self._environ)
        try:
            await pool.start(list(names))
            yield pool
        finally:
            await pool.stop()


class WithHosts:
    """A ToolSource that adds the fleet's server `hosts` to what `inner` opens, whenever the
    inventory in effect has hosts (read at each open: an import shows at the next command).

    With `keep_seconds` (`opsmith serve`), the fleet's provider and its SSH connections outlive an
    open: the next run reuses them, and they close once no open has used them for that long (or at
    `close`). A connection is kept per address, user and credential, so a changed credential or
    address opens a new one; the inventory is read afresh at every open. Without it, each open
    makes its own and closes it at exit, as a command that runs once should."""

    def __init__(
        self,
        inner: ToolSource,
        app: App,
        *,
        keep_seconds: float = 0.0,
        make_hosts: Callable[[Callable[[], Inventory]], FleetProvider] | None = None,
    ) -> None:
        self._inner = inner
        self._app = app
        self._keep = keep_seconds
        self._make = make_hosts or self._real_hosts
        self._inventory: Inventory | None = None
        self._kept: FleetProvider | None = None
        self._users = 0
        self._idle: asyncio.Task[None] | None = None

    def open(self, names: Sequence[str]) -> AbstractAsyncContextManager[ToolProvider]:
        return self._open(names)

    async def close(self) -> None:
        """Close the kept provider (its connections), if any."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        kept, self._kept = self._kept, None
        if kept is not None:
            await kept.close()

    @asynccontextmanager
    async def _open(self, names: Sequence[str]) -> AsyncIterator[ToolProvider]:
        from opsmith.services.inventory import current, fleet_in_use

        wanted = [n for n in names if n != "hosts"]
        async with self._inner.open(wanted) as pool:
            if not fleet_in_use(self._app):
                yield pool
                return
            from opsmith.tools.combined import Combined

            inventory = current(self._app)
            if self._keep <= 0:
                hosts = self._make(lambda: inventory)
                try:
                    yield Combined(pool, [hosts])
                finally:
                    await hosts.close()
                return
            self._inventory = inventory
            hosts = self._take()
            try:
                yield Combined(pool, [hosts])
            finally:
                self._give_back(hosts)

    def _take(self) -> FleetProvider:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._kept is None:
            self._kept = self._make(self._current_inventory)
        self._users += 1
        return self._kept

    def _give_back(self, hosts: FleetProvider) -> None:
        self._users -= 1
        if self._users == 0 and hosts is self._kept:
            import asyncio  # only a long-lived process keeps a fleet, and it runs an event loop

            self._idle = asyncio.get_running_loop().create_task(self._close_idle(hosts))

    async def _close_idle(self, hosts: FleetProvider) -> None:
        import asyncio

        await asyncio.sleep(self._keep)
        if self._kept is hosts and self._users == 0:
            self._kept, self._idle = None, None
            await hosts.close()

    def _current_inventory(self) -> Inventory:
        assert self._inventory is not None  # set by every open before the provider is used
        return self._inventory

    def _real_hosts(self, inventory: Callable[[], Inventory]) -> FleetProvider:
        from opsmith.services.secrets import credential
        from opsmith.tools.hosts.provider import FleetPolicy, HostTools
        from opsmith.tools.hosts.shells import Shells

        app, fleet = self._app, self._app.config.fleet
        return HostTools(
            inventory=inventory,
            credential=lambda name: credential(app, name),
            shell=Shells(app.config),
            policy=FleetPolicy(fleet.max_failed_percent, fleet.host_retries, fleet.command_timeout),
        )


class KeptFleet(WithHosts):
    """`opsmith serve`'s ServerHost: warm MCP servers, and the fleet's connections kept between
    runs; closing it closes both."""

    def __init__(self, inner: WarmServers, app: App, *, keep_seconds: float) -> None:
        super().__init__(inner, app, keep_seconds=keep_seconds)
        self._warm = inner

    async def reconcile(self, wanted: Iterable[str]) -> list[ServerStatus]:
        return await self._warm.reconcile(wanted)

    def statuses(self) -> list[ServerStatus]:
        return self._warm.statuses()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._warm.close()


def local_executor(
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
) -> Executor:
    """The in-process executor; the engine is loaded only by commands that drive a run."""
    from opsmith.engine.local import LocalExecutor

    return LocalExecutor(
        plan,
        tools=tools,
        runs=runs,
        identity=identity,
        permission=permission,
        settings=settings,
        auto_validate=auto_validate,
        listener=listener,
        owner=owner,
    )


def serving(app: App) -> tuple[App, ServerHost]:
    """The same App for a long-lived process: its servers stay up between uses."""

    from opsmith.tools.mcp.warm import WarmServers

    warm = WarmServers(app.config, app.environ)
    kept = KeptFleet(warm, app, keep_seconds=app.config.fleet.keep_seconds)
    return replace(app, tools=kept), kept


def github_issues(config: Config, environ: Mapping[str, str]) -> IssueTracker | None:
    """The GitHub adapter of issues.github, or None when it is not configured. A token variable
    that is not set is reported by each request (the issue stays in the built-in tracker)."""
    github = config.issues.github
    if github is None:
        return None
    from opsmith.config import referenced_variables
    from opsmith.tools.issues.github import GithubIssues

    (name,) = referenced_variables(github.token)
    return GithubIssues(
        github.repo, environ.get(name), base_url=github.base_url, timeout=github.timeout, token_name=name
    )


def event_wakeups(config: Config) -> EventWakeups | None:
    """On PostgreSQL, LISTEN/NOTIFY wakes the API's event watchers; None elsewhere (they poll)."""
    from opsmith.store.wakeups import PostgresWakeups

    if not config.api.event_listen:
        return None
    return PostgresWakeups.for_url(config.database)


def _distributed(app: App, database: Database) -> App:
    """`executor: celery`: runs go on driving the engine here; their step calls go to workers."""
    from opsmith.distributed.broker import CeleryBroker
    from opsmith.distributed.dispatch import DistributedExecutors
    from opsmith.distributed.store import StepCallRepository

    calls = StepCallRepository(database)
    broker = CeleryBroker(app.config.celery, app.environ)
    executors = DistributedExecutors(calls, broker, app.config.celery)
    return replace(app, step_calls=calls, broker=broker, executors=executors)


def bootstrap(config_path: Path | None, environ: Mapping[str, str]) -> App:
    config = load_config(config_path, environ)
    return wire(config, environ)


def _outbox(config: Config, database: Database) -> NotificationStore | None:
    """The notification outbox when a channel is configured; else None (nothing is queued, listed
    or sent). Loaded only then: its module costs every other command ~10 ms to import."""
    if not config.notifications.channels:
        return None
    from opsmith.store.notifications import NotificationRepository

    return NotificationRepository(database)


def _senders(config: Config, environ: Mapping[str, str]) -> NotificationSender | None:
    if not config.notifications.channels:
        return None
    from opsmith.tools.notify import ChannelSenders

    return ChannelSenders(environ, timeout=config.notifications.send_timeout)


def wire(config: Config, environ: Mapping[str, str]) -> App:
    """The real adapters over one database."""
    from opsmith.store.access import ApprovalRepository, RoleRepository
    from opsmith.store.audit import AuditLog
    from opsmith.store.chat import ChatDecisionRepository
    from opsmith.store.database import Database
    from opsmith.store.inventory import InventoryRepository
    from opsmith.store.issues import IssueRepository
    from opsmith.store.keys import load_seal
    from opsmith.store.plans import PlanRepository
    from opsmith.store.servers import ServerRepository
    from opsmith.store.tasks import TaskRepository
    from opsmith.store.tokens import TokenRepository
    from opsmith.store.vault import SecretRepository
    from opsmith.store.vault_keys import key_source
    from opsmith.store.webhooks import WebhookRepository
    from opsmith.store.witness import FileWitness
    from opsmith.tools.notify.slack_responses import SlackResponder

    seal = load_seal(config.signing_key_file, environ)
    database = Database(config.database, sqlite_synchronous=config.sqlite_synchronous)
    audit = AuditLog(database, seal=seal, witness=FileWitness(config.audit_witness_file))
    app = App(
        config=config,
        environ=dict(environ),
        plans=PlanRepository(database, seal),
        approvals=ApprovalRepository(database, seal),
        roles=RoleRepository(database, seal),
        tokens=TokenRepository(database, seal),
        # The vault's key is read at its first use: a command that touches no secret needs none.
        vault=SecretRepository(
            database,
            lambda: key_source(config.vault_key_file, environ, signing_key_file=config.signing_key_file),
        ),
        audit=audit,
        servers=ServerRepository(database),
        inventory=InventoryRepository(database, seal),
        journal=JournalFactory(database, audit, seal),
        tools=McpToolSource(config, environ),
        clock=SystemClock(),
        executors=local_executor,
        seal=seal,
        database=database,
        outbox=_outbox(config, database),
        webhooks=WebhookRepository(database),
        senders=_senders(config, environ),
        tasks=TaskRepository(database, audit),
        chat_decisions=ChatDecisionRepository(database),
        chat_responder=SlackResponder(timeout=min(config.notifications.send_timeout, 5.0)),
        issues=IssueRepository(database),
        issue_tracker=github_issues(config, environ),
    )
    if config.executor == "celery":
        app = _distributed(app, database)
    # The fleet's hosts join the MCP servers as one more provider; `inventory` and `vault` are in it.
    return replace(app, tools=WithHosts(app.tools, app))

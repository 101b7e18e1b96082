"""opsmith.yaml parsed into one typed, validated object, built once at the edge.

Values in `env`, `headers`, `url` and `args` may reference environment variables as
`${NAME}` or `${NAME:-default}`. They are kept as templates here and resolved only when a
connection is made (`resolve`), so resolved secrets never reach the store or the output.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from opsmith.domain.binding import BindingSet
from opsmith.domain.identity import DEFAULT_ROLES, Permission
from opsmith.domain.notifications import NotifyEvent
from opsmith.domain.tasks import EscalationLevel, Priority
from opsmith.engine.settings import ExecutionSettings
from opsmith.errors import ConfigError, InventoryError

if TYPE_CHECKING:
    from opsmith.domain.inventory import Inventory
from opsmith.tools.hosts.ssh_settings import DEFAULT_HANDSHAKES, SshSettings

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

CONFIG_ENV_VAR = "OPSMITH_CONFIG"
DEFAULT_CONFIG_NAME = "opsmith.yaml"
BUNDLED_DEMO_CONFIG = Path(__file__).parent / "bundled" / "demo.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _ServerBase(_Strict):
    disabled: bool = False
    timeout: float = Field(default=15.0, gt=0, le=600, description="seconds to start and initialize")
    call_timeout: float = Field(default=120.0, gt=0, le=3600, description="seconds per tool call")


class StdioServerConfig(_ServerBase):
    """A server opsmith starts as a child process and talks to over stdin/stdout."""

    type: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    @property
    def transport(self) -> str:
        return "stdio"


class HttpServerConfig(_ServerBase):
    """A server already listening somewhere, spoken to over streamable HTTP."""

    type: Literal["http", "streamable-http"] = "http"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^(https?://|\$\{)", value):
            raise ValueError("must start with http:// or https://")
        return value

    @property
    def transport(self) -> str:
        return "http"


def _server_kind(spec: Any) -> str | None:
    if isinstance(spec, BaseModel):
        return "http" if isinstance(spec, HttpServerConfig) else "stdio"
    if not isinstance(spec, dict):
        return None
    if "url" in spec or spec.get("type") in ("http", "streamable-http"):
        return "http"
    if "command" in spec or spec.get("type") == "stdio":
        return "stdio"
    return None


ServerConfig = Annotated[
    Annotated[StdioServerConfig, Tag("stdio")] | Annotated[HttpServerConfig, Tag("http")],
    Discriminator(
        _server_kind,
        custom_error_type="server_kind",
        custom_error_message="needs 'command' (a stdio server) or 'url' (a streamable HTTP server)",
    ),
]


class SupervisionConfig(_Strict):
    """How crashed servers are brought back."""

    max_restarts: int = Field(default=5, ge=0, le=100)
    backoff_initial: float = Field(default=0.5, gt=0, le=60)
    backoff_max: float = Field(default=30.0, gt=0, le=3600)
    health_interval: float = Field(default=10.0, gt=0, le=3600)


class ExecutionConfig(_Strict):
    """How runs are driven (see opsmith.engine.settings)."""

    max_parallel: int = Field(default=5, ge=1, le=100)
    step_timeout: float = Field(default=900.0, gt=0, le=24 * 3600, description="seconds per tool call")
    gate_timeout_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    retry_attempts: int = Field(default=3, ge=1, le=20)
    retry_initial_delay: float = Field(default=0.5, ge=0, le=600)
    retry_max_delay: float = Field(default=10.0, ge=0, le=3600)

    def settings(self) -> ExecutionSettings:
        from opsmith.engine.retry import RetryPolicy

        return ExecutionSettings(
            max_parallel=self.max_parallel,
            step_timeout=self.step_timeout,
            gate_timeout=self.gate_timeout_hours * 3600,
            lease_seconds=self.lease_seconds,
            retry=RetryPolicy(
                attempts=self.retry_attempts,
                initial_delay=self.retry_initial_delay,
                max_delay=max(self.retry_max_delay, self.retry_initial_delay),
            ),
        )


class ApiConfig(_Strict):
    """`opsmith serve`: where it listens and how often its background duties run."""

    host: str = Field(default="127.0.0.1", description="loopback by default; put a TLS proxy in front")
    port: int = Field(default=8000, ge=0, le=65535, description="0 picks a free port")
    sweep_seconds: float = Field(default=30.0, ge=0.1, le=3600, description="timed-out gates rolled back")
    takeover_seconds: float = Field(
        default=10.0, ge=0.1, le=3600, description="runs whose driver died looked for"
    )
    supervise_seconds: float = Field(default=10.0, ge=0.1, le=3600, description="servers kept as wanted")
    event_poll_seconds: float = Field(
        default=0.05, ge=0.005, le=60, description="how often watched runs are polled for new events"
    )
    event_fallback_seconds: float = Field(
        default=5.0,
        ge=0.005,
        le=3600,
        description="on PostgreSQL, while LISTEN/NOTIFY wakes the watchers: how often they poll all the same",
    )
    event_listen: bool = Field(
        default=True,
        description="on PostgreSQL, LISTEN for new events; false behind a pooler that cannot hold a LISTEN"
        " (PgBouncer in transaction mode): the watchers then poll every event_poll_seconds",
    )
    cors_origins: list[str] = Field(default_factory=list, description="none: no CORS headers at all")
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="the largest request body accepted (413 above it), before anything reads it",
    )
    secure_cookies: bool = Field(
        default=False,
        description="mark the console's cookies Secure even when the request came over plain HTTP:"
        " set it behind a TLS proxy (opsmith trusts no X-Forwarded-Proto)",
    )
    auth_failures: int = Field(default=5, ge=1, le=1000, description="failed logins per client per window")
    auth_window_seconds: float = Field(default=60.0, gt=0, le=86400)
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, le=600, description="runs asked to pause, then left to take-over"
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="where people reach the console (links in notifications); none: no links",
    )


class WinrmConfig(_Strict):
    """How Windows hosts are reached over WinRM (opsmith.tools.hosts.winrm). A host's Ansible vars
    `ansible_winrm_transport` and `ansible_winrm_scheme` override `transport` and `scheme`."""

    transport: Literal["ntlm", "negotiate", "kerberos", "credssp", "basic"] = Field(
        default="ntlm", description="kerberos needs the gssapi package, credssp requests-credssp"
    )
    scheme: Literal["https", "http"] = Field(
        default="https", description="http only where configured so; Basic is never sent over it"
    )
    path: str = Field(default="wsman", pattern=r"^[A-Za-z0-9_./-]+$")
    cert_validation: bool = Field(default=True, description="verify the hosts' TLS certificates")
    ca_bundle: Path | None = Field(
        default=None, description="PEM file of the CA(s) that sign the hosts' certificates (default: certifi)"
    )
    proxy: str | None = Field(default=None, description="HTTP proxy URL; none: connect directly")
    connect_timeout: float = Field(default=10.0, gt=0, le=300, description="seconds to open a connection")
    operation_timeout: float = Field(
        default=20.0, ge=1, le=3600, description="seconds one WS-Management request may take on the host"
    )
    deadline: float = Field(
        default=300.0, gt=0, le=24 * 3600, description="hard seconds per host; its result is TIMED_OUT then"
    )
    max_threads: int = Field(default=20, ge=1, le=1000, description="hosts worked on at once")

    @model_validator(mode="after")
    def _basic_only_over_verified_tls(self) -> WinrmConfig:
        if self.transport == "basic" and self.scheme != "https":
            raise ValueError("transport 'basic' sends the password as it is: it needs scheme 'https'")
        if self.transport == "basic" and not self.cert_validation:
            raise ValueError("transport 'basic' needs cert_validation: without it anyone between can read it")
        if self.ca_bundle is not None and not self.cert_validation:
            raise ValueError("ca_bundle is set but cert_validation is false; keep one of them")
        return self


class FleetConfig(_Strict):
    """How Linux hosts are reached over SSH (opsmith.tools.hosts.ssh)."""

    forks: int = Field(default=100, ge=1, le=10000, description="hosts worked on at once, like Ansible's -f")
    handshakes: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description=f"of those, at once in key exchange and login (default: {DEFAULT_HANDSHAKES} or forks)",
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, le=600, description="seconds for TCP, key exchange and login"
    )
    command_timeout: float = Field(
        default=300.0, gt=0, le=7 * 24 * 3600, description="seconds a command may run unless its caller says"
    )
    known_hosts: Path | None = Field(
        default=None, description="the recorded host keys, OpenSSH format (default: STATE_DIR/known_hosts)"
    )
    trust_on_first_use: bool = Field(
        default=False,
        description="record the key of a host with none recorded, and connect; a changed key is refused",
    )
    keepalive_interval: float = Field(
        default=15.0, ge=0, le=3600, description="seconds between keepalives on a kept connection; 0: none"
    )
    keep_seconds: float = Field(
        default=120.0,
        ge=0,
        le=86400,
        description="in `opsmith serve`, how long connections stay open after the last run used them"
        " (the next run reuses them); 0: closed after each run",
    )
    max_failed_percent: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="a step on many hosts fails when more than this share of them failed (0: any host)",
    )
    host_retries: int = Field(
        default=1,
        ge=0,
        le=10,
        description="tries more for a host that could not be reached (or, for an idempotent operation, any"
        " host whose command did not finish)",
    )

    @model_validator(mode="after")
    def _handshakes_within_forks(self) -> FleetConfig:
        if self.handshakes is not None and self.handshakes > self.forks:
            raise ValueError(
                f"handshakes ({self.handshakes}) must be at most forks ({self.forks}): each holds a fork"
            )
        return self

    def ssh_settings(self, known_hosts: Path) -> SshSettings:
        """The SSH adapter's settings; `known_hosts` is `Config.known_hosts_file`."""
        return SshSettings(
            known_hosts=known_hosts,
            forks=self.forks,
            handshakes=self.handshakes or min(DEFAULT_HANDSHAKES, self.forks),
            connect_timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
            trust_on_first_use=self.trust_on_first_use,
            keepalive_interval=self.keepalive_interval,
        )


class ApplicationConfig(_Strict):
    """What opsmith knows about one application it deploys."""

    strategy: Literal["rolling", "canary", "blue-green"] = "rolling"
    image_repository: str | None = Field(default=None, description="default: planning.image_repository")
    branch: str | None = None


class PlanningConfig(_Strict):
    default_application: str | None = None
    default_environment: Literal["production", "staging", "development"] | None = None
    default_branch: str = "main"
    image_repository: str = Field(default="{app}", description="template; {app} is the application")
    service_name: str = Field(default="{app}-service", description="template; {app} is the application")
    playbook_dirs: list[Path] = Field(default_factory=list)
    bindings: list[BindingSet] = Field(
        default_factory=list, description="binding sets asked before the bundled ones (see README)"
    )
    list_applications: bool = Field(
        default=True, description="at discovery, ask servers whose bindings say how for what they run"
    )
    listing_timeout: float = Field(default=10.0, gt=0, le=300, description="seconds for one listing call")
    binding_dirs: list[Path] = Field(
        default_factory=list, description="directories of binding-set YAML files"
    )
    risk_words: dict[Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"], list[str]] | None = Field(
        default=None, description="replaces the built-in action words of that level"
    )
    raise_risk_in: list[str] = Field(default_factory=lambda: ["production"])
    recent_failure_days: int = Field(default=7, ge=1, le=365)
    friday_cutoff_hour: int = Field(default=15, ge=0, le=23)
    catalog_max_age: float = Field(
        default=600.0,
        ge=0,
        description="seconds a recorded catalog may be planned from without discovery; 0: always discover",
    )


class AnalysisConfig(_Strict):
    """`opsmith explain RUN`: the root-cause rules and the evidence read after a failure."""

    rule_dirs: list[Path] = Field(
        default_factory=list, description="directories of rule YAML files; a bundled rule's id replaces it"
    )
    fetch: bool = Field(default=True, description="read recent logs and state through read-only tools")
    fetch_timeout: float = Field(default=10.0, gt=0, le=300, description="seconds for one evidence call")
    max_fetches: int = Field(default=4, ge=0, le=20, description="read-only calls made for one explanation")


class ApprovalPolicy(_Strict):
    environments: list[str] = Field(default_factory=lambda: ["production"])
    expires_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    min_risk: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"] = "HIGH"
    four_eyes_risk: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"] = "CRITICAL"
    four_eyes_approvers: int = Field(default=2, ge=2, le=10)


class PolicyConfig(_Strict):
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    compliance: dict[str, list[str]] | None = Field(
        default=None, description="requirements per environment; replaces the defaults"
    )


class RbacConfig(_Strict):
    """Users and roles. Without this section opsmith is single-user: the OS user is its admin."""

    users: dict[str, str] = Field(default_factory=dict, description="user -> role")
    roles: dict[str, Permission] = Field(default_factory=dict, description="extra or replaced roles")
    allow_as: bool = Field(default=False, description="let --as USER act as another configured user")

    @model_validator(mode="after")
    def _known_roles(self) -> RbacConfig:
        known = set(DEFAULT_ROLES) | set(self.roles)
        for user, role in self.users.items():
            if role not in known:
                raise ValueError(
                    f"user {user!r} has unknown role {role!r} (known: {', '.join(sorted(known))})"
                )
        return self

    def permission(self, role: str) -> Permission:
        return self.roles.get(role) or DEFAULT_ROLES.get(role) or DEFAULT_ROLES["viewer"]


class InventoryHostConfig(_Strict):
    """One host of the inline inventory. A field left out is derived from the vars, as in an Ansible
    inventory (ansible_host, ansible_port, ...; see opsmith.domain.inventory)."""

    address: str | None = Field(default=None, min_length=1, description="default: ansible_host, or the name")
    port: int | None = Field(default=None, ge=1, le=65535)
    os: Literal["linux", "windows"] | None = None
    connection: Literal["ssh", "winrm", "psrp"] | None = None
    user: str | None = Field(default=None, min_length=1)
    credential: str | None = Field(default=None, min_length=1, description="name of a secret in the vault")
    vars: dict[str, Any] = Field(default_factory=dict)


class InventoryGroupConfig(_Strict):
    """One group of the inline inventory: hosts (name: fields, or a list of names; `web[01:20]`
    ranges allowed), child groups and vars."""

    hosts: dict[str, InventoryHostConfig] = Field(default_factory=dict)
    children: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hosts", mode="before")
    @classmethod
    def _names_or_mapping(cls, hosts: Any) -> Any:
        if isinstance(hosts, list) and all(isinstance(name, str) for name in hosts):
            return {name: {} for name in hosts}
        if isinstance(hosts, dict):
            return {name: {} if spec is None else spec for name, spec in hosts.items()}
        return hosts


class InventoryConfig(_Strict):
    """`inventory:` is a path to an Ansible INI or YAML inventory (relative to the directory of the
    config file), or inline `groups:`. The path is read when the inventory is used, so a broken
    inventory file stops only what needs the inventory; the inline groups are checked here."""

    path: Path | None = None
    groups: dict[str, InventoryGroupConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _a_path_alone(cls, value: Any) -> Any:
        if isinstance(value, (str, Path)):
            return {"path": value}
        if not isinstance(value, dict):
            raise _inventory_problem(
                f"expected a path to an inventory file or a mapping of groups, got {type(value).__name__}",
                "e.g. `inventory: hosts.ini`, or `inventory: {groups: {web: {hosts: [web1]}}}`",
            )
        return value

    @model_validator(mode="after")
    def _valid(self) -> InventoryConfig:
        if self.path is not None and self.groups:
            raise _inventory_problem(
                "has both a path and inline groups", "give one: a path to a file, or the groups"
            )
        try:
            self.inline()
        except InventoryError as exc:
            raise _inventory_problem(exc.reason, exc.hint) from exc
        return self

    def inline(self, source: str | None = None) -> Inventory | None:
        """The inline groups as an Inventory (None when `inventory` is a path)."""
        # Imported here: a config without an inventory (most commands) does not pay for it.
        from opsmith.domain.inventory import InventoryBuilder

        if self.path is not None:
            return None
        builder = InventoryBuilder(source)
        for name, group in self.groups.items():
            builder.group(name)
            for child in group.children:
                if child not in self.groups:
                    # Ansible would make an empty group of it; here it is far more likely a typo.
                    nearest = difflib.get_close_matches(child, list(self.groups), n=3)
                    raise builder.error(
                        f"group {name!r} has child {child!r}, which is not one of the groups",
                        hint=f"did you mean {_either(nearest)}?" if nearest else f"declare group {child!r}",
                    )
                builder.child(name, child)
            for key, value in group.vars.items():
                builder.var(name, key, value)
            for pattern, host in group.hosts.items():
                fields = host.model_dump(exclude={"vars"}, exclude_none=True)
                builder.hosts(name, pattern, host.vars, fields=fields)
        return builder.build()


def _inventory_problem(reason: str, hint: str | None) -> PydanticCustomError:
    # A custom error keeps the reason as written (no "Value error, ") and carries the hint along.
    return PydanticCustomError("inventory", "{reason}", {"reason": reason, "hint": hint})


_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _env_reference(value: str) -> str:
    # A secret is named, never written: the file is shared and committed, the environment is not.
    if not _ENV_REF.match(value):
        raise ValueError(
            "must be an environment variable reference such as ${SLACK_WEBHOOK_URL}, not the secret"
        )
    return value


EnvReference = Annotated[str, AfterValidator(_env_reference)]


class SlackChannel(_Strict):
    """A Slack (or Slack-compatible) incoming webhook; its URL is a secret, so it is a reference.

    With `signing_secret` (the Slack app's, a reference too), clicks on its Approve and Reject
    buttons arrive at POST /api/v1/chat/slack/interactions, signed by Slack. `users` maps Slack user
    ids to opsmith users (rbac.users gives their roles); anyone else is refused. `team_id`, when
    given, is the only workspace accepted. The decision is shown by POSTing to the click's
    response_url, only when it starts with one of `response_url_prefixes`."""

    type: Literal["slack"]
    webhook_url: EnvReference
    signing_secret: EnvReference | None = None
    team_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,32}$")
    users: dict[Annotated[str, Field(pattern=r"^[A-Z0-9]{2,32}$")], Annotated[str, Field(min_length=1)]] = (
        Field(default_factory=dict, description="Slack user id -> opsmith user")
    )
    response_url_prefixes: list[str] = Field(
        default_factory=lambda: ["https://hooks.slack.com/"], min_length=1
    )

    @field_validator("response_url_prefixes")
    @classmethod
    def _origins(cls, prefixes: list[str]) -> list[str]:
        for prefix in prefixes:
            if not re.match(r"^https?://[^/@\\\s]+/[^\\\s]*$", prefix):
                raise ValueError(
                    f"response_url prefix {prefix!r} must be http(s)://HOST[:PORT]/PATH (ending in a path"
                    " so a longer host cannot pass as it)"
                )
        return prefixes

    def secret_templates(self) -> list[str]:
        return [self.webhook_url] + ([self.signing_secret] if self.signing_secret else [])


class WebhookChannel(_Strict):
    """A generic JSON webhook, each body signed with HMAC-SHA256 under `secret` (X-Opsmith-Signature)."""

    type: Literal["webhook"]
    url: str
    secret: EnvReference

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^(https?://|\$\{)", value):
            raise ValueError("must start with http:// or https://")
        return value

    def secret_templates(self) -> list[str]:
        return [self.secret, self.url]  # a URL may hold a token too: it is never shown


class EmailChannel(_Strict):
    """E-mail over SMTP; with `username`, only after STARTTLS (a password never crosses in clear)."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = Field(default=None, min_length=1)
    password: EnvReference | None = None
    sender: str = Field(alias="from", min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    ca_bundle: Path | None = Field(
        default=None, description="PEM of the CA that signs the server's certificate"
    )

    @model_validator(mode="after")
    def _auth_over_tls(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.username is not None and not self.starttls:
            raise ValueError("username and password need starttls: true, or the password is sent in clear")
        return self

    def secret_templates(self) -> list[str]:
        return [] if self.password is None else [self.password]


ChannelConfig = Annotated[SlackChannel | WebhookChannel | EmailChannel, Field(discriminator="type")]


class NotificationRule(_Strict):
    """Which events, in which environments ("*": any, "none": plans with no environment), go where."""

    events: list[NotifyEvent] = Field(min_length=1)
    environments: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    channels: list[str] = Field(min_length=1)

    def matches(self, event: NotifyEvent, environment: str | None) -> bool:
        return event in self.events and any(
            e == "*" or e == (environment or "none") for e in self.environments
        )


class NotificationsConfig(_Strict):
    """`notifications:` channels, the rules that route events to them, and how delivery retries."""

    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    rules: list[NotificationRule] = Field(default_factory=list)
    max_attempts: int = Field(default=8, ge=1, le=100, description="attempts before a delivery is given up")
    backoff_initial: float = Field(
        default=30.0, ge=0.01, le=3600, description="seconds after the first failure"
    )
    backoff_max: float = Field(default=3600.0, ge=0.01, le=7 * 24 * 3600)
    deliver_seconds: float = Field(
        default=5.0, ge=0.05, le=3600, description="`opsmith serve` sends due ones"
    )
    lease_seconds: float = Field(default=60.0, ge=1, le=3600, description="a claimed row is another's after")
    send_timeout: float = Field(default=10.0, gt=0, le=300, description="seconds for one send")
    batch: int = Field(default=20, ge=1, le=1000, description="rows one worker claims at a time")
    max_parallel: int = Field(default=4, ge=1, le=100, description="sends one worker makes at once")

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: dict[str, Any]) -> dict[str, Any]:
        for name in channels:
            if not _CHANNEL_NAME.match(name):
                raise ValueError(f"channel name {name!r} must be letters, digits, '.', '_' or '-'")
        return channels

    @model_validator(mode="after")
    def _known_channels(self) -> NotificationsConfig:
        for number, rule in enumerate(self.rules):
            for name in rule.channels:
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none"
                    raise ValueError(
                        f"rule {number} names channel {name!r}, which is not configured (known: {known})"
                    )
        return self

    def secret_values(self, environ: Mapping[str, str]) -> list[str]:
        """What the channels' secret references resolve to in `environ` (those set), to redact."""
        templates = [t for channel in self.channels.values() for t in channel.secret_templates()]
        names = [name for template in templates for name in referenced_variables(template)]
        return [environ[name] for name in dict.fromkeys(names) if environ.get(name)]

    def channels_for(self, event: NotifyEvent, environment: str | None) -> list[str]:
        """The channels of every rule that matches, each once, in the order the rules name them."""
        found = [name for rule in self.rules if rule.matches(event, environment) for name in rule.channels]
        return list(dict.fromkeys(found))


class TaskAgentConfig(_Strict):
    """Overrides for one built-in agent (tasks.agents.<id>)."""

    enabled: bool = True
    max_concurrent: int | None = Field(default=None, ge=1, le=1000)


def _default_escalation() -> list[EscalationLevel]:
    return [
        EscalationLevel(after_minutes=0, to="on-call engineer"),
        EscalationLevel(after_minutes=30, to="team lead"),
        EscalationLevel(after_minutes=120, to="engineering manager"),
    ]


class TasksConfig(_Strict):
    """`tasks:` the follow-up tasks of failures and bug reports, their agents, retries and escalation."""

    orchestrate_seconds: float = Field(
        default=10.0, ge=0.05, le=3600, description="`opsmith serve` assigns and runs tasks"
    )
    environments: list[str] = Field(
        default_factory=lambda: ["production"], description="a failed run here makes an emergency task"
    )
    max_attempts: int = Field(default=5, ge=1, le=100, description="attempts before a task fails")
    backoff_initial: float = Field(
        default=30.0, ge=0.01, le=3600, description="seconds after the first failure"
    )
    backoff_max: float = Field(default=1800.0, ge=0.01, le=7 * 24 * 3600)
    raise_priority_every: int = Field(
        default=2, ge=1, le=100, description="failed attempts per priority level"
    )
    heartbeat_timeout_seconds: float = Field(
        default=120.0, ge=1, le=86400, description="an agent silent this long loses its tasks to the backup"
    )
    lease_seconds: float = Field(
        default=300.0, ge=1, le=86400, description="a running task is another's after"
    )
    handler_timeout: float = Field(default=60.0, gt=0, le=3600, description="seconds for one attempt")
    batch: int = Field(default=100, ge=1, le=10000, description="queued tasks considered per pass")
    deadlines: dict[Priority, float] = Field(
        default_factory=lambda: {
            Priority.EMERGENCY: 60.0,
            Priority.CRITICAL: 240.0,
            Priority.HIGH: 24 * 60.0,
        },
        description="minutes from creation to the deadline, per priority (none: no deadline)",
    )
    escalation: list[EscalationLevel] = Field(default_factory=_default_escalation)
    agents: dict[str, TaskAgentConfig] = Field(default_factory=dict)
    weights: dict[Literal["capability", "load", "success", "priority"], float] = Field(default_factory=dict)

    @field_validator("escalation")
    @classmethod
    def _in_order(cls, levels: list[EscalationLevel]) -> list[EscalationLevel]:
        delays = [level.after_minutes for level in levels]
        if delays != sorted(delays):
            raise ValueError("escalation levels must come in the order of their after_minutes")
        return levels

    @field_validator("agents")
    @classmethod
    def _known_agents(cls, agents: dict[str, TaskAgentConfig]) -> dict[str, TaskAgentConfig]:
        from opsmith.domain.agents import BUILT_IN

        known = {agent.id for agent in BUILT_IN}
        for name in agents:
            if name not in known:
                shown = ", ".join(sorted(known))
                raise ValueError(f"tasks.agents names {name!r}, which is not an agent (known: {shown})")
        return agents

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, float]) -> dict[str, float]:
        for name, value in weights.items():
            if not 0 <= value <= 10:
                raise ValueError(f"tasks.weights.{name} must be between 0 and 10, not {value}")
        return weights


class GithubIssuesConfig(_Strict):
    """Where failure issues are mirrored on GitHub (or GitHub Enterprise: its `/api/v3` URL)."""

    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$", description="owner/name")
    token: EnvReference = Field(description="a token allowed to write issues, e.g. ${GITHUB_TOKEN}")
    base_url: str = Field(default="https://api.github.com", pattern=r"^https?://\S+$")
    timeout: float = Field(default=10.0, gt=0, le=120, description="seconds for one request")

    def secret_values(self, environ: Mapping[str, str]) -> list[str]:
        return [environ[n] for n in referenced_variables(self.token) if environ.get(n)]


class IssuesConfig(_Strict):
    """`issues:` open an issue for a failed or rolled-back run in these environments, one open issue
    per failure fingerprint; `on_recurrence` says what a failure does once its issue was closed:
    `reopen` it, or open a `new` one. Kept in the built-in tracker, mirrored on GitHub when set."""

    environments: list[str] = Field(
        default_factory=list, description='where failures become issues ("*": any); none: nowhere'
    )
    labels: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=lambda: ["opsmith", "failure"]
    )
    on_recurrence: Literal["reopen", "new"] = "reopen"
    github: GithubIssuesConfig | None = None
    sync_seconds: float = Field(default=30.0, ge=0.05, le=3600, description="`opsmith serve` syncs due ones")
    backoff_initial: float = Field(default=30.0, ge=0.01, le=3600, description="seconds after a failure")
    backoff_max: float = Field(default=3600.0, ge=0.01, le=7 * 24 * 3600)
    lease_seconds: float = Field(default=120.0, ge=1, le=3600, description="a sync holds an issue so long")
    batch: int = Field(default=20, ge=1, le=1000, description="issues one sync mirrors at most")

    def applies_to(self, environment: str | None) -> bool:
        return any(e == "*" or e == (environment or "none") for e in self.environments)


class WatchedRepository(_Strict):
    """A GitHub repository whose pushes may re-plan a failed deployment: the application it holds,
    the branches that count, and the environment the re-plan deploys to. `replan`: `addressed`
    makes a plan only for a push that plausibly fixes the recorded root cause; `always` makes one
    for any push, saying when it does not address the cause (and with the risk raised)."""

    application: str = Field(min_length=1)
    branches: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["main"], min_length=1
    )
    environment: str = Field(default="production", min_length=1)
    replan: Literal["addressed", "always"] = "addressed"


class GithubWebhookConfig(_Strict):
    """`webhooks.github`: deliveries signed with `secret` (X-Hub-Signature-256), from these repositories."""

    secret: EnvReference = Field(description="the webhook's secret, e.g. ${GITHUB_WEBHOOK_SECRET}")
    repositories: dict[str, WatchedRepository] = Field(default_factory=dict, description="by owner/name")
    as_user: str = Field(
        default="github-webhook", min_length=1, description="the opsmith user re-plans are made as (its role)"
    )
    max_body_bytes: int = Field(default=5_000_000, ge=1024, le=50_000_000)


class WebhooksConfig(_Strict):
    github: GithubWebhookConfig | None = None


class CeleryConfig(_Strict):
    """`executor: celery`: steps are called by `opsmith worker` processes over a Redis broker. The
    database holds each call (`step_calls`); a broker message only asks a worker to make progress."""

    broker_url: str | None = Field(
        default=None,
        pattern=r"^rediss?://\S+$",
        description="redis://[:PASSWORD@]HOST:PORT/DB; a password best as ${VARIABLE}; masked when shown",
    )
    visibility_timeout: float = Field(
        default=3600.0,
        ge=5,
        le=7 * 86400,
        description="seconds before Redis hands an unacknowledged message out again",
    )
    concurrency: int = Field(default=8, ge=1, le=500, description="calls one worker makes at once (threads)")
    heartbeat_seconds: float = Field(
        default=2.0, gt=0, le=300, description="how often a worker says it is alive"
    )
    lost_after_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="a claimed call whose worker is silent this long was cut off"
    )
    resend_after_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="a call no worker claimed within this is asked for again"
    )

    @model_validator(mode="after")
    def _lost_after_beats(self) -> CeleryConfig:
        if self.lost_after_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError("lost_after_seconds must be more than twice heartbeat_seconds")
        return self


class Config(_Strict):
    """Everything opsmith is configured with. Built once by `load_config`."""

    mcp_servers: dict[str, ServerConfig] = Field(default_factory=dict, alias="mcpServers")
    database_url: str | None = None
    sqlite_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: every commit survives a power cut; normal: survives a killed process, much faster",
    )
    state_dir: Path = Path(".opsmith")
    key_file: Path | None = Field(
        default=None,
        description="the key that signs plans, approvals, roles and the audit trail"
        " (default: STATE_DIR/integrity.key); OPSMITH_AUDIT_KEY overrides it",
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="the key that encrypts the credential vault, never the same as key_file"
        " (default: STATE_DIR/secret.key); OPSMITH_SECRET_KEY overrides it",
    )
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    applications: dict[str, ApplicationConfig] = Field(default_factory=dict)
    planning: PlanningConfig = Field(default_factory=PlanningConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    rbac: RbacConfig | None = None
    api: ApiConfig = Field(default_factory=ApiConfig)
    inventory: InventoryConfig | None = Field(
        default=None, description="a path to an Ansible INI/YAML inventory, or inline groups"
    )
    winrm: WinrmConfig = Field(default_factory=WinrmConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    issues: IssuesConfig = Field(default_factory=IssuesConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    executor: Literal["local", "celery"] = Field(
        default="local", description="local: steps run in the driving process; celery: on `opsmith worker`s"
    )
    celery: CeleryConfig = Field(default_factory=CeleryConfig)
    source: str = Field(default="<defaults>", exclude=True)

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _one_transport_each(cls, servers: Any) -> Any:
        if isinstance(servers, dict):
            for name, spec in servers.items():
                if isinstance(spec, dict):
                    _check_transport_keys(name, spec)
        return servers

    @field_validator("mcp_servers")
    @classmethod
    def _names(cls, servers: dict[str, Any]) -> dict[str, Any]:
        for name in servers:
            if not _SERVER_NAME.match(name):
                raise ValueError(f"server name {name!r} must be letters, digits, '.', '_' or '-'")
            if name == "hosts":
                # The fleet's operations are the tools of the server `hosts`: one name, one door.
                raise ValueError("the server name 'hosts' is the fleet's (the inventory's hosts); rename it")
        return servers

    @model_validator(mode="after")
    def _celery_has_a_broker(self) -> Config:
        if self.executor == "celery" and self.celery.broker_url is None:
            raise ValueError("executor: celery needs celery.broker_url (redis://HOST:PORT/0)")
        return self

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'opsmith.db'}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def signing_key_file(self) -> Path:
        return self.key_file or self.state_dir / "integrity.key"

    @property
    def known_hosts_file(self) -> Path:
        return self.fleet.known_hosts or self.state_dir / "known_hosts"

    @property
    def vault_key_file(self) -> Path:
        return self.secret_key_file or self.state_dir / "secret.key"

    @property
    def audit_witness_file(self) -> Path:
        return self.signing_key_file.with_name("audit.head")

    def server(self, name: str) -> ServerConfig:
        from opsmith.errors import UnknownServerError

        try:
            return self.mcp_servers[name]
        except KeyError as exc:
            known = ", ".join(sorted(self.mcp_servers)) or "none"
            raise UnknownServerError(
                f"no MCP server named {name!r} in {self.source}",
                hint=f"configured servers: {known}",
            ) from exc


def _check_transport_keys(name: str, spec: dict[str, Any]) -> None:
    if "command" in spec and "url" in spec:
        raise ValueError(f"server {name!r} has both 'command' and 'url'; give one")
    if spec.get("type") == "sse":
        raise ValueError(f"server {name!r}: the legacy SSE transport is not supported; use streamable HTTP")


def resolve(template: str, environ: Mapping[str, str], *, where: str) -> str:
    """Substitute `${NAME}` / `${NAME:-default}` from `environ`; a missing variable is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where} references ${{{name}}}, which is not set",
            hint=f"export {name} before starting opsmith, or give a default as ${{{name}:-value}}",
        )

    return _VAR.sub(substitute, template)


def referenced_variables(template: str) -> list[str]:
    return [m.group(1) for m in _VAR.finditer(template)]


def load_config(path: Path | None, environ: Mapping[str, str], *, cwd: Path | None = None) -> Config:
    """Find and parse the configuration: `path`, else $OPSMITH_CONFIG, else ./opsmith.yaml, else the demo."""
    cwd = cwd or Path.cwd()
    if path is None and environ.get(CONFIG_ENV_VAR):
        path = Path(environ[CONFIG_ENV_VAR])
    if path is None and (cwd / DEFAULT_CONFIG_NAME).is_file():
        path = cwd / DEFAULT_CONFIG_NAME
    if path is None:
        return parse_config(BUNDLED_DEMO_CONFIG.read_text(), source="bundled demo config")
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist",
            hint="pass --config with an existing file, or unset OPSMITH_CONFIG to use the demo config",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return _inventory_beside(parse_config(text, source=str(path)), path.absolute().parent)


def _inventory_beside(config: Config, directory: Path) -> Config:
    # A relative inventory path is read from the config file's directory (as Ansible reads
    # `inventory =` in ansible.cfg), so the file names the same inventory from wherever opsmith runs.
    inventory = config.inventory
    if inventory is None or inventory.path is None or inventory.path.is_absolute():
        return config
    beside = inventory.model_copy(update={"path": directory / inventory.path})
    return config.model_copy(update={"inventory": beside})


def parse_config(text: str, *, source: str) -> Config:
    """Parse YAML text into a Config; every problem names the source, the key path and the fix."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}", hint="fix the syntax at that line") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, got {type(data).__name__}",
            hint="start the file with keys such as 'mcpServers:'",
        )
    unknown = _KeyCheck.of(Config, data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _config_error(source, exc, unknown) from exc
    if unknown.keys:
        # Only a key pydantic accepts but the file must not set (an internal field) gets here.
        raise _unknown_keys_error(source, unknown.keys)
    return config.model_copy(update={"source": source})


# Keys of other clients' server entries that mean something opsmith does differently.
_OTHER_CLIENTS_KEYS = {
    "envFile": "opsmith reads no env files; list the variables under 'env' (values may be ${NAME})",
    "serverUrl": "opsmith calls it 'url'",
    "transportType": "opsmith calls it 'type' (stdio or http)",
}
_KIND_NAMES = {"stdio": "stdio", "http": "HTTP"}


@dataclass(frozen=True)
class _Scope:
    """One mapping of the file checked against one model: where it is and the keys it takes."""

    where: str
    allowed: tuple[str, ...]
    kind: str | None = None
    other_kinds: tuple[tuple[str, str], ...] = ()  # (key, kind) that only the other kinds take

    @property
    def place(self) -> str:
        if not self.where:
            return "at the top level"
        return f"in {_kind_name(self.kind)} server {self.where}" if self.kind else f"in {self.where}"


def _kind_name(kind: str) -> str:
    return _KIND_NAMES.get(kind, kind)


@dataclass(frozen=True)
class _UnknownKey:
    scope: _Scope
    key: object

    @property
    def advice(self) -> str | None:
        """What the key should have been: the nearest allowed keys, or what opsmith calls it."""
        if isinstance(self.key, str) and self.key in _OTHER_CLIENTS_KEYS:
            return _OTHER_CLIENTS_KEYS[self.key]
        kinds = [_kind_name(kind) for key, kind in self.scope.other_kinds if key == self.key]
        if kinds:
            return f"only {' or '.join(kinds)} servers take it"
        nearest = _nearest(str(self.key), self.scope.allowed)
        return f"did you mean {_either(nearest)}?" if nearest else None


def _nearest(key: str, allowed: Sequence[str]) -> list[str]:
    # Case-blind, so `MCPServers` or `Command` still find their key.
    by_lower = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(key.lower(), by_lower, n=3, cutoff=0.6)
    if not close:
        return []
    # Only those about as near as the nearest: `mcpServer` means mcpServers, not also `serve`.
    best = difflib.SequenceMatcher(None, key.lower(), close[0]).ratio()
    return [by_lower[n] for n in close if difflib.SequenceMatcher(None, key.lower(), n).ratio() >= best - 0.1]


def _either(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


class _KeyCheck:
    """Every key of the raw file that no model at its place takes, at any depth.

    pydantic reports unknown keys too, but not inside a server entry whose kind it cannot tell
    (`comand:` gives "needs 'command' or 'url'"), and not together with every other error; so the
    file is walked against the models first. The scope of each mapping is kept under pydantic's
    own location, so its `extra_forbidden` errors are worded the same way.
    """

    def __init__(self) -> None:
        self.keys: list[_UnknownKey] = []
        self.scopes: dict[tuple[Any, ...], _Scope] = {}

    @classmethod
    def of(cls, model: type[BaseModel], data: Mapping[Any, Any]) -> _KeyCheck:
        check = cls()
        check._mapping([model], data, (), ())
        return check

    def _value(self, annotation: Any, value: Any, loc: tuple[Any, ...], where: tuple[str, ...]) -> None:
        origin = get_origin(annotation)
        if origin is Annotated:
            inner, *metadata = get_args(annotation)
            choose = next((m.discriminator for m in metadata if isinstance(m, Discriminator)), None)
            if callable(choose):
                self._tagged(get_args(inner), choose(value), value, loc, where)
            else:
                self._value(inner, value, loc, where)
        elif origin in (Union, types.UnionType):
            models = [a for a in get_args(annotation) if _is_model(a)]
            if models and isinstance(value, Mapping):
                self._mapping(models, value, loc, where)
        elif origin is dict and isinstance(value, Mapping):
            for key, item in value.items():
                self._value(get_args(annotation)[1], item, (*loc, key), (*where, str(key)))
        elif origin is list and isinstance(value, list):
            for index, item in enumerate(value):
                self._value(get_args(annotation)[0], item, (*loc, index), (*where, str(index)))
        elif _is_model(annotation) and isinstance(value, Mapping):
            self._mapping([annotation], value, loc, where)

    def _tagged(
        self, members: Sequence[Any], tag: Any, value: Any, loc: tuple[Any, ...], where: tuple[str, ...]
    ) -> None:
        if not isinstance(value, Mapping):
            return
        by_tag = {m.tag: inner for inner, *meta in map(get_args, members) for m in meta if isinstance(m, Tag)}
        if tag not in by_tag:
            # Kind unknown (neither 'command' nor 'url'): any kind's key is a fair suggestion.
            self._mapping(list(by_tag.values()), value, loc, where)
            return
        # A key only another kind takes (`headers` on a stdio server) is left to pydantic, which
        # reports it under the tagged location, or says "both 'command' and 'url'" for that pair.
        mine = _input_names(by_tag[tag])
        others = tuple(
            (n, t) for t, m in by_tag.items() if t != tag for n in _input_names(m) if n not in mine
        )
        self._mapping([by_tag[tag]], value, (*loc, tag), where, kind=tag, other_kinds=others)

    def _mapping(
        self,
        models: Sequence[type[BaseModel]],
        data: Mapping[Any, Any],
        loc: tuple[Any, ...],
        where: tuple[str, ...],
        *,
        kind: str | None = None,
        other_kinds: tuple[tuple[str, str], ...] = (),
    ) -> None:
        if any(m.model_config.get("extra") != "forbid" for m in models):
            return
        fields = {name: info for m in models for name, info in _input_names(m).items()}
        shown = tuple(sorted({info.alias or name for m in models for name, info in _fields(m)}))
        scope = self.scopes[loc] = _Scope(".".join(where), shown, kind, other_kinds)
        tolerate = {key for key, _ in other_kinds}
        for key, item in data.items():
            info = fields.get(key) if isinstance(key, str) else None
            if info is not None:
                self._value(info.annotation, item, (*loc, key), (*where, key))
            elif key not in tolerate:
                self.keys.append(_UnknownKey(scope, key))


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _fields(model: type[BaseModel]) -> Iterator[tuple[str, Any]]:
    # An excluded field (Config.source) is set by opsmith, never by the file.
    return ((name, info) for name, info in model.model_fields.items() if not info.exclude)


def _input_names(model: type[BaseModel]) -> dict[str, Any]:
    by_name = bool(model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name"))
    names: dict[str, Any] = {}
    for name, info in _fields(model):
        names[info.alias or name] = info
        if by_name or not info.alias:
            names[name] = info
    return names


def _config_error(source: str, exc: ValidationError, check: _KeyCheck) -> ConfigError:
    unknown = list(check.keys)
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            parent, key = tuple(error["loc"][:-1]), error["loc"][-1]
            scope = check.scopes.get(parent) or _Scope(".".join(map(str, parent)), ())
            if not any(u.scope.where == scope.where and u.key == key for u in unknown):
                unknown.append(_UnknownKey(scope, key))
    if unknown:
        # Unknown keys first and alone: a misspelt key is usually why the rest failed.
        return _unknown_keys_error(source, unknown)
    return ConfigError(f"{source}: {_describe(exc)}", hint=_hint(exc))


def _unknown_keys_error(source: str, unknown: Sequence[_UnknownKey]) -> ConfigError:
    scopes = list(dict.fromkeys(u.scope for u in unknown))
    hint = "; ".join(f"keys allowed {s.place}: {', '.join(s.allowed)}" for s in scopes if s.allowed)
    if len(unknown) == 1:
        (only,) = unknown
        advice = f"; {only.advice}" if only.advice else ""
        return ConfigError(
            f"{source}: unknown key {only.key!r} {only.scope.place}{advice}",
            hint=hint or "remove that key; README.md shows a complete example",
        )
    parts = [f"{u.key!r} {u.scope.place}" + (f" ({u.advice})" if u.advice else "") for u in unknown]
    return ConfigError(
        f"{source}: {len(unknown)} unknown keys: {'; '.join(parts)}",
        hint=f"rename or remove them. {hint}" if hint else "rename or remove them",
    )


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if p not in ("stdio", "http")]
    path = ".".join(loc) or "(top level)"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{path}: {first['msg']}{more}"


def _hint(exc: ValidationError) -> str:
    if exc.errors()[0]["type"] == "server_kind":
        return "e.g. {command: npx, args: [...]} or {url: 'http://127.0.0.1:8000/mcp'}"
    if exc.errors()[0]["type"] == "inventory" and exc.errors()[0].get("ctx", {}).get("hint"):
        return str(exc.errors()[0]["ctx"]["hint"])
    return "correct that value; README.md shows a complete example"

"""opsmith.yaml parsed into one typed, validated object, built once at the edge.

Values in `env`, `headers`, `url` and `args` may reference environment variables as
`${NAME}` or `${NAME:-default}`. They are kept as templates here and resolved only when a
connection is made (`resolve`), so resolved secrets never reach the store or the output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from opsmith.domain.identity import DEFAULT_ROLES, Permission
from opsmith.engine.settings import ExecutionSettings
from opsmith.errors import ConfigError

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
    risk_words: dict[Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"], list[str]] | None = Field(
        default=None, description="replaces the built-in action words of that level"
    )
    raise_risk_in: list[str] = Field(default_factory=lambda: ["production"])
    recent_failure_days: int = Field(default=7, ge=1, le=365)
    friday_cutoff_hour: int = Field(default=15, ge=0, le=23)


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


class Config(_Strict):
    """Everything opsmith is configured with. Built once by `load_config`."""

    mcp_servers: dict[str, ServerConfig] = Field(default_factory=dict, alias="mcpServers")
    database_url: str | None = None
    sqlite_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: every commit survives a power cut; normal: survives a killed process, much faster",
    )
    state_dir: Path = Path(".opsmith")
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    applications: dict[str, ApplicationConfig] = Field(default_factory=dict)
    planning: PlanningConfig = Field(default_factory=PlanningConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    rbac: RbacConfig | None = None
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
        return servers

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'opsmith.db'}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def server(self, name: str) -> ServerConfig:
        from opsmith.errors import UnknownServerError

        try:
            return self.mcp_servers[name]
        except KeyError:
            known = ", ".join(sorted(self.mcp_servers)) or "none"
            raise UnknownServerError(
                f"no MCP server named {name!r} in {self.source}",
                hint=f"configured servers: {known}",
            ) from None


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
    return parse_config(text, source=str(path))


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
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}", hint=_hint(exc)) from None
    return config.model_copy(update={"source": source})


_ALLOWED = {
    "": sorted(f.alias or n for n, f in Config.model_fields.items() if n != "source"),
    "stdio": sorted(n for n in StdioServerConfig.model_fields),
    "http": sorted(n for n in HttpServerConfig.model_fields),
    "supervision": sorted(SupervisionConfig.model_fields),
    "planning": sorted(PlanningConfig.model_fields),
}


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if p not in ("stdio", "http")]
    path = ".".join(loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{path}: {first['msg']}{more}"


def _hint(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if first["type"] == "server_kind":
        return "e.g. {command: npx, args: [...]} or {url: 'http://127.0.0.1:8000/mcp'}"
    if first["type"] != "extra_forbidden":
        return "correct that value; README.md shows a complete example"
    if loc[:1] == ["mcpServers"] and len(loc) >= 3:
        return "allowed keys for a server: " + ", ".join(sorted(set(_ALLOWED["stdio"] + _ALLOWED["http"])))
    if loc[:1] in (["supervision"], ["planning"]):
        return "allowed keys: " + ", ".join(_ALLOWED[loc[0]])
    return "allowed top-level keys: " + ", ".join(_ALLOWED[""])

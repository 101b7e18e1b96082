"""A Kubernetes-like cluster: deployments with revisions and replica sets, pods whose health comes
from starting their image's files, services, backups, canaries and blue-green colours."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from opsmith.sandbox.errors import RolloutFailed, SandboxError
from opsmith.sandbox.runtime import start

if TYPE_CHECKING:
    import sqlite3

    from opsmith.sandbox.world import World

NAMESPACES = ("production", "staging", "development")
Strategy = Literal["RollingUpdate", "BlueGreen"]
Color = Literal["blue", "green"]
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# CrashLoopBackOff waits 10s, 20s, 40s ... capped at 5 minutes between restarts.
_BACKOFF = [10, 20, 40, 80, 160] + [300] * 1000


def _hash_name(*parts: str, length: int) -> str:
    raw = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in raw[:length])


# --- stored state ---------------------------------------------------------------------------------


class PendingStart(BaseModel):
    """How pods that are still starting will end up, and when (seconds since the epoch)."""

    until: float
    healthy: bool
    reason: str | None
    exit_code: int | None
    logs: list[str]
    port: int | None


STARTING = "ContainerCreating"


class ReplicaSetState(BaseModel):
    name: str
    template_hash: str
    image: str
    repository: str
    digest: str
    revision: int
    replicas: int
    generation: int
    color: Color | None
    created_at: str
    started_at: str
    healthy: bool
    reason: str | None
    exit_code: int | None
    logs: list[str]
    port: int | None
    starting: PendingStart | None = None


class RevisionState(BaseModel):
    revision: int
    replica_set: str
    image: str
    digest: str
    created_at: str
    change_cause: str


class CanaryState(BaseModel):
    replica_set: str
    stable_replica_set: str
    weight: int


class BlueGreenState(BaseModel):
    active: Color
    colors: dict[str, str] = Field(description="colour -> replica set")


class DeploymentState(BaseModel):
    namespace: str
    name: str
    replicas: int
    strategy: Strategy
    max_surge: int
    max_unavailable: int
    revision: int
    status: Literal["Available", "Progressing", "Failed"]
    message: str
    replica_sets: dict[str, ReplicaSetState]
    history: list[RevisionState]
    canary: CanaryState | None = None
    blue_green: BlueGreenState | None = None
    created_at: str
    updated_at: str
    rollout: str | None = Field(
        default=None, description="the replica set still starting whose pods decide an apply's rollout"
    )


class ServiceState(BaseModel):
    namespace: str
    name: str
    deployment: str
    type: str
    port: int
    target_port: int
    node_port: int
    selector: dict[str, str]


class BackupState(BaseModel):
    backup_id: str
    created_at: str
    deployment: DeploymentState
    service: ServiceState | None


# --- views ------------------------------------------------------------------------------------------


class Pod(BaseModel):
    name: str
    namespace: str
    labels: dict[str, str]
    phase: Literal["Running", "Pending"]
    status: str = Field(description="Running, CrashLoopBackOff or ImagePullBackOff")
    ready: bool
    restarts: int
    image: str
    image_digest: str
    replica_set: str
    revision: int
    node: str
    ip: str | None
    started_at: str
    message: str | None


class PodList(BaseModel):
    namespace: str
    label_selector: str | None
    field_selector: str | None
    total: int
    running: int
    ready: int
    not_ready: int
    crash_looping: int
    pods: list[Pod]


class PodLogs(BaseModel):
    pod: str
    status: str
    restarts: int
    lines: list[str]
    error_lines: list[str]


class LogsView(BaseModel):
    namespace: str
    pods: list[PodLogs]
    errors: int
    warnings: int
    health: Literal["healthy", "unhealthy"]


class RevisionView(BaseModel):
    revision: int
    image: str
    digest: str
    replica_set: str
    replicas: int
    ready: int
    status: str
    change_cause: str
    created_at: str
    current: bool


class ReplicaSetView(BaseModel):
    name: str
    revision: int
    image: str
    replicas: int
    ready: int
    color: str | None
    track: str | None


class DeploymentView(BaseModel):
    name: str
    namespace: str
    strategy: Strategy
    replicas: int
    ready_replicas: int
    available: bool
    status: str
    message: str
    revision: int
    image: str
    selector: dict[str, str]
    replica_sets: list[ReplicaSetView]
    revision_history: list[RevisionView]
    canary: CanaryState | None
    blue_green: BlueGreenState | None


class RolloutResult(BaseModel):
    deployment: str
    namespace: str
    action: str
    strategy: Strategy
    revision: int
    previous_revision: int | None
    image: str
    digest: str
    replica_set: str
    desired: int
    ready: int
    replicas: str = Field(description="ready/desired, e.g. 2/2")
    status: str
    message: str
    backup_id: str | None = None
    active_color: str | None = Field(
        default=None, description="Blue-green: the colour taking traffic after this call"
    )


class Endpoint(BaseModel):
    pod: str
    ip: str
    port: int
    replica_set: str
    track: str | None
    color: str | None
    answering: bool = Field(description="The pod listens on the service's target port")


class ServiceView(BaseModel):
    name: str
    namespace: str
    type: str
    cluster_ip: str
    port: int
    target_port: int
    node_port: int
    selector: dict[str, str]
    endpoints: list[Endpoint]
    ready_endpoints: int
    traffic_split: dict[str, int] = Field(description="Replica set -> percent of traffic")
    active_color: str | None
    healthy: bool


class ScaleResult(BaseModel):
    deployment: str
    namespace: str
    previous_replicas: int
    replicas: int
    ready: int
    pods: list[str]


class DeleteResult(BaseModel):
    deployment: str
    namespace: str
    replica_sets_deleted: list[str]
    pods_deleted: list[str]
    service_kept: str | None


class BackupResult(BaseModel):
    backup_id: str
    deployment: str
    namespace: str
    revision: int
    image: str
    digest: str
    replicas: int
    replica_set: str
    service: str | None
    created_at: str


class TrafficResult(BaseModel):
    deployment: str
    namespace: str
    previous_color: str
    active_color: str
    revision: int
    image: str
    ready_endpoints: int


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _restarts(started_at: str, now: str) -> int:
    elapsed = max(0.0, (_parse_time(now) - _parse_time(started_at)).total_seconds())
    restarts, waited = 3, 0.0
    for delay in _BACKOFF:
        if waited + delay > elapsed:
            break
        waited += delay
        restarts += 1
    return restarts


def _first_error(logs: list[str]) -> str | None:
    return next(
        (line for line in logs if line.startswith(("Error", "SyntaxError", "npm ERR!", "exec"))), None
    )


def parse_selector(text: str | None) -> list[tuple[str, str, bool]]:
    """`app=x,track!=canary` -> [(key, value, wanted_equal)]."""
    terms: list[tuple[str, str, bool]] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", part)
        if not match:
            raise SandboxError(f"unsupported selector term {part!r}; use key=value or key!=value")
        terms.append((match.group(1), match.group(3), match.group(2) != "!="))
    return terms


def _matches(values: dict[str, str], terms: list[tuple[str, str, bool]]) -> bool:
    return all((values.get(k) == v) == eq for k, v, eq in terms)


class ClusterService:
    def __init__(self, world: World) -> None:
        self.world = world

    # --- storage --------------------------------------------------------------------------------

    def seed_namespaces(self, conn: sqlite3.Connection) -> None:
        for ns in NAMESPACES:
            conn.execute("INSERT OR IGNORE INTO namespaces(name) VALUES (?)", (ns,))

    def _namespace(self, conn: sqlite3.Connection, namespace: str) -> None:
        if conn.execute("SELECT 1 FROM namespaces WHERE name=?", (namespace,)).fetchone() is None:
            names = [r[0] for r in conn.execute("SELECT name FROM namespaces ORDER BY name")]
            raise SandboxError(f"unknown namespace {namespace!r}; namespaces: {', '.join(names)}")

    def _find(self, conn: sqlite3.Connection, namespace: str, name: str) -> DeploymentState | None:
        self._namespace(conn, namespace)
        row = conn.execute(
            "SELECT doc FROM deployments WHERE namespace=? AND name=?", (namespace, name)
        ).fetchone()
        return self._load(row["doc"]) if row else None

    def _load(self, doc: str) -> DeploymentState:
        return self._settle(DeploymentState.model_validate_json(doc))

    def _settle(self, dep: DeploymentState) -> DeploymentState:
        """Pods whose start time has come run or crash-loop now, and a rollout waiting on them ends.

        Worked out from the stored state and the clock on every read, so every reader sees the same
        cluster; the next write stores it."""
        now = self.world.clock()
        for rs in dep.replica_sets.values():
            pending = rs.starting
            if pending is None or pending.until > now:
                continue
            rs.starting = None
            rs.healthy, rs.reason, rs.exit_code = pending.healthy, pending.reason, pending.exit_code
            rs.logs, rs.port = pending.logs, pending.port
            rs.started_at = datetime.fromtimestamp(pending.until, UTC).replace(microsecond=0).isoformat()
            if dep.rollout == rs.name:
                dep.rollout = None
                if rs.color is None:
                    self._progressed(dep, rs, self._previous(dep, rs))
                else:
                    assert dep.blue_green is not None
                    self._idle_outcome(dep, rs, first=rs.color == dep.blue_green.active)
        return dep

    def _get(self, conn: sqlite3.Connection, namespace: str, name: str) -> DeploymentState:
        dep = self._find(conn, namespace, name)
        if dep is None:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM deployments WHERE namespace=? ORDER BY 1", (namespace,)
                )
            ]
            raise SandboxError(
                f"deployment {name!r} not found in namespace {namespace}; "
                f"deployments: {', '.join(names) or 'none'}"
            )
        return dep

    def _save(self, conn: sqlite3.Connection, dep: DeploymentState) -> None:
        dep.updated_at = self.world.now()
        conn.execute(
            "INSERT OR REPLACE INTO deployments(namespace, name, doc) VALUES (?, ?, ?)",
            (dep.namespace, dep.name, dep.model_dump_json()),
        )

    def _service(self, conn: sqlite3.Connection, namespace: str, name: str) -> ServiceState | None:
        row = conn.execute(
            "SELECT doc FROM services WHERE namespace=? AND name=?", (namespace, name)
        ).fetchone()
        return ServiceState.model_validate_json(row["doc"]) if row else None

    def _save_service(self, conn: sqlite3.Connection, svc: ServiceState) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO services(namespace, name, doc) VALUES (?, ?, ?)",
            (svc.namespace, svc.name, svc.model_dump_json()),
        )

    def _ensure_service(
        self, conn: sqlite3.Connection, dep: DeploymentState, target_port: int
    ) -> ServiceState:
        name = f"{dep.name}-service"
        svc = self._service(conn, dep.namespace, name)
        if svc is None:
            used = {
                ServiceState.model_validate_json(r[0]).node_port
                for r in conn.execute("SELECT doc FROM services")
            }
            port = next(p for p in range(30001, 32768) if p not in used)
            svc = ServiceState(
                namespace=dep.namespace,
                name=name,
                deployment=dep.name,
                type="NodePort",
                port=80,
                target_port=target_port,
                node_port=port,
                selector={"app": dep.name},
            )
            self._save_service(conn, svc)
        return svc

    def deployments_using(self, conn: sqlite3.Connection, digest: str) -> list[str]:
        users = []
        for row in conn.execute("SELECT doc FROM deployments ORDER BY namespace, name"):
            dep = self._load(row["doc"])
            if any(rs.digest == digest for rs in dep.replica_sets.values()):
                users.append(f"{dep.namespace}/{dep.name}")
        return users

    # --- pods -----------------------------------------------------------------------------------

    def _start(
        self, conn: sqlite3.Connection, dep: DeploymentState, rs: ReplicaSetState, start_delay: float = 0.0
    ) -> None:
        """(Re)create the replica set's pods: pull the image and start it in the runtime.

        Like a deployment manifest per environment, the cluster sets APP_ENV to the namespace. With
        a `start_delay` the pods show ContainerCreating that long before they run or crash-loop."""
        now = self.world.now()
        rs.generation += 1
        rs.started_at = now
        rs.starting = None
        registry = self.world.registry
        record = registry.record(conn, rs.repository, rs.digest)
        if record is None:
            rs.healthy, rs.reason, rs.exit_code, rs.port = False, "ImagePullBackOff", None, None
            rs.logs = [
                f'Failed to pull image "{rs.image}": manifest unknown: '
                f"{rs.digest} is no longer in the registry"
            ]
            return
        outcome = start(registry.filesystem(conn, record), record.config, {"APP_ENV": dep.namespace})
        if start_delay > 0:
            rs.starting = PendingStart(
                until=self.world.clock() + start_delay,
                healthy=outcome.healthy,
                reason=outcome.reason,
                exit_code=outcome.exit_code,
                logs=outcome.logs,
                port=outcome.port,
            )
            rs.healthy, rs.reason, rs.exit_code, rs.logs, rs.port = False, STARTING, None, [], None
            return
        rs.healthy, rs.reason, rs.exit_code = outcome.healthy, outcome.reason, outcome.exit_code
        rs.logs, rs.port = outcome.logs, outcome.port

    def _scale_rs(
        self,
        conn: sqlite3.Connection,
        dep: DeploymentState,
        rs: ReplicaSetState,
        replicas: int,
        start_delay: float = 0.0,
    ) -> None:
        if rs.replicas == 0 and replicas > 0:
            self._start(conn, dep, rs, start_delay)
        rs.replicas = replicas

    def _pods(self, dep: DeploymentState, now: str) -> list[Pod]:
        pods = []
        for rs in sorted(dep.replica_sets.values(), key=lambda r: r.revision):
            track = None
            if dep.canary:
                track = "canary" if rs.name == dep.canary.replica_set else "stable"
            for i in range(rs.replicas):
                name = f"{rs.name}-{_hash_name(rs.name, str(rs.generation), str(i), length=5)}"
                labels = {"app": dep.name, "pod-template-hash": rs.template_hash}
                if rs.color:
                    labels["color"] = rs.color
                if track:
                    labels["track"] = track
                digest_bytes = hashlib.sha256(name.encode()).digest()
                ip = f"10.244.{digest_bytes[0] % 4}.{2 + digest_bytes[1] % 250}"
                pull_failed = rs.reason == "ImagePullBackOff"
                starting = rs.starting is not None
                message = None
                if starting:
                    message = f"container app in pod {name} is waiting to start: {STARTING}"
                elif not rs.healthy:
                    last = _first_error(rs.logs)
                    message = f"Back-off restarting failed container app in pod {name}"
                    if pull_failed:
                        message = rs.logs[0]
                    elif last:
                        message += f": {last}"
                pods.append(
                    Pod(
                        name=name,
                        namespace=dep.namespace,
                        labels=labels,
                        phase="Pending" if pull_failed or starting else "Running",
                        status="Running" if rs.healthy else (rs.reason or "CrashLoopBackOff"),
                        ready=rs.healthy,
                        restarts=0
                        if rs.healthy or pull_failed or starting
                        else _restarts(rs.started_at, now),
                        image=rs.image,
                        image_digest=rs.digest,
                        replica_set=rs.name,
                        revision=rs.revision,
                        node=f"worker-{1 + digest_bytes[2] % 3}",
                        ip=None if pull_failed or starting else ip,
                        started_at=rs.started_at,
                        message=message,
                    )
                )
        return pods

    @staticmethod
    def _ready(rs: ReplicaSetState) -> int:
        return rs.replicas if rs.healthy else 0

    # --- rollouts -------------------------------------------------------------------------------

    def _template(
        self, conn: sqlite3.Connection, dep: DeploymentState, image: str, color: Color | None, cause: str
    ) -> ReplicaSetState:
        """The replica set for this pod template: an existing one (re-used, as kubectl does) or a new one."""
        _ref, record = self.world.registry.resolve(conn, image)
        template_hash = _hash_name(dep.name, record.digest, color or "", length=10)
        now = self.world.now()
        revision = max((r.revision for r in dep.history), default=0) + 1
        rs = dep.replica_sets.get(f"{dep.name}-{template_hash}")
        if rs is None:
            rs = ReplicaSetState(
                name=f"{dep.name}-{template_hash}",
                template_hash=template_hash,
                image=image,
                repository=record.repository,
                digest=record.digest,
                revision=revision,
                replicas=0,
                generation=0,
                color=color,
                created_at=now,
                started_at=now,
                healthy=False,
                reason=None,
                exit_code=None,
                logs=[],
                port=None,
            )
            dep.replica_sets[rs.name] = rs
        elif rs.revision != dep.revision or rs.replicas == 0:
            dep.history = [h for h in dep.history if h.replica_set != rs.name]
            rs.revision = revision
        else:
            return rs
        dep.history.append(
            RevisionState(
                revision=rs.revision,
                replica_set=rs.name,
                image=image,
                digest=rs.digest,
                created_at=now,
                change_cause=cause,
            )
        )
        dep.history.sort(key=lambda h: h.revision)
        return rs

    def _serving(self, dep: DeploymentState) -> ReplicaSetState | None:
        if dep.blue_green:
            return dep.replica_sets.get(dep.blue_green.colors.get(dep.blue_green.active, ""))
        if dep.canary:
            return dep.replica_sets.get(dep.canary.stable_replica_set)
        current = next((rs for rs in dep.replica_sets.values() if rs.revision == dep.revision), None)
        if current is not None and current.healthy and current.replicas > 0:
            return current
        healthy = [rs for rs in dep.replica_sets.values() if rs.healthy and rs.replicas > 0]
        return max(healthy, key=lambda r: r.revision) if healthy else current

    def _roll(
        self, conn: sqlite3.Connection, dep: DeploymentState, new: ReplicaSetState, start_delay: float = 0.0
    ) -> str | None:
        """Rolling update to `new`; returns the failure reason when its pods never become ready.

        With a `start_delay` it returns while they start (None): the old pods serve on, and the
        rollout ends when a later look at the deployment finds the new pods started."""
        old = self._serving(dep)
        dep.rollout = None
        if new.replicas > 0 and new.healthy:
            # Already running (a rollback to a replica set that still serves): adopt its pods.
            new.replicas = dep.replicas
        else:
            new.replicas = 0
            self._scale_rs(conn, dep, new, dep.replicas, start_delay)
        dep.revision = new.revision
        if new.starting is not None:
            dep.rollout = new.name
            dep.status = "Progressing"
            dep.message = f"Waiting for rollout to finish: 0 of {dep.replicas} updated replicas are available"
            return None
        return self._progressed(dep, new, old)

    def _previous(self, dep: DeploymentState, new: ReplicaSetState) -> ReplicaSetState | None:
        """The replica set that served before `new` was rolled out: the newest other running one."""
        others = [rs for rs in dep.replica_sets.values() if rs.name != new.name and rs.replicas > 0]
        healthy = [rs for rs in others if rs.healthy]
        return max(healthy or others, key=lambda r: r.revision) if others else None

    def _progressed(
        self, dep: DeploymentState, new: ReplicaSetState, old: ReplicaSetState | None
    ) -> str | None:
        """How a rollout to `new`, whose pods have started, ends; the failure reason if they are not ready."""
        fallback = old.revision if old is not None and old.name != new.name else dep.revision
        if new.healthy:
            for rs in dep.replica_sets.values():
                if rs.name != new.name:
                    rs.replicas = 0
            dep.status, dep.message = "Available", f"ReplicaSet {new.name} has successfully progressed"
            return None
        # maxSurge/maxUnavailable bound how far a rollout gets before it stalls on unready pods.
        new.replicas = min(dep.replicas, max(1, dep.max_surge + dep.max_unavailable))
        for rs in dep.replica_sets.values():
            if rs.name == new.name:
                continue
            keep = old is not None and rs.name == old.name and rs.healthy and rs.replicas > 0
            rs.replicas = max(0, dep.replicas - dep.max_unavailable) if keep else 0
        reason = new.reason or "CrashLoopBackOff"
        error = _first_error(new.logs)
        dep.status = "Failed"
        dep.message = (
            f"ProgressDeadlineExceeded: ReplicaSet {new.name} has 0/{new.replicas} ready pods: {reason}"
            + (f" ({error})" if error else "")
        )
        if old is not None and old.name != new.name and old.healthy and old.replicas > 0:
            serving = f"Revision {old.revision} ({old.image}) still serves {old.replicas} pods"
        else:
            serving = "No ready revision is serving"
        tail = " | ".join(line for line in new.logs[-14:] if line.strip())[:900]
        return (
            f"rollout of {dep.name} revision {new.revision} ({new.image}) in {dep.namespace} failed: "
            f"0/{new.replicas} new pods ready, {reason}"
            + (f": {error}" if error else "")
            + f". Last log lines: {tail}. "
            f"{serving}; run rollback_deployment to restore revision {fallback}."
        )

    def _result(
        self, dep: DeploymentState, rs: ReplicaSetState, action: str, previous: int | None
    ) -> RolloutResult:
        ready = sum(self._ready(r) for r in dep.replica_sets.values() if r.name == rs.name)
        return RolloutResult(
            deployment=dep.name,
            namespace=dep.namespace,
            action=action,
            strategy=dep.strategy,
            revision=rs.revision,
            previous_revision=previous,
            image=rs.image,
            digest=rs.digest,
            replica_set=rs.name,
            desired=dep.replicas,
            ready=ready,
            replicas=f"{ready}/{dep.replicas}",
            status=dep.status,
            message=dep.message,
            active_color=dep.blue_green.active if dep.blue_green else None,
        )

    def _unanswered(self, conn: sqlite3.Connection, dep: DeploymentState, rs: ReplicaSetState) -> str | None:
        """Why traffic the service sends to `rs` fails (its pods listen on another port), or None."""
        svc = self._service(conn, dep.namespace, f"{dep.name}-service")
        if svc is None or not rs.healthy or rs.port in (None, svc.target_port):
            return None
        return (
            f"its pods listen on port {rs.port} while {svc.name} sends traffic to port {svc.target_port}, "
            "so no request to them is answered"
        )

    def apply(
        self,
        namespace: str,
        name: str,
        image: str,
        replicas: int | None,
        strategy: Strategy,
        max_surge: int,
        max_unavailable: int,
        *,
        start_delay: float = 0.0,
    ) -> RolloutResult:
        """Roll `image` out. With a `start_delay` (seconds) the call returns at once, as `kubectl
        apply` does, while the new pods start: whether they run shows only in later reads."""
        failure: str | None = None
        with self.world.db.tx(write=True) as conn:
            dep = self._find(conn, namespace, name)
            now = self.world.now()
            previous = dep.revision if dep else None
            if dep is None:
                dep = DeploymentState(
                    namespace=namespace,
                    name=name,
                    replicas=replicas or 1,
                    strategy=strategy,
                    max_surge=max_surge,
                    max_unavailable=max_unavailable,
                    revision=0,
                    status="Progressing",
                    message="created",
                    replica_sets={},
                    history=[],
                    created_at=now,
                    updated_at=now,
                )
            if dep.canary:
                raise SandboxError(
                    f"a canary ({dep.canary.replica_set}) is active on {name}; "
                    "promote_canary or rollback_deployment first"
                )
            if dep.strategy == "BlueGreen" and strategy == "RollingUpdate" and dep.blue_green:
                raise SandboxError(
                    f"{name} uses BlueGreen; apply with strategy=BlueGreen and use switch_traffic"
                )
            if replicas is not None:
                dep.replicas = replicas
            dep.max_surge, dep.max_unavailable = max_surge, max_unavailable
            cause = f"apply image {image}"
            if strategy == "BlueGreen":
                rs, failure = self._apply_blue_green(conn, dep, image, cause, start_delay)
                action = "deployed-to-idle-color"
            else:
                dep.strategy = "RollingUpdate"
                rs = self._template(conn, dep, image, None, cause)
                if rs.revision == dep.revision and rs.healthy and rs.replicas > 0:
                    self._scale_rs(conn, dep, rs, dep.replicas)
                    action = "unchanged" if previous == rs.revision else "configured"
                else:
                    failure = self._roll(conn, dep, rs, start_delay)
                    action = "rolled-out" if failure is None else "rollout-failed"
                    if rs.starting is not None:
                        action = "rollout-started"
            port = rs.port or (rs.starting.port if rs.starting else None)
            svc = self._ensure_service(conn, dep, port or 3000)
            if dep.blue_green and svc.selector.get("color") != dep.blue_green.active:
                svc.selector = {"app": dep.name, "color": dep.blue_green.active}
                self._save_service(conn, svc)
            self._save(conn, dep)
            result = self._result(dep, rs, action, previous)
        if failure:
            raise RolloutFailed(failure, result)
        return result

    def _apply_blue_green(
        self,
        conn: sqlite3.Connection,
        dep: DeploymentState,
        image: str,
        cause: str,
        start_delay: float = 0.0,
    ) -> tuple[ReplicaSetState, str | None]:
        if dep.blue_green is None:
            serving = self._serving(dep)
            if serving is not None and serving.replicas > 0:
                # Adopt the running replica set as the live colour; the new image goes to the other.
                serving.color = "blue"
                dep.blue_green = BlueGreenState(active="blue", colors={"blue": serving.name})
            else:
                dep.blue_green = BlueGreenState(active="blue", colors={})
        dep.strategy = "BlueGreen"
        bg = dep.blue_green
        first = not bg.colors
        idle: Color = "blue" if first else ("green" if bg.active == "blue" else "blue")
        rs = self._template(conn, dep, image, idle, cause)
        old_idle = bg.colors.get(idle)
        if old_idle and old_idle != rs.name and old_idle in dep.replica_sets:
            dep.replica_sets[old_idle].replicas = 0
        bg.colors[idle] = rs.name
        rs.color = idle
        dep.rollout = None
        self._start(conn, dep, rs, start_delay)
        rs.replicas = dep.replicas
        if first:
            dep.revision = rs.revision
        if rs.starting is not None:
            dep.rollout = rs.name
            dep.message = f"{idle} ({rs.name}) is starting with {rs.image}" + (
                "" if first else f"; traffic stays on {bg.active}"
            )
            if first:
                dep.status = "Progressing"
            return rs, None
        return rs, self._idle_outcome(dep, rs, first)

    def _idle_outcome(self, dep: DeploymentState, rs: ReplicaSetState, first: bool) -> str | None:
        """How a blue-green deploy to `rs`, whose pods have started, ends; the failure reason if
        they are not ready."""
        bg = dep.blue_green
        assert bg is not None
        assert rs.color is not None
        idle = rs.color
        if not rs.healthy:
            error = _first_error(rs.logs) or rs.reason
            dep.message = (
                f"{idle} ({rs.name}) is not ready: {rs.reason} ({error}); traffic stays on {bg.active}"
            )
            if first:
                dep.status = "Failed"
            return (
                f"blue-green deploy of {rs.image} to {idle} failed: {rs.reason}: {error}. "
                f"Traffic stays on {bg.active}; fix the image and apply again, or rollback_deployment."
            )
        dep.status = "Available"
        dep.message = (
            f"{idle} ({rs.name}) is ready with {rs.image}; traffic stays on {bg.active} until switch_traffic"
            if not first
            else f"{idle} ({rs.name}) is live"
        )
        return None

    def rollback(
        self, namespace: str, name: str, to_revision: int | None, to_backup: str | None
    ) -> RolloutResult:
        failure: str | None = None
        with self.world.db.tx(write=True) as conn:
            dep = self._get(conn, namespace, name)
            dep.rollout = None  # a rollout still starting is undone, not finished later
            previous = dep.revision
            if to_revision is not None and to_backup is not None:
                raise SandboxError("give to_revision or to_backup, not both")
            if dep.canary:
                canary = dep.replica_sets[dep.canary.replica_set]
                stable = dep.replica_sets[dep.canary.stable_replica_set]
                if to_backup is None and (to_revision is None or to_revision == stable.revision):
                    canary.replicas = 0
                    dep.canary = None
                    self._scale_rs(conn, dep, stable, dep.replicas)
                    dep.revision = stable.revision
                    dep.status = "Available" if stable.healthy else "Failed"
                    dep.message = f"canary {canary.name} aborted; {stable.name} takes all traffic"
                    self._save(conn, dep)
                    return self._result(dep, stable, "canary-aborted", canary.revision)
                dep.replica_sets[dep.canary.replica_set].replicas = 0
                dep.canary = None
            if to_backup is not None:
                row = conn.execute("SELECT doc FROM backups WHERE id=?", (to_backup,)).fetchone()
                if row is None:
                    ids = [
                        r[0]
                        for r in conn.execute(
                            "SELECT id FROM backups WHERE namespace=? AND name=? ORDER BY id",
                            (namespace, name),
                        )
                    ]
                    raise SandboxError(
                        f"unknown backup {to_backup!r}; backups of {name}: {', '.join(ids) or 'none'}"
                    )
                backup = BackupState.model_validate_json(row["doc"])
                if (backup.deployment.namespace, backup.deployment.name) != (namespace, name):
                    raise SandboxError(
                        f"backup {to_backup} is of {backup.deployment.namespace}/{backup.deployment.name}"
                    )
                saved = self._serving(backup.deployment)
                if saved is None:
                    raise SandboxError(f"backup {to_backup} captured no running revision")
                image, replicas = saved.image, backup.deployment.replicas
                cause = f"restore backup {to_backup}"
                if backup.service is not None:
                    self._save_service(conn, backup.service)
            else:
                if to_revision is None:
                    older = [h for h in dep.history if h.revision < dep.revision]
                    if not older:
                        raise SandboxError(f"{name} has no revision before {dep.revision} to roll back to")
                    target: RevisionState | None = older[-1]
                else:
                    target = next((h for h in dep.history if h.revision == to_revision), None)
                    if target is None:
                        revs = ", ".join(str(h.revision) for h in dep.history)
                        raise SandboxError(f"{name} has no revision {to_revision}; revisions: {revs}")
                assert target is not None
                image, replicas = target.image, dep.replicas
                cause = f"rollback to revision {target.revision}"
            dep.replicas = replicas
            if dep.blue_green:
                rs, failure = self._rollback_blue_green(conn, dep, image, cause)
            else:
                rs = self._template(conn, dep, image, None, cause)
                failure = self._roll(conn, dep, rs)
            self._save(conn, dep)
            result = self._result(dep, rs, "rolled-back" if failure is None else "rollback-failed", previous)
            result.backup_id = to_backup
        if failure:
            raise SandboxError(failure)
        return result

    def _rollback_blue_green(
        self, conn: sqlite3.Connection, dep: DeploymentState, image: str, cause: str
    ) -> tuple[ReplicaSetState, str | None]:
        """Traffic back on the colour that runs `image` (deployed to the idle colour if none does);
        the colour rolled back from is a release being undone, so its pods are removed."""
        bg = dep.blue_green
        assert bg is not None
        _ref, record = self.world.registry.resolve(conn, image)
        # The live colour first: when it already runs the image, traffic stays where it is.
        colors: list[Color] = sorted(bg.colors, key=lambda c: c != bg.active)  # type: ignore[arg-type]
        target = next((c for c in colors if dep.replica_sets[bg.colors[c]].digest == record.digest), None)
        if target is None:
            rs, failure = self._apply_blue_green(conn, dep, image, cause)
            if failure is not None:
                return rs, failure
            target = rs.color or "blue"
        rs = dep.replica_sets[bg.colors[target]]
        if rs.replicas == 0:
            self._scale_rs(conn, dep, rs, dep.replicas)
        if not rs.healthy:
            return rs, f"{target} ({rs.name}) is not ready: {rs.reason}; traffic stays on {bg.active}"
        self._activate(conn, dep, target)
        for other in bg.colors.values():
            if other != rs.name:
                dep.replica_sets[other].replicas = 0
        return rs, None

    def _activate(self, conn: sqlite3.Connection, dep: DeploymentState, color: Color) -> None:
        bg = dep.blue_green
        assert bg is not None
        bg.active = color
        rs = dep.replica_sets[bg.colors[color]]
        dep.revision = rs.revision
        dep.status, dep.message = "Available", f"traffic is on {color} ({rs.name}, {rs.image})"
        svc = self._service(conn, dep.namespace, f"{dep.name}-service")
        if svc is not None:
            svc.selector = {"app": dep.name, "color": color}
            self._save_service(conn, svc)

    def switch_traffic(self, namespace: str, name: str, color: Color | None) -> TrafficResult:
        with self.world.db.tx(write=True) as conn:
            dep = self._get(conn, namespace, name)
            if dep.blue_green is None:
                raise SandboxError(
                    f"{name} is not a blue-green deployment; apply_deployment with strategy=BlueGreen first"
                )
            bg = dep.blue_green
            previous = bg.active
            target: Color = color or ("green" if bg.active == "blue" else "blue")
            if target not in bg.colors:
                raise SandboxError(
                    f"{name} has nothing deployed to {target}; apply_deployment with strategy=BlueGreen"
                )
            rs = dep.replica_sets[bg.colors[target]]
            failure = None
            if target != previous:
                if not rs.healthy or rs.replicas == 0:
                    error = _first_error(rs.logs) or rs.reason
                    raise SandboxError(
                        f"{target} ({rs.name}, {rs.image}) has 0/{rs.replicas} ready pods "
                        f"({rs.reason}: {error}); "
                        f"traffic stays on {previous}"
                    )
                self._activate(conn, dep, target)
                self._save(conn, dep)
                # Like a real cut-over, the service is checked once it carries the traffic.
                unanswered = self._unanswered(conn, dep, rs)
                if unanswered:
                    failure = (
                        f"switched {name} from {previous} to {target} ({rs.name}, {rs.image}), "
                        f"but {unanswered}: traffic on {target} is failing. "
                        f"Switch back with switch_traffic color={previous} "
                        "(or rollback_deployment)."
                    )
            svc_ready = self._ready(rs)
        if failure:
            raise SandboxError(failure)
        return TrafficResult(
            deployment=name,
            namespace=namespace,
            previous_color=previous,
            active_color=target,
            revision=rs.revision,
            image=rs.image,
            ready_endpoints=svc_ready,
        )

    def canary(self, namespace: str, name: str, image: str, weight: int) -> RolloutResult:
        if not 1 <= weight <= 99:
            raise SandboxError("canary weight is a percentage from 1 to 99; use promote_canary for 100")
        failure = None
        with self.world.db.tx(write=True) as conn:
            dep = self._get(conn, namespace, name)
            dep.rollout = None
            if dep.blue_green:
                raise SandboxError(
                    f"{name} is blue-green; use apply_deployment(strategy=BlueGreen) and switch_traffic"
                )
            stable = (
                self._serving(dep) if dep.canary is None else dep.replica_sets[dep.canary.stable_replica_set]
            )
            if stable is None or not stable.healthy or stable.replicas == 0:
                raise SandboxError(
                    f"{name} has no healthy stable revision to run a canary against; "
                    "rollback_deployment first"
                )
            _ref, record = self.world.registry.resolve(conn, image)
            if record.digest == stable.digest:
                raise SandboxError(f"{image} is already the stable image of {name}")
            canary_replicas = max(1, round(dep.replicas * weight / 100))
            if dep.canary and dep.replica_sets[dep.canary.replica_set].digest == record.digest:
                rs = dep.replica_sets[dep.canary.replica_set]
                self._scale_rs(conn, dep, rs, canary_replicas)
                dep.canary.weight = weight
                action = "canary-weight-updated"
            else:
                if dep.canary:
                    dep.replica_sets[dep.canary.replica_set].replicas = 0
                keep_revision = dep.revision
                rs = self._template(conn, dep, image, None, f"canary {image} at {weight}%")
                dep.revision = keep_revision
                rs.replicas = 0
                self._scale_rs(conn, dep, rs, canary_replicas)
                dep.canary = CanaryState(replica_set=rs.name, stable_replica_set=stable.name, weight=weight)
                action = "canary-started"
            unanswered = self._unanswered(conn, dep, rs)
            if unanswered:
                dep.status = "Progressing"
                dep.message = f"canary {rs.name} receives {weight}% of traffic, but {unanswered}"
                failure = (
                    f"canary {rs.name} ({rs.image}) receives {weight}% of traffic, but {unanswered}. "
                    f"Stable {stable.name} serves the rest; rollback_deployment aborts the canary."
                )
            elif rs.healthy:
                dep.status = "Available"
                dep.message = f"canary {rs.name} ({rs.image}) receives {weight}% of traffic"
            else:
                error = _first_error(rs.logs) or rs.reason
                dep.status = "Progressing"
                dep.message = (
                    f"canary {rs.name} is not ready ({rs.reason}); stable {stable.name} keeps serving"
                )
                failure = (
                    f"canary {rs.name} ({rs.image}) pods are not ready: {rs.reason}: {error}. "
                    f"Stable {stable.name} keeps serving; rollback_deployment aborts the canary."
                )
            self._save(conn, dep)
            result = self._result(dep, rs, action, stable.revision)
            result.desired = rs.replicas
            result.ready = self._ready(rs)
            result.replicas = f"{result.ready}/{rs.replicas}"
        if failure:
            raise SandboxError(failure)
        return result

    def promote(self, namespace: str, name: str) -> RolloutResult:
        with self.world.db.tx(write=True) as conn:
            dep = self._get(conn, namespace, name)
            if dep.canary is None:
                raise SandboxError(f"{name} has no active canary; start one with canary_deploy")
            rs = dep.replica_sets[dep.canary.replica_set]
            if not rs.healthy:
                raise SandboxError(
                    f"canary {rs.name} is not ready ({rs.reason}); rollback_deployment to abort it"
                )
            previous = dep.revision
            dep.canary = None
            self._scale_rs(conn, dep, rs, dep.replicas)
            for other in dep.replica_sets.values():
                if other.name != rs.name:
                    other.replicas = 0
            dep.revision = rs.revision
            dep.status, dep.message = "Available", f"canary {rs.name} promoted; it takes all traffic"
            self._save(conn, dep)
            return self._result(dep, rs, "canary-promoted", previous)

    def scale(self, namespace: str, name: str, replicas: int) -> ScaleResult:
        if not 0 <= replicas <= 50:
            raise SandboxError("replicas must be between 0 and 50")
        with self.world.db.tx(write=True) as conn:
            dep = self._get(conn, namespace, name)
            before = dep.replicas
            dep.replicas = replicas
            serving = self._serving(dep)
            if serving is None:
                raise SandboxError(f"{name} has no replica set to scale")
            self._scale_rs(conn, dep, serving, replicas)
            if dep.canary:
                canary = dep.replica_sets[dep.canary.replica_set]
                self._scale_rs(
                    conn, dep, canary, max(1, round(replicas * dep.canary.weight / 100)) if replicas else 0
                )
            self._save(conn, dep)
            pods = [p for p in self._pods(dep, self.world.now()) if p.replica_set == serving.name]
        return ScaleResult(
            deployment=name,
            namespace=namespace,
            previous_replicas=before,
            replicas=replicas,
            ready=sum(1 for p in pods if p.ready),
            pods=[p.name for p in pods],
        )

    def delete(self, namespace: str, name: str) -> DeleteResult:
        with self.world.db.tx(write=True) as conn:
            dep = self._get(conn, namespace, name)
            pods = [p.name for p in self._pods(dep, self.world.now())]
            conn.execute("DELETE FROM deployments WHERE namespace=? AND name=?", (namespace, name))
            svc = self._service(conn, namespace, f"{name}-service")
        return DeleteResult(
            deployment=name,
            namespace=namespace,
            replica_sets_deleted=sorted(dep.replica_sets),
            pods_deleted=pods,
            service_kept=svc.name if svc else None,
        )

    def backup(self, namespace: str, name: str) -> BackupResult:
        with self.world.db.tx(write=True) as conn:
            dep = self._get(conn, namespace, name)
            serving = self._serving(dep)
            if serving is None or not serving.healthy:
                raise SandboxError(f"{name} has no healthy running revision to back up")
            svc = self._service(conn, namespace, f"{name}-service")
            now = self.world.now()
            count = conn.execute(
                "SELECT COUNT(*) FROM backups WHERE namespace=? AND name=?", (namespace, name)
            ).fetchone()[0]
            stamp = re.sub(r"[^0-9]", "", now)[:14]
            backup_id = f"backup-{namespace}-{name}-{stamp}-{count + 1}"
            doc = BackupState(backup_id=backup_id, created_at=now, deployment=dep, service=svc)
            conn.execute(
                "INSERT INTO backups(id, namespace, name, doc) VALUES (?, ?, ?, ?)",
                (backup_id, namespace, name, doc.model_dump_json()),
            )
        return BackupResult(
            backup_id=backup_id,
            deployment=name,
            namespace=namespace,
            revision=serving.revision,
            image=serving.image,
            digest=serving.digest,
            replicas=dep.replicas,
            replica_set=serving.name,
            service=svc.name if svc else None,
            created_at=now,
        )

    # --- reads ----------------------------------------------------------------------------------

    def deployment(self, namespace: str, name: str) -> DeploymentView:
        with self.world.db.tx() as conn:
            dep = self._get(conn, namespace, name)
        serving = self._serving(dep)
        current = next((rs for rs in dep.replica_sets.values() if rs.revision == dep.revision), serving)
        ready = sum(self._ready(rs) for rs in dep.replica_sets.values())
        if dep.blue_green:
            ready = self._ready(serving) if serving else 0
        rs_views = []
        for rs in sorted(dep.replica_sets.values(), key=lambda r: r.revision):
            track = None
            if dep.canary:
                track = "canary" if rs.name == dep.canary.replica_set else "stable"
            rs_views.append(
                ReplicaSetView(
                    name=rs.name,
                    revision=rs.revision,
                    image=rs.image,
                    replicas=rs.replicas,
                    ready=self._ready(rs),
                    color=rs.color,
                    track=track,
                )
            )
        history = []
        for h in dep.history:
            owner = dep.replica_sets.get(h.replica_set)
            status = "deleted"
            if owner is not None:
                status = (
                    ("Running" if owner.healthy else owner.reason or "NotReady")
                    if owner.replicas
                    else "ScaledDown"
                )
            history.append(
                RevisionView(
                    revision=h.revision,
                    image=h.image,
                    digest=h.digest,
                    replica_set=h.replica_set,
                    replicas=owner.replicas if owner else 0,
                    ready=self._ready(owner) if owner else 0,
                    status=status,
                    change_cause=h.change_cause,
                    created_at=h.created_at,
                    current=h.revision == dep.revision,
                )
            )
        return DeploymentView(
            name=dep.name,
            namespace=dep.namespace,
            strategy=dep.strategy,
            replicas=dep.replicas,
            ready_replicas=ready,
            available=serving is not None and serving.healthy and ready >= dep.replicas,
            status=dep.status,
            message=dep.message,
            revision=dep.revision,
            image=current.image if current else "",
            selector={"app": dep.name},
            replica_sets=rs_views,
            revision_history=history,
            canary=dep.canary,
            blue_green=dep.blue_green,
        )

    def _all_pods(self, conn: sqlite3.Connection, namespace: str) -> list[Pod]:
        self._namespace(conn, namespace)
        now = self.world.now()
        pods: list[Pod] = []
        for row in conn.execute("SELECT doc FROM deployments WHERE namespace=? ORDER BY name", (namespace,)):
            pods.extend(self._pods(self._load(row["doc"]), now))
        return pods

    def pods(self, namespace: str, label_selector: str | None, field_selector: str | None) -> PodList:
        labels = parse_selector(label_selector)
        fields = parse_selector(field_selector)
        for key, _v, _eq in fields:
            if key not in ("status.phase", "metadata.name", "spec.nodeName"):
                raise SandboxError(
                    f"unsupported field selector {key!r}; use status.phase, metadata.name or spec.nodeName"
                )
        with self.world.db.tx() as conn:
            pods = self._all_pods(conn, namespace)
        chosen = [
            p
            for p in pods
            if _matches(p.labels, labels)
            and _matches({"status.phase": p.phase, "metadata.name": p.name, "spec.nodeName": p.node}, fields)
        ]
        return PodList(
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            total=len(chosen),
            running=sum(1 for p in chosen if p.status == "Running"),
            ready=sum(1 for p in chosen if p.ready),
            not_ready=sum(1 for p in chosen if not p.ready),
            crash_looping=sum(1 for p in chosen if p.status == "CrashLoopBackOff"),
            pods=chosen,
        )

    def logs(
        self, namespace: str, pod_name: str | None, label_selector: str | None, tail_lines: int
    ) -> LogsView:
        if (pod_name is None) == (label_selector is None):
            raise SandboxError("give exactly one of pod_name or label_selector (e.g. app=my-application)")
        with self.world.db.tx() as conn:
            pods = self._all_pods(conn, namespace)
            deps = {
                r["name"]: self._load(r["doc"])
                for r in conn.execute("SELECT name, doc FROM deployments WHERE namespace=?", (namespace,))
            }
        if pod_name is not None:
            chosen = [p for p in pods if p.name == pod_name]
            if not chosen:
                names = ", ".join(p.name for p in pods[:30])
                raise SandboxError(f"pod {pod_name!r} not found in {namespace}; pods: {names or 'none'}")
        else:
            terms = parse_selector(label_selector)
            chosen = [p for p in pods if _matches(p.labels, terms)]
            if not chosen:
                raise SandboxError(f"no pods match {label_selector} in {namespace}")
        result = []
        for pod in chosen:
            rs = deps[pod.labels["app"]].replica_sets[pod.replica_set]
            lines = rs.logs[-tail_lines:] if tail_lines > 0 else []
            errors = [line for line in lines if re.search(r"\b(Error|ERR!|Failed|exception)\b", line)]
            result.append(
                PodLogs(
                    pod=pod.name, status=pod.status, restarts=pod.restarts, lines=lines, error_lines=errors
                )
            )
        n_errors = sum(len(p.error_lines) for p in result)
        warnings = sum(1 for p in result for line in p.lines if "warn" in line.lower())
        healthy = n_errors == 0 and all(p.status == "Running" for p in result)
        return LogsView(
            namespace=namespace,
            pods=result,
            errors=n_errors,
            warnings=warnings,
            health="healthy" if healthy else "unhealthy",
        )

    def service(self, namespace: str, name: str) -> ServiceView:
        with self.world.db.tx() as conn:
            self._namespace(conn, namespace)
            svc = self._service(conn, namespace, name) or self._service(conn, namespace, f"{name}-service")
            if svc is None:
                names = [
                    r[0]
                    for r in conn.execute(
                        "SELECT name FROM services WHERE namespace=? ORDER BY 1", (namespace,)
                    )
                ]
                raise SandboxError(
                    f"service {name!r} not found in {namespace}; services: {', '.join(names) or 'none'}"
                )
            dep = self._find(conn, namespace, svc.deployment)
        pods = self._pods(dep, self.world.now()) if dep else []
        terms = [(k, v, True) for k, v in svc.selector.items()]
        endpoints = [
            Endpoint(
                pod=p.name,
                ip=p.ip or "",
                port=svc.target_port,
                replica_set=p.replica_set,
                track=p.labels.get("track"),
                color=p.labels.get("color"),
                answering=dep is not None and dep.replica_sets[p.replica_set].port == svc.target_port,
            )
            for p in pods
            if p.ready and _matches(p.labels, terms)
        ]
        split: dict[str, int] = {}
        if dep and dep.canary:
            split = {
                dep.canary.stable_replica_set: 100 - dep.canary.weight,
                dep.canary.replica_set: dep.canary.weight,
            }
        else:
            serving = sorted({e.replica_set for e in endpoints})
            for i, rs_name in enumerate(serving):
                split[rs_name] = 100 // len(serving) + (1 if i < 100 % len(serving) else 0)
        digest_bytes = hashlib.sha256(f"{namespace}/{svc.name}".encode()).digest()
        return ServiceView(
            name=svc.name,
            namespace=namespace,
            type=svc.type,
            cluster_ip=f"10.96.{digest_bytes[0]}.{1 + digest_bytes[1] % 254}",
            port=svc.port,
            target_port=svc.target_port,
            node_port=svc.node_port,
            selector=svc.selector,
            endpoints=endpoints,
            ready_endpoints=len(endpoints),
            traffic_split=split,
            active_color=dep.blue_green.active if dep and dep.blue_green else None,
            healthy=dep is not None
            and bool(endpoints)
            and all(e.answering for e in endpoints)
            and len(endpoints) >= dep.replicas,
        )

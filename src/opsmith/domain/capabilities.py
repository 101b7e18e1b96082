"""What a playbook step needs done, described in words tools are matched against.

Each capability says which words in a tool's name make it a candidate, which words point to a
different job, whether it writes, whether it changes the target environment, and what in the
tool's output can serve as compliance evidence.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.evidence import Condition

Effect = Literal["read", "write", "any"]


class Capability(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    name_words: list[str]
    keywords: list[str] = Field(default_factory=list)
    avoid: list[str] = Field(default_factory=list)
    effect: Effect = "any"
    changes_target: bool = False
    provider: str = "an MCP server offering it"
    # Words a server offering this kind of capability talks about: a server that fits the domain
    # ranks above one that merely has a tool with a matching name (kubectl_* over git_status).
    domain: list[str] = Field(default_factory=list)
    # The fact naming what the step acts on, for a tool's generic `name` parameter.
    object_fact: str = "subject"
    evidence: dict[str, list[list[Condition]]] = Field(default_factory=dict)
    default_duration: tuple[float, float] = (30.0, 120.0)


def _c(path: str, op: str, value: object = None) -> Condition:
    return Condition.model_validate({"path": path, "op": op, "value": value})


CI = "a CI server (e.g. Jenkins)"
QUALITY = "a code-quality server (e.g. SonarQube)"
REGISTRY = "an image registry server"
CLUSTER = "a deployment target server (e.g. Kubernetes)"

CI_DOMAIN = ["jenkins", "ci", "pipeline", "job", "jobs", "build", "builds"]
QUALITY_DOMAIN = ["sonar", "sonarqube", "quality", "analysis", "vulnerabilities", "issues", "gate"]
REGISTRY_DOMAIN = ["registry", "image", "images", "docker", "tag", "tags", "repository"]
CLUSTER_DOMAIN = [
    "kubernetes",
    "kubectl",
    "k8s",
    "cluster",
    "pod",
    "pods",
    "deployment",
    "deployments",
    "namespace",
    "helm",
]


HOSTS = "an inventory of hosts reached over SSH or WinRM (`inventory:` in opsmith.yaml)"
HOSTS_DOMAIN = ["host", "hosts", "inventory", "ssh", "winrm", "linux", "windows", "bash", "powershell"]


# What the hosts said, read from every one of them (no host failed): the state the undo of a
# change restores (`running_hosts`) before the change, and the state after it once it is done.
_EVERY_HOST_ANSWERED = [[_c("failed", "==", 0)]]


def _host(
    name: str,
    words: list[str],
    *,
    effect: Effect,
    avoid: list[str] | None = None,
    duration: tuple[float, float] = (10.0, 60.0),
    changes: bool | None = None,
    evidence: tuple[str, ...] = (),
) -> Capability:
    """An operation on every host of a group: the server `hosts` offers each as a tool."""
    return Capability(
        name=name,
        name_words=words,
        keywords=[*words, "hosts", "service"],
        avoid=avoid or [],
        effect=effect,
        changes_target=effect == "write" if changes is None else changes,
        provider=HOSTS,
        domain=HOSTS_DOMAIN,
        evidence=dict.fromkeys(evidence, _EVERY_HOST_ANSWERED),
        default_duration=duration,
    )


CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in [
        Capability(
            name="build",
            name_words=["build", "compile"],
            keywords=["build", "compile", "artifacts", "pipeline", "job", "branch", "commit"],
            avoid=["status", "logs", "log", "artifacts", "list", "compare", "last", "get", "abort", "image"],
            effect="write",
            provider=CI,
            domain=CI_DOMAIN,
            default_duration=(120, 300),
        ),
        Capability(
            name="test",
            name_words=["test", "tests"],
            keywords=["test", "tests", "suite", "coverage", "unit", "integration"],
            avoid=["results", "result", "get"],
            effect="write",
            provider=CI,
            domain=CI_DOMAIN,
            evidence={"tests_passed": [[_c("status", "==", "PASSED")], [_c("failed", "==", 0)]]},
            default_duration=(180, 420),
        ),
        Capability(
            name="quality_scan",
            name_words=["analyze", "analysis", "quality", "sonar", "lint"],
            keywords=["quality", "analysis", "code", "smells", "bugs", "gate", "metrics"],
            avoid=["configure", "list", "get", "coverage", "gates"],
            effect="write",
            provider=QUALITY,
            domain=QUALITY_DOMAIN,
            evidence={
                "quality_gate_passed": [
                    [_c("quality_gate.status", "==", "PASSED")],
                    [_c("status", "==", "PASSED")],
                    [_c("passed", "==", True)],
                ]
            },
            default_duration=(120, 240),
        ),
        Capability(
            name="security_scan",
            name_words=["vulnerabilities", "vulnerability", "security", "cve", "cves", "audit"],
            keywords=["security", "vulnerabilities", "cve", "dependencies", "scan", "advisories"],
            avoid=["hotspots", "configure"],
            provider=QUALITY,
            domain=QUALITY_DOMAIN,
            evidence={
                "security_scan_passed": [
                    [_c("counts.CRITICAL", "==", 0), _c("counts.HIGH", "==", 0)],
                    [_c("critical", "==", 0), _c("high", "==", 0)],
                ]
            },
            default_duration=(120, 180),
        ),
        Capability(
            name="push_image",
            name_words=["push", "publish"],
            keywords=["image", "push", "registry", "container", "docker", "build"],
            avoid=["pull", "delete", "list"],
            effect="write",
            provider=REGISTRY,
            domain=REGISTRY_DOMAIN,
            default_duration=(180, 300),
        ),
        Capability(
            name="verify_image",
            name_words=["verify", "inspect", "validate"],
            keywords=["verify", "image", "integrity", "exists", "layers", "digest", "files"],
            avoid=["delete", "push", "pods", "deployment"],
            effect="read",
            provider=REGISTRY,
            domain=REGISTRY_DOMAIN,
            default_duration=(10, 60),
        ),
        Capability(
            name="backup",
            name_words=["backup", "snapshot", "export"],
            keywords=["backup", "snapshot", "restore", "export", "revision"],
            avoid=["get", "list", "plugins"],  # reading about backups is not making one
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            evidence={"backup_verified": [[_c("backup_id", "exists")], [_c("id", "exists")]]},
            default_duration=(10, 60),
        ),
        Capability(
            name="deploy",
            name_words=["deploy", "deployment", "apply", "release", "rollout"],
            keywords=["deploy", "deployment", "apply", "rolling", "image", "release", "update"],
            avoid=["delete", "rollback", "get", "scale", "canary", "backup", "promote", "list", "history"],
            effect="write",
            changes_target=True,
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(120, 180),
        ),
        Capability(
            name="canary",
            name_words=["canary"],
            keywords=["canary", "traffic", "percentage", "weight", "share"],
            avoid=["promote", "abort"],
            effect="write",
            changes_target=True,
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(120, 180),
        ),
        Capability(
            name="promote",
            name_words=["promote"],
            keywords=["promote", "canary", "stable", "traffic"],
            effect="write",
            changes_target=True,
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(60, 120),
        ),
        Capability(
            name="switch_traffic",
            name_words=["switch", "cutover", "traffic"],
            keywords=["switch", "traffic", "blue", "green", "colour", "color"],
            avoid=["get", "canary"],
            effect="write",
            changes_target=True,
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(10, 60),
        ),
        Capability(
            name="verify_pods",
            name_words=["pods", "pod", "instances", "replicas"],
            keywords=["pods", "running", "status", "ready", "restarts"],
            avoid=["logs", "log", "delete", "scale"],
            effect="read",
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            evidence={"pods_running": [[_c("crash_looping", "==", 0), _c("not_ready", "==", 0)]]},
            default_duration=(10, 60),
        ),
        Capability(
            name="check_logs",
            name_words=["logs", "log"],
            keywords=["logs", "errors", "container", "pod", "health"],
            avoid=["build", "console"],
            effect="read",
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            evidence={"monitoring_enabled": [[_c("health", "==", "healthy")], [_c("errors", "==", 0)]]},
            default_duration=(60, 120),
        ),
        Capability(
            name="check_service",
            name_words=["service", "endpoint", "endpoints"],
            object_fact="service_name",
            keywords=["service", "endpoints", "traffic", "port", "accessible"],
            avoid=["delete"],
            effect="read",
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            evidence={"service_healthy": [[_c("healthy", "==", True)], [_c("ready_endpoints", ">", 0)]]},
            default_duration=(10, 60),
        ),
        Capability(
            name="deployment_status",
            name_words=["deployment", "rollout", "status"],
            keywords=["deployment", "status", "revision", "history", "spec"],
            avoid=["delete", "apply", "scale", "rollback", "backup"],
            effect="read",
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(5, 30),
        ),
        Capability(
            name="scale",
            name_words=["scale", "resize"],
            keywords=["scale", "replicas", "pods", "count"],
            effect="write",
            changes_target=True,
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(30, 120),
        ),
        Capability(
            name="rollback",
            name_words=["rollback", "revert", "undo", "restore"],
            keywords=["rollback", "previous", "revision", "restore", "revert"],
            effect="write",
            changes_target=True,
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(60, 120),
        ),
        Capability(
            name="delete",
            name_words=["delete", "remove", "destroy"],
            keywords=["delete", "deployment", "remove", "pods"],
            avoid=["image", "tag"],
            effect="write",
            changes_target=True,
            provider=CLUSTER,
            domain=CLUSTER_DOMAIN,
            default_duration=(30, 90),
        ),
        Capability(
            name="notify",
            name_words=["notify", "notification", "message", "alert", "post", "send"],
            keywords=["notify", "slack", "email", "message", "channel", "team"],
            effect="write",
            provider="a notification server (e.g. Slack or email)",
            default_duration=(1, 10),
        ),
        _host(
            "host_service_status",
            ["status"],
            effect="read",
            duration=(2, 15),
            evidence=("backup_verified", "monitoring_enabled"),
        ),
        _host("host_service_start", ["start"], effect="write", avoid=["restart"], duration=(5, 60)),
        _host("host_service_stop", ["stop"], effect="write", duration=(5, 60)),
        # A restart interrupts clients but leaves nothing changed to undo: the same service, as configured.
        _host("host_service_restart", ["restart"], effect="write", changes=False, duration=(5, 90)),
        _host(
            "host_process_check", ["process"], effect="read", duration=(2, 15), evidence=("backup_verified",)
        ),
        _host("host_install_file", ["file"], effect="write", avoid=["package"], duration=(5, 60)),
        _host("host_package_update", ["update", "upgrade"], effect="write", duration=(30, 300)),
        # A pinned version per host: the undo of an update puts each host's previous version back.
        _host(
            "host_package_install",
            ["install"],
            effect="write",
            avoid=["file", "update", "upgrade"],
            duration=(30, 300),
        ),
        _host(
            "host_wait_healthy",
            ["healthy", "wait"],
            effect="read",
            duration=(5, 120),
            evidence=("monitoring_enabled",),
        ),
    ]
}

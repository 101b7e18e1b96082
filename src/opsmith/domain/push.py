"""GitHub push deliveries as values: the signature check, the payload read, and what a push changed
compared with what the failed run before it needs (its root cause, the code its scans read).

Pure: bytes and values in, values out. The service (services.replan) reads the stores and the
failed run's analysis; this module only decides.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsmith.domain.errors import UsageError

__all__ = [
    "CauseMatch",
    "DeliveryOutcome",
    "DeliveryRecord",
    "DeliveryReplayed",
    "FileChanges",
    "MalformedPayload",
    "Push",
    "PushCommit",
    "ReplanRecord",
    "RootCause",
    "ScanRecord",
    "ScanReuse",
    "SignatureMismatch",
    "UnwatchedRepository",
    "Verdict",
    "WebhookRefused",
    "check_delivery_id",
    "match_cause",
    "net_changes",
    "parse_push",
    "read_json",
    "scan_record",
    "scan_reuse",
    "scan_summary",
    "signature_of",
    "verify_signature",
]

SIGNATURE_PREFIX = "sha256="
ZERO_SHA = "0" * 40
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
MAX_PATHS = 10_000  # files a push may list; GitHub lists at most 3,000 per commit and 20 commits


class WebhookRefused(UsageError):
    """A webhook delivery refused before anything was done for it: nothing of it is written."""


class SignatureMismatch(WebhookRefused):
    """X-Hub-Signature-256 missing, malformed, or not the HMAC of the body under the shared secret."""


class DeliveryReplayed(WebhookRefused):
    """A delivery id that was accepted before: the same delivery sent again is refused."""


class MalformedPayload(WebhookRefused):
    """A body that is not the JSON of the event it says it is, or headers that are missing."""


class UnwatchedRepository(WebhookRefused):
    """A push from a repository `webhooks.github.repositories` does not list."""


# -- the signature ---------------------------------------------------------------------------------


def signature_of(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body` under `secret`."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """SignatureMismatch unless `header` is `sha256=<hex HMAC-SHA256(secret, body)>`; the digests are
    compared in constant time, and no message says any part of the expected one."""
    hint = "sign the raw body with the webhook's secret: X-Hub-Signature-256: sha256=<hex HMAC-SHA256>"
    if not header:
        raise SignatureMismatch("the delivery has no X-Hub-Signature-256 header", hint=hint)
    digest = header[len(SIGNATURE_PREFIX) :] if header.startswith(SIGNATURE_PREFIX) else ""
    if not _HEX_DIGEST.match(digest):
        raise SignatureMismatch("X-Hub-Signature-256 is not sha256= and 64 hex digits", hint=hint)
    expected = signature_of(secret, body)[len(SIGNATURE_PREFIX) :]
    if not hmac.compare_digest(expected.encode(), digest.lower().encode()):
        raise SignatureMismatch(
            "X-Hub-Signature-256 does not match the body: the secret differs or the body was changed",
            hint="check that GitHub and opsmith share the same secret (webhooks.github.secret)",
        )


def check_delivery_id(delivery: str | None) -> str:
    """The X-GitHub-Delivery id, which is what refuses a replay; MalformedPayload without one."""
    if not delivery or not _DELIVERY_ID.match(delivery):
        raise MalformedPayload(
            "X-GitHub-Delivery is missing or not an id (letters, digits, '-', up to 128)",
            hint="GitHub sends a GUID per delivery; `opsmith webhook replay --delivery ID` sets one",
        )
    return delivery


# -- the payload -----------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class FileChanges(_Frozen):
    """The files a push added, modified and removed, as its net effect (sorted, each path once)."""

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def paths(self) -> frozenset[str]:
        return frozenset((*self.added, *self.modified, *self.removed))

    def describe(self, limit: int = 6) -> str:
        parts = [
            f"{path} {kind}"
            for kind, paths in (("added", self.added), ("modified", self.modified), ("removed", self.removed))
            for path in paths
        ]
        if not parts:
            return "no files"
        more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
        return ", ".join(parts[:limit]) + more


class PushCommit(_Frozen):
    id: str
    message: str = ""
    author: str = ""
    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class Push(_Frozen):
    """One push: where to, the commits before and after it, and what its commits changed."""

    repository: str = Field(description="owner/name")
    ref: str
    before: str
    after: str
    pusher: str = ""
    commits: tuple[PushCommit, ...] = ()

    @property
    def branch(self) -> str | None:
        """The branch pushed to; None for a tag."""
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def deletes_branch(self) -> bool:
        return self.after == ZERO_SHA

    @property
    def changes(self) -> FileChanges:
        return net_changes(self.commits)

    @property
    def head_message(self) -> str:
        return self.commits[-1].message.splitlines()[0] if self.commits and self.commits[-1].message else ""


def net_changes(commits: Iterable[PushCommit]) -> FileChanges:
    """What the commits, in order, did to each path: added then removed is nothing, removed then
    added is modified, added then modified stays added."""
    state: dict[str, str] = {}
    for commit in commits:
        for path in commit.removed:
            if state.get(path) == "added":
                del state[path]
            else:
                state[path] = "removed"
        for path in commit.added:
            state[path] = "modified" if state.get(path) in ("removed", "modified") else "added"
        for path in commit.modified:
            state[path] = "added" if state.get(path) == "added" else "modified"
    by_kind: dict[str, list[str]] = {"added": [], "modified": [], "removed": []}
    for path, kind in sorted(state.items()):
        by_kind[kind].append(path)
    return FileChanges(
        added=tuple(by_kind["added"]), modified=tuple(by_kind["modified"]), removed=tuple(by_kind["removed"])
    )


def read_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; MalformedPayload for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(
            f"the body is not JSON: {exc}",
            hint="send the event's JSON as the raw body (content type application/json)",
        ) from exc
    if not isinstance(data, dict):
        raise MalformedPayload(
            f"the body is JSON but not an object (it is a {type(data).__name__})",
            hint="a GitHub event is one JSON object",
        )
    return data


def repository_of(data: Mapping[str, Any]) -> str | None:
    """The `repository.full_name` of an event, when it names one."""
    repository = data.get("repository")
    name = repository.get("full_name") if isinstance(repository, dict) else None
    return name if isinstance(name, str) and name else None


def parse_push(body: bytes) -> Push:
    """A push event's body as a Push; MalformedPayload naming the first field that is wrong."""
    data = read_json(body)
    repository = repository_of(data)
    if repository is None:
        raise _bad("repository.full_name", "a string such as org/name")
    ref = _text(data, "ref")
    before, after = _sha(data, "before"), _sha(data, "after")
    pusher = data.get("pusher")
    who = pusher.get("name") if isinstance(pusher, dict) else None
    raw = data.get("commits", [])
    if not isinstance(raw, list):
        raise _bad("commits", "a list")
    commits = tuple(_commit(item, index) for index, item in enumerate(raw))
    if sum(len(c.added) + len(c.modified) + len(c.removed) for c in commits) > MAX_PATHS:
        raise MalformedPayload(f"the push lists more than {MAX_PATHS} file changes", hint="push fewer files")
    return Push(
        repository=repository,
        ref=ref,
        before=before,
        after=after,
        pusher=who if isinstance(who, str) else "",
        commits=commits,
    )


def _commit(item: Any, index: int) -> PushCommit:
    where = f"commits[{index}]"
    if not isinstance(item, dict):
        raise _bad(where, "an object")
    author = item.get("author")
    name = (author.get("email") or author.get("name")) if isinstance(author, dict) else None
    message = item.get("message", "")
    return PushCommit(
        id=_sha(item, "id", where=f"{where}.id"),
        message=message if isinstance(message, str) else "",
        author=name if isinstance(name, str) else "",
        added=_paths(item, "added", where),
        modified=_paths(item, "modified", where),
        removed=_paths(item, "removed", where),
    )


def _paths(item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise _bad(f"{where}.{key}", "a list of file paths")
    return tuple(normal_path(p) for p in value)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(key, "a string")
    return value


def _sha(data: Mapping[str, Any], key: str, *, where: str | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _SHA.match(value.lower()):
        raise _bad(where or key, "a commit sha (hex)")
    return value.lower()


def _bad(where: str, wanted: str) -> MalformedPayload:
    return MalformedPayload(
        f"the push event's {where} is missing or not {wanted}",
        hint="send GitHub's push event body unchanged (X-GitHub-Event: push)",
    )


def normal_path(path: str) -> str:
    """A repository path as the root cause and the scans write it: no leading ./ or /."""
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


# -- the push against the root cause ---------------------------------------------------------------


class RootCause(_Frozen):
    """What the failed run's analysis concluded, as far as a push can be compared with it."""

    run_id: str
    plan_id: str
    explained: bool
    error_type: str | None = None
    rule: str | None = None
    root_cause: str = ""
    file: str | None = Field(default=None, description="the file the fix names")
    dockerfile: str | None = Field(default=None, description="the Dockerfile line the fix advises")
    citation: str | None = Field(default=None, description="the evidence line the cause rests on")


class Verdict(StrEnum):
    ADDRESSED = "addressed"  # the push changes what the root cause names
    NOT_ADDRESSED = "not_addressed"  # it does not, or it removes it
    UNDETERMINED = "undetermined"  # the cause names nothing a push could be compared with


class CauseMatch(_Frozen):
    verdict: Verdict
    reasons: tuple[str, ...]
    matched: tuple[str, ...] = Field(default=(), description="the pushed paths that address the cause")


def match_cause(cause: RootCause, changes: FileChanges) -> CauseMatch:
    """Whether the push plausibly fixes the failure: it adds (or changes) the file the fix names, or
    changes the Dockerfile the advised line goes into; a push that removes the file does not."""
    if not cause.explained:
        return CauseMatch(
            verdict=Verdict.UNDETERMINED,
            reasons=(f"the failure of run {cause.run_id} was not explained: no rule matched its evidence",),
        )
    if cause.file is None:
        return CauseMatch(
            verdict=Verdict.UNDETERMINED,
            reasons=(
                f"the root cause ({cause.error_type}: {cause.root_cause}) names no file to compare with",
            ),
        )
    wanted = normal_path(cause.file)
    dockerfiles = [p for p in sorted(changes.paths - set(changes.removed)) if _is_dockerfile(p)]
    if wanted in changes.removed:
        return CauseMatch(
            verdict=Verdict.NOT_ADDRESSED,
            reasons=(f"the push removes {wanted}, the file the root cause names",),
        )
    if wanted in changes.added or wanted in changes.modified:
        how = "added" if wanted in changes.added else "modified"
        reasons = [f"{wanted} {how}: the file the root cause names ({cause.root_cause})"]
        if cause.dockerfile and dockerfiles:
            reasons.append(f"{', '.join(dockerfiles)} changed too, where '{cause.dockerfile}' belongs")
        elif cause.dockerfile:
            reasons.append(
                f"no Dockerfile changed: if it does not already copy it ('{cause.dockerfile}'),"
                " the image check will say so before anything is deployed"
            )
        return CauseMatch(verdict=Verdict.ADDRESSED, reasons=tuple(reasons), matched=(wanted, *dockerfiles))
    if cause.dockerfile and dockerfiles:
        return CauseMatch(
            verdict=Verdict.ADDRESSED,
            reasons=(
                f"{', '.join(dockerfiles)} changed, where '{cause.dockerfile}' belongs; {wanted} itself is"
                " not in the push (the image check will show whether the image has it)",
            ),
            matched=tuple(dockerfiles),
        )
    return CauseMatch(
        verdict=Verdict.NOT_ADDRESSED,
        reasons=(f"the push changes {changes.describe()}; none of them is {wanted} or a Dockerfile",),
    )


def _is_dockerfile(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile")


# -- scans of the failed run, against the push -----------------------------------------------------

_COMMIT_KEYS = ("commit_sha", "commit", "revision")
_PATH_KEYS = ("files_scanned", "files_analyzed", "scanned_files")


class ScanRecord(_Frozen):
    """A scan the failed run made, as recorded: which commit it read, which files, and what it found."""

    step: str
    capability: str
    run_id: str
    tool: str = Field(description="server/tool")
    commit: str | None
    paths: tuple[str, ...] = Field(default=(), description="the files it read")
    scope: tuple[str, ...] = Field(default=(), description="patterns of the files it would read")
    summary: str = ""

    @property
    def citation(self) -> str:
        return f"run {self.run_id}, step {self.step} ({self.tool}), recorded output"


class ScanReuse(_Frozen):
    scan: ScanRecord
    reusable: bool
    reason: str


def scan_record(
    step: str, capability: str, run_id: str, tool: str, output: Mapping[str, Any] | None
) -> ScanRecord:
    """What a scan step's recorded output says it read."""
    data = dict(output or {})
    commit = next((v for k in _COMMIT_KEYS if isinstance(v := data.get(k), str) and v), None)
    paths = next((v for k in _PATH_KEYS if isinstance(v := data.get(k), list)), [])
    scope = data.get("scope")
    return ScanRecord(
        step=step,
        capability=capability,
        run_id=run_id,
        tool=tool,
        commit=commit.lower() if commit else None,
        paths=tuple(normal_path(p) for p in paths if isinstance(p, str) and p),
        scope=tuple(p for p in scope if isinstance(p, str) and p) if isinstance(scope, list) else (),
        summary=scan_summary(data),
    )


def scan_reuse(scan: ScanRecord, push: Push) -> ScanReuse:
    """A scan's recorded result may stand for the pushed code only when it read the commit the push
    starts from and the push changes none of the files it read or would read (its scope)."""
    if scan.commit is None:
        return ScanReuse(scan=scan, reusable=False, reason="its recorded result names no commit")
    if not (scan.commit.startswith(push.before) or push.before.startswith(scan.commit)):
        return ScanReuse(
            scan=scan,
            reusable=False,
            reason=f"it read {scan.commit[:7]} and the push starts from {push.before[:7]}:"
            " what changed between them is not known",
        )
    if not scan.paths and not scan.scope:
        return ScanReuse(scan=scan, reusable=False, reason="its result does not say which files it read")
    changes = push.changes
    read = set(scan.paths)
    touched = sorted(
        p for p in changes.paths if p in read or any(fnmatch.fnmatchcase(p, s) for s in scan.scope)
    )
    if touched:
        return ScanReuse(
            scan=scan, reusable=False, reason=f"the push changes {', '.join(touched[:5])}, which it reads"
        )
    if changes.added and not scan.scope:
        # Without a scope a new file may be one it would read: only its own rescan can tell.
        return ScanReuse(
            scan=scan,
            reusable=False,
            reason="the push adds files and its result does not say which files it would read",
        )
    return ScanReuse(
        scan=scan,
        reusable=True,
        reason=f"the code it read ({len(scan.paths)} file(s) at {scan.commit[:7]}) is unchanged by the push"
        f" ({changes.describe(3)})",
    )


def scan_summary(output: Mapping[str, Any]) -> str:
    """One line of what a scan found, from the fields scan tools report (gate, counts, blocked)."""
    parts: list[str] = []
    gate = output.get("quality_gate")
    if isinstance(gate, dict) and isinstance(gate.get("status"), str):
        parts.append(f"quality gate {gate['status']}")
    if "analysis_id" in output:
        parts.append(f"analysis {output['analysis_id']}")
    counts = output.get("counts")
    if isinstance(counts, dict) and counts:
        parts.append("findings " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if isinstance(output.get("blocked"), bool):
        parts.append("blocked" if output["blocked"] else "not blocked")
    return "; ".join(parts) or "succeeded"


# -- what is recorded of deliveries and re-plans ---------------------------------------------------


class DeliveryOutcome(StrEnum):
    RECEIVED = "received"  # accepted, being acted on
    REPLANNED = "replanned"  # a plan was made
    NOT_ADDRESSED = "not_addressed"  # the push does not address the recorded root cause: no plan
    NO_FAILED_RUN = "no_failed_run"  # nothing failed before it: nothing to re-plan
    IGNORED = "ignored"  # another branch, a tag, a deleted branch, or an event opsmith does not act on
    FAILED = "failed"  # acting on it failed; the same delivery may be sent again


class DeliveryRecord(_Frozen):
    delivery_id: str
    source: str = "github"
    event: str
    repository: str | None = None
    received_at: datetime
    outcome: DeliveryOutcome = DeliveryOutcome.RECEIVED
    detail: str = ""
    plan_id: str | None = None
    push: dict[str, Any] | None = Field(default=None, description="ref, before, after and the files changed")


class ReplanRecord(_Frozen):
    """Why a plan was made again: the failed run it follows, the push, and the cause it matched."""

    plan_id: str
    application: str
    environment: str
    failed_plan_id: str
    failed_run_id: str
    delivery_id: str | None = None
    repository: str
    ref: str
    before: str
    after: str
    pusher: str = ""
    head_message: str = ""
    changes: FileChanges
    cause: RootCause
    match: CauseMatch
    reused: list[str] = Field(default_factory=list, description="scans left out, with the result reused")
    rescanned: list[str] = Field(default_factory=list, description="scans run again, and why")
    difference: str = Field(default="", description="the plan's difference from the failed one, in short")
    created_at: datetime

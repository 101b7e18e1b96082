"""Jenkins-like CI over the sample repositories: jobs, builds with real artifacts, test runs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from opsmith.sandbox.common import resolve_spec, sha256_hex
from opsmith.sandbox.errors import SandboxError
from opsmith.sandbox.jssource import syntax_error
from opsmith.sandbox.repos import CommitInfo, FileChange
from opsmith.sandbox.testsuite import CaseResult, FileCoverage, evaluate, suites_in

if TYPE_CHECKING:
    import sqlite3

    from opsmith.sandbox.world import World

ParamValue = str | int | float | bool
BuildStatus = Literal["SUCCESS", "FAILURE"]


class ArtifactFile(BaseModel):
    path: str
    sha256: str
    size: int


class Build(BaseModel):
    job: str
    number: int
    app: str
    status: BuildStatus
    ref: str = Field(description="Branch, tag or commit that was requested")
    commit_sha: str
    commit_message: str
    version: str | None = Field(description="package.json version at that commit")
    parameters: dict[str, ParamValue]
    started_at: str
    duration_ms: int = Field(description="Simulated duration, derived from the work done")
    artifact_files: int
    artifact_bytes: int
    dependencies: dict[str, str] = Field(description="Resolved runtime dependencies")
    failure_reason: str | None = None


class BuildRecord(Build):
    artifact: list[ArtifactFile]
    log: list[str]

    def summary(self) -> Build:
        return Build.model_validate(self.model_dump(exclude={"artifact", "log"}))


class BuildLog(BaseModel):
    job: str
    number: int
    status: BuildStatus
    total_lines: int
    lines: list[str]


class BuildList(BaseModel):
    job: str
    builds: list[Build]


class Artifacts(BaseModel):
    job: str
    number: int
    commit_sha: str
    files: list[ArtifactFile]
    total_bytes: int
    fingerprint: str = Field(description="sha256 over the sorted file list and checksums")


class ArtifactDiff(BaseModel):
    job: str
    base_build: int
    head_build: int
    base_commit: str
    head_commit: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int


class Job(BaseModel):
    name: str
    app: str
    repository: str
    default_branch: str
    last_build: int | None
    last_status: BuildStatus | None
    last_successful_build: int | None


class JobList(BaseModel):
    jobs: list[Job]


class JobDetail(Job):
    branches: list[str]
    test_suites: list[str]
    builds_total: int
    recent_success_rate: float | None = Field(description="Share of the last 5 builds that succeeded")


class SuiteRun(BaseModel):
    run_id: int
    job: str
    build_number: int
    app: str
    commit_sha: str
    test_suite: str
    status: Literal["PASSED", "FAILED"]
    total: int
    passed: int
    failed: int
    errors: int
    coverage_percent: float
    coverage_required: float | None
    coverage_met: bool
    suites: list[str]
    cases: list[CaseResult]
    files: list[FileCoverage]
    created_at: str


class Branch(BaseModel):
    name: str
    head: CommitInfo


class BranchList(BaseModel):
    app: str
    branches: list[Branch]


class CommitDetail(BaseModel):
    app: str
    commit: CommitInfo
    parent: str | None
    files_changed: list[FileChange]


class ChangeSet(BaseModel):
    app: str
    base: str
    head: str
    commits: list[CommitInfo]
    files: list[FileChange]


class WorkspaceFile(BaseModel):
    app: str
    path: str
    commit_sha: str
    size: int
    sha256: str
    line_count: int
    content: str


def job_name(app: str) -> str:
    return f"{app}-build"


class BuildService:
    def __init__(self, world: World) -> None:
        self.world = world

    # --- naming -------------------------------------------------------------------------------

    def jobs(self) -> list[str]:
        return [job_name(app) for app in self.world.apps()]

    def resolve_job(self, job: str | None, app: str | None) -> tuple[str, str]:
        """A caller names either the job or the app; both must agree when both are given."""
        if job is None and app is None:
            raise SandboxError(f"give job_name or app; jobs: {', '.join(self.jobs())}")
        if app is not None:
            self.world.require_app(app)
        if job is not None:
            if job not in self.jobs():
                raise SandboxError(f"unknown job {job!r}; jobs: {', '.join(self.jobs())}")
            job_app = job.removesuffix("-build")
            if app is not None and app != job_app:
                raise SandboxError(f"job {job!r} builds {job_app}, not {app}")
            return job, job_app
        assert app is not None
        return job_name(app), app

    # --- builds ---------------------------------------------------------------------------------

    def load(self, conn: sqlite3.Connection, job: str, number: int | None) -> BuildRecord:
        if number is None:
            row = conn.execute(
                "SELECT doc FROM builds WHERE job=? ORDER BY number DESC LIMIT 1", (job,)
            ).fetchone()
            if row is None:
                raise SandboxError(f"job {job} has no builds yet; run trigger_build first")
        else:
            row = conn.execute("SELECT doc FROM builds WHERE job=? AND number=?", (job, number)).fetchone()
            if row is None:
                numbers = [
                    r[0]
                    for r in conn.execute("SELECT number FROM builds WHERE job=? ORDER BY number", (job,))
                ]
                raise SandboxError(f"job {job} has no build #{number}; builds: {numbers or 'none'}")
        return BuildRecord.model_validate_json(row["doc"])

    def record(self, job: str, number: int | None) -> BuildRecord:
        with self.world.db.tx() as conn:
            return self.load(conn, job, number)

    def last_successful(self, conn: sqlite3.Connection, job: str) -> BuildRecord | None:
        for row in conn.execute("SELECT doc FROM builds WHERE job=? ORDER BY number DESC", (job,)):
            build = BuildRecord.model_validate_json(row["doc"])
            if build.status == "SUCCESS":
                return build
        return None

    def trigger(
        self,
        job: str | None = None,
        app: str | None = None,
        branch: str = "main",
        commit: str | None = None,
        parameters: dict[str, ParamValue] | None = None,
        raise_on_failure: bool = False,
    ) -> BuildRecord:
        job, app = self.resolve_job(job, app)
        ref = commit or branch
        sha = self.world.repos.resolve(app, ref)
        info = self.world.repos.commit_info(app, sha)
        tree = self.world.repos.tree(app, sha)
        params = dict(parameters or {})
        log = [
            "Started by user opsmith",
            f"Building in workspace /var/jenkins/workspace/{job}",
            f"Checking out Revision {sha} ({ref})",
            f'Commit message: "{info.message}"',
        ]
        if params:
            log.append("Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
        changed = self._incremental(app, sha, params, log)
        failure, version, deps = self._compile(tree, log)
        artifact = [
            ArtifactFile(path=path, sha256=sha256_hex(content), size=len(content))
            for path, content in sorted(tree.items())
        ]
        total = sum(a.size for a in artifact)
        status: BuildStatus = "FAILURE" if failure else "SUCCESS"
        if not failure:
            log.append(f"Archiving artifacts: {len(artifact)} files, {total} bytes")
        log.append(f"Finished: {status}")
        with self.world.db.tx(write=True) as conn:
            self.world.put_blobs(conn, tree.values())
            row = conn.execute("SELECT MAX(number) FROM builds WHERE job=?", (job,)).fetchone()
            number = (row[0] or 0) + 1
            log.insert(0, f"Build #{number} of {job}")
            record = BuildRecord(
                job=job,
                number=number,
                app=app,
                status=status,
                ref=ref,
                commit_sha=sha,
                commit_message=info.message,
                version=version,
                parameters=params,
                started_at=self.world.now(),
                duration_ms=900 + 25 * len(tree) + 180 * len(deps)
                if changed is None
                else 900 + 25 * len(changed) + (180 * len(deps) if "package.json" in changed else 0),
                artifact_files=len(artifact),
                artifact_bytes=total,
                dependencies=deps,
                failure_reason=failure,
                artifact=artifact,
                log=log,
            )
            conn.execute(
                "INSERT INTO builds(job, number, app, doc) VALUES (?, ?, ?, ?)",
                (job, number, app, record.model_dump_json()),
            )
        if failure and raise_on_failure:
            raise SandboxError(
                f"build #{number} of {job} FAILED at {sha[:7]}: {failure}. Log tail: {' | '.join(log[-4:])}. "
                f"Fix the code and trigger_build again (get_build_logs shows the full log)."
            )
        return record

    def _incremental(
        self, app: str, sha: str, params: dict[str, ParamValue], log: list[str]
    ) -> list[str] | None:
        """With parameters incremental=true and since=<commit>: the files changed since that commit,
        the only ones rebuilt (dependencies come from the cache unless package.json changed)."""
        since = params.get("since")
        if params.get("incremental") is not True or not isinstance(since, str):
            return None
        try:
            base = self.world.repos.resolve(app, since)
        except SandboxError:
            log.append(f"Incremental build asked since {since[:12]}, an unknown commit: building everything")
            return None
        changed = [c.path for c in self.world.repos.changes(app, base, sha)]
        shown = ", ".join(changed[:10])
        log.append(f"Incremental build since {base[:7]}: {len(changed)} file(s) changed: {shown}")
        if "package.json" not in changed:
            log.append("Dependencies unchanged since the base build: using the cached node_modules")
        return changed

    @staticmethod
    def _compile(tree: dict[str, bytes], log: list[str]) -> tuple[str | None, str | None, dict[str, str]]:
        """Dependency resolution and a syntax check, the two things `npm ci && npm run build` can fail on."""
        log.append("+ npm ci")
        if "package.json" not in tree:
            log.append("npm ERR! enoent Could not read package.json")
            return "package.json is missing", None, {}
        try:
            package = json.loads(tree["package.json"])
        except ValueError as exc:
            log.append(f"npm ERR! JSON.parse Failed to parse package.json: {exc}")
            return f"package.json is not valid JSON: {exc}", None, {}
        deps: dict[str, str] = {}
        for section in ("dependencies", "devDependencies"):
            for name, spec in (package.get(section) or {}).items():
                try:
                    resolved = resolve_spec(str(spec))
                except ValueError:
                    log.append(f"npm ERR! Invalid version range for {name}: {spec}")
                    return f"invalid version range {spec!r} for {name}", None, {}
                if section == "dependencies":
                    deps[name] = resolved
                log.append(f"  resolved {name}@{resolved} ({spec})")
        log.append(f"added {len(deps)} runtime dependencies from package.json")
        sources = sorted(p for p in tree if p.endswith(".js"))
        log.append(f"+ node --check ({len(sources)} files)")
        for path in sources:
            problem = syntax_error(tree[path].decode("utf-8", errors="replace"))
            if problem:
                line, message = problem.split(": ", 1)
                log.append(f"{path}:{line}")
                log.append(message)
                return f"{path}:{line} {message}", package.get("version"), deps
        log.append(f"Compiled {len(sources)} JavaScript files, {len(tree)} files in workspace")
        return None, package.get("version"), deps

    def list_builds(self, job: str, limit: int) -> BuildList:
        with self.world.db.tx() as conn:
            rows = conn.execute(
                "SELECT doc FROM builds WHERE job=? ORDER BY number DESC LIMIT ?", (job, limit)
            )
            builds = [BuildRecord.model_validate_json(r["doc"]).summary() for r in rows]
        return BuildList(job=job, builds=builds)

    def logs(self, job: str, number: int | None, tail_lines: int | None) -> BuildLog:
        record = self.record(job, number)
        lines = record.log[-tail_lines:] if tail_lines else record.log
        return BuildLog(
            job=job, number=record.number, status=record.status, total_lines=len(record.log), lines=lines
        )

    def artifacts(self, job: str, number: int | None) -> Artifacts:
        record = self.record(job, number)
        fingerprint = sha256_hex("".join(f"{a.path}\0{a.sha256}\n" for a in record.artifact).encode())
        return Artifacts(
            job=job,
            number=record.number,
            commit_sha=record.commit_sha,
            files=record.artifact,
            total_bytes=record.artifact_bytes,
            fingerprint=fingerprint,
        )

    def compare(self, job: str, base: int, head: int | None) -> ArtifactDiff:
        with self.world.db.tx() as conn:
            old, new = self.load(conn, job, base), self.load(conn, job, head)
        old_files = {a.path: a.sha256 for a in old.artifact}
        new_files = {a.path: a.sha256 for a in new.artifact}
        return ArtifactDiff(
            job=job,
            base_build=old.number,
            head_build=new.number,
            base_commit=old.commit_sha,
            head_commit=new.commit_sha,
            added=sorted(new_files.keys() - old_files.keys()),
            removed=sorted(old_files.keys() - new_files.keys()),
            changed=sorted(p for p in new_files.keys() & old_files.keys() if new_files[p] != old_files[p]),
            unchanged=sum(1 for p in new_files.keys() & old_files.keys() if new_files[p] == old_files[p]),
        )

    def _job_summary(self, conn: sqlite3.Connection, app: str) -> Job:
        job = job_name(app)
        last = conn.execute(
            "SELECT doc FROM builds WHERE job=? ORDER BY number DESC LIMIT 1", (job,)
        ).fetchone()
        last_build = BuildRecord.model_validate_json(last["doc"]) if last else None
        good = self.last_successful(conn, job)
        return Job(
            name=job,
            app=app,
            repository=f"myorg/{app}",
            default_branch="main",
            last_build=last_build.number if last_build else None,
            last_status=last_build.status if last_build else None,
            last_successful_build=good.number if good else None,
        )

    def list_jobs(self) -> JobList:
        with self.world.db.tx() as conn:
            return JobList(jobs=[self._job_summary(conn, app) for app in self.world.apps()])

    def job(self, job: str, app: str) -> JobDetail:
        head = self.world.repos.resolve(app, "main")
        suites = sorted(suites_in(self.world.repos.tree(app, head)))
        with self.world.db.tx() as conn:
            summary = self._job_summary(conn, app)
            statuses = [
                BuildRecord.model_validate_json(r["doc"]).status
                for r in conn.execute(
                    "SELECT doc FROM builds WHERE job=? ORDER BY number DESC LIMIT 5", (job,)
                )
            ]
            total = conn.execute("SELECT COUNT(*) FROM builds WHERE job=?", (job,)).fetchone()[0]
        rate = round(statuses.count("SUCCESS") / len(statuses), 2) if statuses else None
        return JobDetail(
            **summary.model_dump(),
            branches=self.world.repos.branches(app),
            test_suites=suites,
            builds_total=total,
            recent_success_rate=rate,
        )

    def last_successful_build(self, job: str) -> Build:
        with self.world.db.tx() as conn:
            build = self.last_successful(conn, job)
        if build is None:
            raise SandboxError(f"job {job} has no successful build; run trigger_build")
        return build.summary()

    # --- tests ----------------------------------------------------------------------------------

    def run_tests(
        self,
        job: str,
        number: int | None,
        test_suite: str = "all",
        coverage_required: float | None = None,
        fail_on_error: bool = False,
    ) -> SuiteRun:
        record = self.record(job, number)
        if record.status != "SUCCESS":
            raise SandboxError(
                f"build #{record.number} of {job} failed ({record.failure_reason}); "
                "fix it and trigger_build again"
            )
        tree = self.world.repos.tree(record.app, record.commit_sha)
        known = sorted(suites_in(tree))
        if not known:
            raise SandboxError(
                f"{record.app} has no test files (tests/*.test.json) at {record.commit_sha[:7]}"
            )
        if test_suite != "all" and test_suite not in known:
            raise SandboxError(f"unknown test suite {test_suite!r}; suites: all, {', '.join(known)}")
        result = evaluate(tree, test_suite)
        passed = sum(1 for c in result.cases if c.status == "PASSED")
        failed = sum(1 for c in result.cases if c.status == "FAILED")
        errors = sum(1 for c in result.cases if c.status == "ERROR")
        coverage_met = coverage_required is None or result.coverage_percent >= coverage_required
        status: Literal["PASSED", "FAILED"] = (
            "PASSED" if failed == 0 and errors == 0 and coverage_met else "FAILED"
        )
        with self.world.db.tx(write=True) as conn:
            cur = conn.execute(
                "INSERT INTO test_runs(job, build_number, app, commit_sha, doc) VALUES (?, ?, ?, ?, '{}')",
                (job, record.number, record.app, record.commit_sha),
            )
            run = SuiteRun(
                run_id=int(cur.lastrowid or 0),
                job=job,
                build_number=record.number,
                app=record.app,
                commit_sha=record.commit_sha,
                test_suite=test_suite,
                status=status,
                total=len(result.cases),
                passed=passed,
                failed=failed,
                errors=errors,
                coverage_percent=result.coverage_percent,
                coverage_required=coverage_required,
                coverage_met=coverage_met,
                suites=result.suites,
                cases=result.cases,
                files=result.files,
                created_at=self.world.now(),
            )
            conn.execute("UPDATE test_runs SET doc=? WHERE id=?", (run.model_dump_json(), run.run_id))
        if fail_on_error and status == "FAILED":
            problems = [f"{c.name}: {c.message}" for c in run.cases if c.status != "PASSED"]
            if not coverage_met:
                problems.append(
                    f"coverage {run.coverage_percent}% is below the required {coverage_required}%"
                )
            raise SandboxError(
                f"tests FAILED for build #{record.number} of {job} "
                f"({passed}/{run.total} passed, run {run.run_id}): "
                + "; ".join(problems[:8])
                + ". get_test_results shows every case."
            )
        return run

    def test_results(self, job: str, number: int | None) -> SuiteRun:
        with self.world.db.tx() as conn:
            if number is None:
                row = conn.execute(
                    "SELECT doc FROM test_runs WHERE job=? ORDER BY id DESC LIMIT 1", (job,)
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT doc FROM test_runs WHERE job=? AND build_number=? ORDER BY id DESC LIMIT 1",
                    (job, number),
                ).fetchone()
        if row is None:
            which = f"build #{number} of {job}" if number is not None else job
            raise SandboxError(f"no test results for {which}; run run_tests first")
        return SuiteRun.model_validate_json(row["doc"])

    def latest_run_for_commit(self, app: str, sha: str) -> SuiteRun | None:
        """The newest full-suite run of a commit: what a quality analysis reports as coverage."""
        with self.world.db.tx() as conn:
            rows = conn.execute(
                "SELECT doc FROM test_runs WHERE app=? AND commit_sha=? ORDER BY id DESC", (app, sha)
            ).fetchall()
        for row in rows:
            run = SuiteRun.model_validate_json(row["doc"])
            if run.test_suite == "all":
                return run
        return None

    # --- source control -------------------------------------------------------------------------

    def branches(self, app: str) -> BranchList:
        repos = self.world.repos
        return BranchList(
            app=app,
            branches=[
                Branch(name=b, head=repos.commit_info(app, repos.resolve(app, b)))
                for b in repos.branches(app)
            ],
        )

    def commit(self, app: str, ref: str) -> CommitDetail:
        repos = self.world.repos
        sha = repos.resolve(app, ref)
        log = repos.log(app, sha, limit=2)
        parent = log[1].sha if len(log) > 1 else None
        if parent:
            changes = repos.changes(app, parent, sha)
        else:
            changes = [FileChange(status="added", path=p) for p in sorted(repos.tree(app, sha))]
        return CommitDetail(app=app, commit=repos.commit_info(app, sha), parent=parent, files_changed=changes)

    def changes_since(
        self, job: str, app: str, since: str | None, since_build: int | None, until: str
    ) -> ChangeSet:
        repos = self.world.repos
        if since is not None and since_build is not None:
            raise SandboxError("give since (a ref) or since_build, not both")
        if since is not None:
            base = repos.resolve(app, since)
        else:
            with self.world.db.tx() as conn:
                build = self.load(conn, job, since_build) if since_build else self.last_successful(conn, job)
            if build is None:
                raise SandboxError(f"job {job} has no successful build to compare with; pass since=<ref>")
            base = build.commit_sha
        head = repos.resolve(app, until)
        return ChangeSet(
            app=app,
            base=base,
            head=head,
            commits=repos.commits_between(app, base, head),
            files=repos.changes(app, base, head),
        )

    def read_file(self, app: str, path: str, ref: str) -> WorkspaceFile:
        sha = self.world.repos.resolve(app, ref)
        tree = self.world.repos.tree(app, sha)
        if path not in tree:
            folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            nearby = sorted(p for p in tree if p.startswith(folder))[:20]
            raise SandboxError(
                f"{path} does not exist in {app} at {sha[:7]}; files there: {', '.join(nearby)}"
            )
        content = tree[path]
        text = content.decode("utf-8", errors="replace")
        return WorkspaceFile(
            app=app,
            path=path,
            commit_sha=sha,
            size=len(content),
            sha256=sha256_hex(content),
            line_count=len(text.splitlines()),
            content=text,
        )

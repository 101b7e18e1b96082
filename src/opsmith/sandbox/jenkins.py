"""Sandbox Jenkins MCP server: 15 CI tools over the shared world (builds, tests, source history)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from opsmith.sandbox.builds import (
    ArtifactDiff,
    Artifacts,
    BranchList,
    Build,
    BuildList,
    BuildLog,
    ChangeSet,
    CommitDetail,
    JobDetail,
    JobList,
    ParamValue,
    SuiteRun,
    WorkspaceFile,
)
from opsmith.sandbox.cli import ServerOptions, serve
from opsmith.sandbox.serving import Caller, hints, reads
from opsmith.sandbox.world import World

JobName = Annotated[
    str | None, Field(description="CI job name, e.g. my-application-build (or give app instead)")
]
AppName = Annotated[
    str | None, Field(description="Application name, e.g. my-application (or give job_name instead)")
]
BuildNumber = Annotated[int | None, Field(description="Build number; omit for the latest build", ge=1)]


def build_server(world: World, options: ServerOptions) -> MCPServer:
    mcp = MCPServer(
        name="jenkins",
        title="Jenkins CI",
        description="Sandbox CI server: build jobs, test runs and source history of the sample applications",
        instructions="Name a job (e.g. my-application-build) or an application (e.g. my-application).",
    )
    call = Caller(options)
    b = world.builds

    @mcp.tool(
        title="List jobs",
        description="List CI build jobs (one per application) with their last build number and status.",
        annotations=reads("List jobs"),
    )
    async def list_jobs() -> JobList:
        return await call("list_jobs", b.list_jobs)

    @mcp.tool(
        title="Get job",
        description="Get a CI job's details: application, branches, test suites and recent build health.",
        annotations=reads("Get job"),
    )
    async def get_job(job_name: JobName = None, app: AppName = None) -> JobDetail:
        def run() -> JobDetail:
            job, name = b.resolve_job(job_name, app)
            return b.job(job, name)

        return await call("get_job", run)

    @mcp.tool(
        title="Trigger build",
        description="Build an application: check out a branch or commit, resolve dependencies, compile and "
        "archive artifacts with checksums. Fails if the build fails.",
        annotations=hints("Trigger build"),
    )
    async def trigger_build(
        job_name: JobName = None,
        app: AppName = None,
        branch: Annotated[str, Field(description="Branch (or tag) to build")] = "main",
        commit: Annotated[str | None, Field(description="Commit sha to build; overrides branch")] = None,
        parameters: Annotated[
            dict[str, ParamValue] | None, Field(description="Build parameters, recorded with the build")
        ] = None,
    ) -> Build:
        def run() -> Build:
            return b.trigger(job_name, app, branch, commit, parameters, raise_on_failure=True).summary()

        return await call("trigger_build", run)

    @mcp.tool(
        title="Get build status",
        description="Get a build's status, commit, version, duration and artifact totals.",
        annotations=reads("Get build status"),
    )
    async def get_build_status(
        job_name: JobName = None, app: AppName = None, build_number: BuildNumber = None
    ) -> Build:
        def run() -> Build:
            job, _ = b.resolve_job(job_name, app)
            return b.record(job, build_number).summary()

        return await call("get_build_status", run)

    @mcp.tool(
        title="Get build logs",
        description="Retrieve a build's console log lines.",
        annotations=reads("Get build logs"),
    )
    async def get_build_logs(
        job_name: JobName = None,
        app: AppName = None,
        build_number: BuildNumber = None,
        tail_lines: Annotated[int | None, Field(description="Only the last N lines", ge=1)] = None,
    ) -> BuildLog:
        def run() -> BuildLog:
            job, _ = b.resolve_job(job_name, app)
            return b.logs(job, build_number, tail_lines)

        return await call("get_build_logs", run)

    @mcp.tool(
        title="List builds",
        description="List a job's recent builds, newest first.",
        annotations=reads("List builds"),
    )
    async def list_builds(
        job_name: JobName = None,
        app: AppName = None,
        limit: Annotated[int, Field(description="How many builds", ge=1, le=100)] = 10,
    ) -> BuildList:
        def run() -> BuildList:
            job, _ = b.resolve_job(job_name, app)
            return b.list_builds(job, limit)

        return await call("list_builds", run)

    @mcp.tool(
        title="Get build artifacts",
        description="List a build's artifact files with sha256 checksums and sizes.",
        annotations=reads("Get build artifacts"),
    )
    async def get_build_artifacts(
        job_name: JobName = None, app: AppName = None, build_number: BuildNumber = None
    ) -> Artifacts:
        def run() -> Artifacts:
            job, _ = b.resolve_job(job_name, app)
            return b.artifacts(job, build_number)

        return await call("get_build_artifacts", run)

    @mcp.tool(
        title="Get last successful build",
        description="Get the most recent successful build of a job.",
        annotations=reads("Get last successful build"),
    )
    async def get_last_successful_build(job_name: JobName = None, app: AppName = None) -> Build:
        def run() -> Build:
            job, _ = b.resolve_job(job_name, app)
            return b.last_successful_build(job)

        return await call("get_last_successful_build", run)

    @mcp.tool(
        title="Compare builds",
        description="Compare two builds' artifacts: files added, removed and changed.",
        annotations=reads("Compare builds"),
    )
    async def compare_builds(
        base_build: Annotated[int, Field(description="Older build number", ge=1)],
        job_name: JobName = None,
        app: AppName = None,
        head_build: BuildNumber = None,
    ) -> ArtifactDiff:
        def run() -> ArtifactDiff:
            job, _ = b.resolve_job(job_name, app)
            return b.compare(job, base_build, head_build)

        return await call("compare_builds", run)

    @mcp.tool(
        title="Run tests",
        description="Run the test suite against a build's commit and measure coverage; fails if tests fail "
        "(when fail_on_error) or coverage is below coverage_required.",
        annotations=hints("Run tests"),
    )
    async def run_tests(
        job_name: JobName = None,
        app: AppName = None,
        build_number: BuildNumber = None,
        test_suite: Annotated[str, Field(description="'all' or a suite name")] = "all",
        coverage_required: Annotated[
            float | None, Field(description="Minimum line coverage percent", ge=0, le=100)
        ] = None,
        fail_on_error: Annotated[bool, Field(description="Return an error when any test fails")] = True,
    ) -> SuiteRun:
        def run() -> SuiteRun:
            job, _ = b.resolve_job(job_name, app)
            return b.run_tests(job, build_number, test_suite, coverage_required, fail_on_error)

        return await call("run_tests", run)

    @mcp.tool(
        title="Get test results",
        description="Get stored test results of a build's latest test run: every case and coverage per file.",
        annotations=reads("Get test results"),
    )
    async def get_test_results(
        job_name: JobName = None, app: AppName = None, build_number: BuildNumber = None
    ) -> SuiteRun:
        def run() -> SuiteRun:
            job, _ = b.resolve_job(job_name, app)
            return b.test_results(job, build_number)

        return await call("get_test_results", run)

    @mcp.tool(
        title="List branches",
        description="List an application's source branches with their head commits.",
        annotations=reads("List branches"),
    )
    async def list_branches(job_name: JobName = None, app: AppName = None) -> BranchList:
        def run() -> BranchList:
            _, name = b.resolve_job(job_name, app)
            return b.branches(name)

        return await call("list_branches", run)

    @mcp.tool(
        title="Get commit",
        description="Get a commit's author, message and the files it changed.",
        annotations=reads("Get commit"),
    )
    async def get_commit(
        job_name: JobName = None,
        app: AppName = None,
        ref: Annotated[str, Field(description="Branch, tag or commit sha")] = "main",
    ) -> CommitDetail:
        def run() -> CommitDetail:
            _, name = b.resolve_job(job_name, app)
            return b.commit(name, ref)

        return await call("get_commit", run)

    @mcp.tool(
        title="Get changes since",
        description="List commits and changed files since a ref or build (default: last successful build).",
        annotations=reads("Get changes since"),
    )
    async def get_changes_since(
        job_name: JobName = None,
        app: AppName = None,
        since: Annotated[str | None, Field(description="Base branch, tag or commit")] = None,
        since_build: Annotated[int | None, Field(description="Base build number", ge=1)] = None,
        until: Annotated[str, Field(description="Head branch, tag or commit")] = "main",
    ) -> ChangeSet:
        def run() -> ChangeSet:
            job, name = b.resolve_job(job_name, app)
            return b.changes_since(job, name, since, since_build, until)

        return await call("get_changes_since", run)

    @mcp.tool(
        title="Read workspace file",
        description="Read a source file of an application at a branch or commit.",
        annotations=reads("Read workspace file"),
    )
    async def read_workspace_file(
        path: Annotated[str, Field(description="Repository path, e.g. server.js")],
        job_name: JobName = None,
        app: AppName = None,
        ref: Annotated[str, Field(description="Branch, tag or commit sha")] = "main",
    ) -> WorkspaceFile:
        def run() -> WorkspaceFile:
            _, name = b.resolve_job(job_name, app)
            return b.read_file(name, path, ref)

        return await call("read_workspace_file", run)

    return mcp


def main(argv: Sequence[str] | None = None) -> None:
    serve("jenkins", build_server, argv)


if __name__ == "__main__":
    main()

"""Sandbox SonarQube MCP server: 10 code quality and security tools computed from repository content."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from opsmith.sandbox.cli import ServerOptions, serve
from opsmith.sandbox.quality import (
    AnalysisSummary,
    Coverage,
    GateList,
    GateMetric,
    GateResult,
    IssueList,
    IssueSeverity,
    Operator,
    ProjectList,
    ProjectMetrics,
    QualityGate,
    VulnerabilityReport,
    VulnSeverity,
)
from opsmith.sandbox.serving import Caller, hints, reads
from opsmith.sandbox.world import World

ProjectKey = Annotated[str, Field(description="Project key = application name, e.g. my-application")]
Limit = Annotated[int, Field(description="Maximum issues to return", ge=1, le=500)]


def build_server(world: World, options: ServerOptions) -> MCPServer:
    mcp = MCPServer(
        name="sonarqube",
        title="SonarQube",
        description="Sandbox code quality server: analyses, gates, coverage and dependency vulnerabilities",
        instructions="Run analyze_project first; the get_* tools read the latest analysis.",
    )
    call = Caller(options)
    q = world.quality

    @mcp.tool(
        title="Analyze project",
        description="Run code quality analysis on a branch (metrics, bugs, code smells, duplication, "
        "coverage) and check the quality gate; fails if the gate fails (when fail_on_gate).",
        annotations=hints("Analyze project"),
    )
    async def analyze_project(
        project_key: ProjectKey,
        branch: Annotated[str, Field(description="Branch or commit to analyze")] = "main",
        quality_gate: Annotated[
            str, Field(description="Gate to check, e.g. default or production-gate")
        ] = "default",
        fail_on_gate: Annotated[bool, Field(description="Return an error when the gate fails")] = True,
    ) -> AnalysisSummary:
        def run() -> AnalysisSummary:
            return q.summary(q.analyze(project_key, branch, quality_gate, fail_on_gate))

        return await call("analyze_project", run)

    @mcp.tool(
        title="Get quality gate",
        description="Get the quality gate status (PASSED/FAILED) of the latest analysis with each condition.",
        annotations=reads("Get quality gate"),
    )
    async def get_quality_gate(
        project_key: ProjectKey,
        quality_gate: Annotated[
            str | None, Field(description="Evaluate against this gate instead of the one analyzed with")
        ] = None,
    ) -> GateResult:
        return await call("get_quality_gate", q.gate_status, project_key, quality_gate)

    @mcp.tool(
        title="Get code coverage",
        description="Get test code coverage of the latest analysis, per file.",
        annotations=reads("Get code coverage"),
    )
    async def get_code_coverage(project_key: ProjectKey) -> Coverage:
        return await call("get_code_coverage", q.coverage, project_key)

    @mcp.tool(
        title="Get vulnerabilities",
        description="Scan for security vulnerabilities: dependencies against known CVEs and unsafe code; "
        "counts per severity; fails if block_on_critical and a CRITICAL finding exists.",
        annotations=reads("Get vulnerabilities"),
    )
    async def get_vulnerabilities(
        project_key: ProjectKey,
        branch: Annotated[str, Field(description="Branch or commit to scan")] = "main",
        severity: Annotated[
            list[VulnSeverity] | None, Field(description="Only these severities, e.g. [HIGH, CRITICAL]")
        ] = None,
        block_on_critical: Annotated[
            bool, Field(description="Return an error on any CRITICAL finding")
        ] = False,
    ) -> VulnerabilityReport:
        return await call(
            "get_vulnerabilities", q.vulnerabilities, project_key, branch, severity, block_on_critical
        )

    @mcp.tool(
        title="Get code smells",
        description="Get code quality issues (code smells) of the latest analysis with file and line.",
        annotations=reads("Get code smells"),
    )
    async def get_code_smells(
        project_key: ProjectKey,
        severity: Annotated[list[IssueSeverity] | None, Field(description="Only these severities")] = None,
        limit: Limit = 50,
    ) -> IssueList:
        return await call("get_code_smells", q.issues, project_key, "CODE_SMELL", severity, limit)

    @mcp.tool(
        title="Get bugs",
        description="Get reliability issues (bugs) of the latest analysis with file and line.",
        annotations=reads("Get bugs"),
    )
    async def get_bugs(
        project_key: ProjectKey,
        severity: Annotated[list[IssueSeverity] | None, Field(description="Only these severities")] = None,
        limit: Limit = 50,
    ) -> IssueList:
        return await call("get_bugs", q.issues, project_key, "BUG", severity, limit)

    @mcp.tool(
        title="Get project metrics",
        description="Get latest analysis metrics: size, coverage, duplication, ratings, technical debt.",
        annotations=reads("Get project metrics"),
    )
    async def get_project_metrics(project_key: ProjectKey) -> ProjectMetrics:
        return await call("get_project_metrics", q.metrics, project_key)

    @mcp.tool(
        title="List projects",
        description="List analyzable projects with their last quality gate status and coverage.",
        annotations=reads("List projects"),
    )
    async def list_projects() -> ProjectList:
        return await call("list_projects", q.projects)

    @mcp.tool(
        title="List quality gates",
        description="List quality gates and their conditions (thresholds).",
        annotations=reads("List quality gates"),
    )
    async def list_quality_gates() -> GateList:
        return await call("list_quality_gates", q.gates)

    @mcp.tool(
        title="Configure quality gate",
        description="Configure a quality gate threshold (creates the gate if new), replacing that metric's "
        "condition.",
        annotations=hints("Configure quality gate", destructive=True, idempotent=True),
    )
    async def configure_quality_gate(
        quality_gate: Annotated[str, Field(description="Gate name, e.g. production-gate")],
        metric: Annotated[GateMetric, Field(description="Metric the condition checks")],
        op: Annotated[Operator, Field(description="'>=' (at least) or '<=' (at most)")],
        threshold: Annotated[float, Field(description="Threshold value; ratings are 1 (A) to 5 (E)")],
    ) -> QualityGate:
        return await call("configure_quality_gate", q.configure, quality_gate, metric, op, threshold)

    return mcp


def main(argv: Sequence[str] | None = None) -> None:
    serve("sonarqube", build_server, argv)


if __name__ == "__main__":
    main()

"""SonarQube-like analysis computed from repository content: metrics, issues, gates, advisories."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from opsmith.sandbox.common import resolve_spec, version_matches
from opsmith.sandbox.errors import SandboxError
from opsmith.sandbox.jssource import code_lines, is_source
from opsmith.sandbox.samples.advisories import ADVISORIES, Severity
from opsmith.sandbox.testsuite import FileCoverage, evaluate

if TYPE_CHECKING:
    import sqlite3

    from opsmith.sandbox.world import World

IssueType = Literal["BUG", "CODE_SMELL", "VULNERABILITY"]
IssueSeverity = Literal["INFO", "MINOR", "MAJOR", "CRITICAL", "BLOCKER"]
VulnSeverity = Severity
Operator = Literal[">=", "<="]
GateMetric = Literal[
    "coverage",
    "duplicated_lines_density",
    "reliability_rating",
    "security_rating",
    "maintainability_rating",
    "bugs",
    "vulnerabilities",
    "code_smells",
]

_SEVERITY_RANK: dict[str, int] = {"INFO": 1, "MINOR": 2, "MAJOR": 3, "CRITICAL": 4, "BLOCKER": 5}
_ADVISORY_TO_ISSUE: dict[str, IssueSeverity] = {
    "LOW": "MINOR",
    "MEDIUM": "MAJOR",
    "HIGH": "CRITICAL",
    "CRITICAL": "BLOCKER",
}
RATING_LETTERS = "ABCDE"


class Issue(BaseModel):
    rule: str
    type: IssueType
    severity: IssueSeverity
    file: str
    line: int
    message: str
    effort_minutes: int


class Condition(BaseModel):
    metric: GateMetric
    op: Operator
    threshold: float


class QualityGate(BaseModel):
    name: str
    conditions: list[Condition]


class GateList(BaseModel):
    gates: list[QualityGate]


class ConditionResult(Condition):
    actual: float
    status: Literal["OK", "ERROR"]


class GateResult(BaseModel):
    project: str
    gate: str
    status: Literal["PASSED", "FAILED"]
    commit_sha: str
    analysis_id: int
    conditions: list[ConditionResult]
    failing: list[str] = Field(description="Human-readable failing conditions")


class Metrics(BaseModel):
    files: int
    lines: int
    ncloc: int
    functions: int
    coverage: float
    coverage_source: Literal["test_run", "computed"]
    duplicated_lines: int
    duplicated_lines_density: float
    bugs: int
    code_smells: int
    vulnerabilities: int
    technical_debt_minutes: int
    debt_ratio_percent: float
    reliability_rating: int
    security_rating: int
    maintainability_rating: int
    ratings: dict[str, str] = Field(description="The three ratings as letters A (best) to E")


# What the analyses and scans read: JavaScript sources (tests included here, which over-counts and
# so errs towards scanning again) and the dependency manifest.
SCANNED_SCOPE = ("*.js", "package.json")


class Analysis(BaseModel):
    analysis_id: int
    project: str
    branch: str
    commit_sha: str
    created_at: str
    metrics: Metrics
    quality_gate: GateResult
    issues: list[Issue]
    files: list[FileCoverage]


class AnalysisSummary(BaseModel):
    analysis_id: int
    project: str
    branch: str
    commit_sha: str
    files_analyzed: list[str]
    scope: list[str] = Field(
        default_factory=lambda: list(SCANNED_SCOPE),
        description="Patterns of the files an analysis reads; a change to none of them leaves it valid",
    )
    metrics: Metrics
    quality_gate: GateResult
    top_issues: list[Issue]


class ProjectMetrics(BaseModel):
    project: str
    analysis_id: int
    commit_sha: str
    metrics: Metrics


class Coverage(BaseModel):
    project: str
    commit_sha: str
    coverage_percent: float
    source: Literal["test_run", "computed"]
    covered_lines: int
    total_lines: int
    files: list[FileCoverage]
    uncovered_files: list[str]


class IssueList(BaseModel):
    project: str
    analysis_id: int
    type: IssueType
    total: int
    by_severity: dict[str, int]
    issues: list[Issue]


class Vulnerability(BaseModel):
    id: str
    source: Literal["dependency", "code"]
    package: str | None
    installed_version: str | None
    vulnerable_range: str | None
    fixed_in: str | None
    severity: VulnSeverity
    title: str
    file: str
    line: int


class VulnerabilityReport(BaseModel):
    project: str
    branch: str
    commit_sha: str
    dependencies_scanned: int
    files_scanned: list[str] = Field(default_factory=list, description="The files the scan read")
    scope: list[str] = Field(
        default_factory=lambda: list(SCANNED_SCOPE),
        description="Patterns of the files a scan reads; a change to none of them leaves it valid",
    )
    counts: dict[str, int] = Field(description="All findings per severity, before the filter")
    severity_filter: list[VulnSeverity]
    matching: int
    vulnerabilities: list[Vulnerability]
    blocked: bool = Field(description="True when block_on_critical was set and a CRITICAL finding exists")


class Project(BaseModel):
    key: str
    last_analysis_id: int | None
    last_commit_sha: str | None
    gate_status: Literal["PASSED", "FAILED"] | None
    coverage: float | None


class ProjectList(BaseModel):
    projects: list[Project]


DEFAULT_GATES = (
    QualityGate(
        name="default",
        conditions=[
            Condition(metric="coverage", op=">=", threshold=50),
            Condition(metric="duplicated_lines_density", op="<=", threshold=10),
            Condition(metric="reliability_rating", op="<=", threshold=3),
            Condition(metric="security_rating", op="<=", threshold=3),
        ],
    ),
    QualityGate(
        name="production-gate",
        conditions=[
            Condition(metric="coverage", op=">=", threshold=70),
            Condition(metric="duplicated_lines_density", op="<=", threshold=5),
            Condition(metric="reliability_rating", op="<=", threshold=1),
            Condition(metric="security_rating", op="<=", threshold=1),
            Condition(metric="maintainability_rating", op="<=", threshold=2),
        ],
    ),
)

_LOOSE_EQ = re.compile(r"[^=!<>]==[^=]|!=[^=]")
_ASSIGN_IN_IF = re.compile(r"\bif\s*\(\s*[\w.\[\]]+\s*=[^=]")
_NAN_CMP = re.compile(r"[=!]==?\s*NaN\b")
_FUNCTION_START = re.compile(r"(\bfunction\b.*|=>\s*)\{\s*$")


def _rating(worst: int) -> int:
    return max(1, min(5, worst))


def scan_source(path: str, text: str) -> list[Issue]:
    issues: list[Issue] = []
    lines = text.splitlines()

    def add(rule: str, kind: IssueType, sev: IssueSeverity, line: int, message: str, effort: int) -> None:
        issues.append(
            Issue(
                rule=rule,
                type=kind,
                severity=sev,
                file=path,
                line=line,
                message=message,
                effort_minutes=effort,
            )
        )

    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if re.search(r"//\s*TODO\b", raw):
            add(
                "javascript:S1135",
                "CODE_SMELL",
                "INFO",
                number,
                "Complete the task associated to this TODO",
                5,
            )
        if re.search(r"//\s*FIXME\b", raw):
            add(
                "javascript:S1134",
                "CODE_SMELL",
                "MAJOR",
                number,
                "Take the required action to fix the FIXME",
                10,
            )
        if stripped.startswith("//"):
            continue
        if len(raw) > 120:
            add(
                "javascript:S103",
                "CODE_SMELL",
                "MINOR",
                number,
                f"Line is {len(raw)} characters long (max 120)",
                1,
            )
        if re.match(r"var\s", stripped):
            add(
                "javascript:S3504",
                "CODE_SMELL",
                "MAJOR",
                number,
                "Unexpected var, use let or const instead",
                2,
            )
        if _LOOSE_EQ.search(raw):
            add("javascript:S1440", "CODE_SMELL", "MAJOR", number, "Use strict equality (=== or !==)", 5)
        if "console.log(" in raw and path.startswith("src/"):
            add("javascript:S2228", "CODE_SMELL", "MINOR", number, "Remove this logging statement", 1)
        if re.search(r"catch\s*\([^)]*\)\s*\{\s*\}", raw):
            add(
                "javascript:S2486",
                "CODE_SMELL",
                "MAJOR",
                number,
                "Handle this exception or don't catch it",
                5,
            )
        if _ASSIGN_IN_IF.search(raw):
            add(
                "javascript:S1121",
                "BUG",
                "MAJOR",
                number,
                "Assignment inside a condition; did you mean ===?",
                5,
            )
        if _NAN_CMP.search(raw):
            add(
                "javascript:S2688",
                "BUG",
                "CRITICAL",
                number,
                "NaN is never equal to anything; use isNaN()",
                5,
            )
        if re.search(r"\beval\(|new Function\(", raw):
            add(
                "javascript:S1523",
                "VULNERABILITY",
                "CRITICAL",
                number,
                "Dynamic code execution is unsafe",
                30,
            )
        if _FUNCTION_START.search(raw):
            depth, end = 0, number
            for offset, body in enumerate(lines[number - 1 :]):
                depth += body.count("{") - body.count("}")
                if depth <= 0:
                    end = number + offset
                    break
            if end - number + 1 > 30:
                add(
                    "javascript:S138",
                    "CODE_SMELL",
                    "MAJOR",
                    number,
                    f"Function has {end - number + 1} lines (max 30); split it",
                    20,
                )
    return issues


def duplicated_lines(sources: dict[str, str]) -> int:
    """Lines inside any run of 3 significant lines that occurs more than once in the project."""
    windows: dict[tuple[str, ...], list[tuple[str, list[int]]]] = {}
    for path, text in sources.items():
        significant = [
            (n, line.strip())
            for n, line in code_lines(text)
            if len(line.strip()) >= 12 and line.strip() not in ("'use strict';", '"use strict";')
        ]
        for i in range(len(significant) - 2):
            chunk = significant[i : i + 3]
            windows.setdefault(tuple(t for _, t in chunk), []).append((path, [n for n, _ in chunk]))
    duplicated: set[tuple[str, int]] = set()
    for places in windows.values():
        if len(places) > 1:
            for path, numbers in places:
                duplicated.update((path, n) for n in numbers)
    return len(duplicated)


def dependency_findings(tree: dict[str, bytes]) -> tuple[int, list[Vulnerability]]:
    if "package.json" not in tree:
        return 0, []
    text = tree["package.json"].decode("utf-8", errors="replace")
    try:
        package = json.loads(text)
    except ValueError:
        return 0, []
    deps: dict[str, str] = dict(package.get("dependencies") or {})
    found: list[Vulnerability] = []
    for name, spec in sorted(deps.items()):
        try:
            installed = resolve_spec(str(spec))
        except ValueError:
            continue
        line = next((n for n, raw in enumerate(text.splitlines(), 1) if f'"{name}"' in raw), 1)
        for adv in ADVISORIES:
            if adv.package == name and version_matches(installed, adv.vulnerable):
                found.append(
                    Vulnerability(
                        id=adv.cve,
                        source="dependency",
                        package=name,
                        installed_version=installed,
                        vulnerable_range=adv.vulnerable,
                        fixed_in=adv.fixed_in,
                        severity=adv.severity,
                        title=adv.title,
                        file="package.json",
                        line=line,
                    )
                )
    return len(deps), found


def _code_findings(issues: list[Issue]) -> list[Vulnerability]:
    return [
        Vulnerability(
            id=i.rule,
            source="code",
            package=None,
            installed_version=None,
            vulnerable_range=None,
            fixed_in=None,
            severity="CRITICAL" if i.severity in ("CRITICAL", "BLOCKER") else "HIGH",
            title=i.message,
            file=i.file,
            line=i.line,
        )
        for i in issues
        if i.type == "VULNERABILITY"
    ]


def evaluate_gate(
    gate: QualityGate, metrics: Metrics, project: str, sha: str, analysis_id: int
) -> GateResult:
    results: list[ConditionResult] = []
    failing: list[str] = []
    for cond in gate.conditions:
        actual = float(getattr(metrics, cond.metric))
        ok = actual >= cond.threshold if cond.op == ">=" else actual <= cond.threshold
        results.append(ConditionResult(**cond.model_dump(), actual=actual, status="OK" if ok else "ERROR"))
        if not ok:
            failing.append(f"{cond.metric} is {actual:g}, required {cond.op} {cond.threshold:g}")
    return GateResult(
        project=project,
        gate=gate.name,
        status="FAILED" if failing else "PASSED",
        commit_sha=sha,
        analysis_id=analysis_id,
        conditions=results,
        failing=failing,
    )


class QualityService:
    def __init__(self, world: World) -> None:
        self.world = world

    def seed_gates(self, conn: sqlite3.Connection) -> None:
        for gate in DEFAULT_GATES:
            conn.execute(
                "INSERT OR IGNORE INTO quality_gates(name, doc) VALUES (?, ?)",
                (gate.name, gate.model_dump_json()),
            )

    def _gate(self, conn: sqlite3.Connection, name: str) -> QualityGate:
        row = conn.execute("SELECT doc FROM quality_gates WHERE name=?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in conn.execute("SELECT name FROM quality_gates ORDER BY name")]
            raise SandboxError(f"unknown quality gate {name!r}; gates: {', '.join(names)}")
        return QualityGate.model_validate_json(row["doc"])

    def analyze(self, project: str, branch: str, gate_name: str, fail_on_gate: bool = False) -> Analysis:
        self.world.require_app(project)
        sha = self.world.repos.resolve(project, branch)
        tree = self.world.repos.tree(project, sha)
        sources = {p: c.decode("utf-8", errors="replace") for p, c in tree.items() if is_source(p)}
        issues = [issue for path, text in sorted(sources.items()) for issue in scan_source(path, text)]
        _n_deps, dep_vulns = dependency_findings(tree)
        for v in dep_vulns:
            issues.append(
                Issue(
                    rule=v.id,
                    type="VULNERABILITY",
                    severity=_ADVISORY_TO_ISSUE[v.severity],
                    file=v.file,
                    line=v.line,
                    message=f"{v.package}@{v.installed_version}: {v.title} (fixed in {v.fixed_in})",
                    effort_minutes=15,
                )
            )
        run = self.world.builds.latest_run_for_commit(project, sha)
        source: Literal["test_run", "computed"]
        if run is not None:
            files, coverage, source = run.files, run.coverage_percent, "test_run"
        else:
            evaluation = evaluate(tree)
            files, coverage, source = evaluation.files, evaluation.coverage_percent, "computed"
        ncloc = sum(len(code_lines(t)) for t in sources.values())
        dup = duplicated_lines(sources)
        debt = sum(i.effort_minutes for i in issues if i.type == "CODE_SMELL")
        ratio = 100.0 * debt / (ncloc * 30) if ncloc else 0.0

        def worst(kind: IssueType) -> int:
            ranks = [_SEVERITY_RANK[i.severity] for i in issues if i.type == kind]
            return max(ranks) if ranks else 1

        maintainability = (
            1 if ratio <= 5 else 2 if ratio <= 10 else 3 if ratio <= 20 else 4 if ratio <= 50 else 5
        )
        reliability, security = _rating(worst("BUG")), _rating(worst("VULNERABILITY"))
        metrics = Metrics(
            files=len(sources),
            lines=sum(len(t.splitlines()) for t in sources.values()),
            ncloc=ncloc,
            functions=sum(len(re.findall(r"\bfunction\b|=>", t)) for t in sources.values()),
            coverage=coverage,
            coverage_source=source,
            duplicated_lines=dup,
            duplicated_lines_density=round(100.0 * dup / ncloc, 1) if ncloc else 0.0,
            bugs=sum(1 for i in issues if i.type == "BUG"),
            code_smells=sum(1 for i in issues if i.type == "CODE_SMELL"),
            vulnerabilities=sum(1 for i in issues if i.type == "VULNERABILITY"),
            technical_debt_minutes=debt,
            debt_ratio_percent=round(ratio, 2),
            reliability_rating=reliability,
            security_rating=security,
            maintainability_rating=maintainability,
            ratings={
                "reliability": RATING_LETTERS[reliability - 1],
                "security": RATING_LETTERS[security - 1],
                "maintainability": RATING_LETTERS[maintainability - 1],
            },
        )
        with self.world.db.tx(write=True) as conn:
            gate = self._gate(conn, gate_name)
            cur = conn.execute(
                "INSERT INTO analyses(project, commit_sha, doc) VALUES (?, ?, '{}')", (project, sha)
            )
            analysis_id = int(cur.lastrowid or 0)
            analysis = Analysis(
                analysis_id=analysis_id,
                project=project,
                branch=branch,
                commit_sha=sha,
                created_at=self.world.now(),
                metrics=metrics,
                quality_gate=evaluate_gate(gate, metrics, project, sha, analysis_id),
                issues=issues,
                files=files,
            )
            conn.execute("UPDATE analyses SET doc=? WHERE id=?", (analysis.model_dump_json(), analysis_id))
        if fail_on_gate and analysis.quality_gate.status == "FAILED":
            raise SandboxError(
                f"quality gate {gate_name} FAILED for {project} at {sha[:7]} (analysis {analysis_id}): "
                + "; ".join(analysis.quality_gate.failing)
                + ". get_quality_gate, get_vulnerabilities and get_code_smells show the details."
            )
        return analysis

    @staticmethod
    def summary(analysis: Analysis) -> AnalysisSummary:
        ranked = sorted(analysis.issues, key=lambda i: (-_SEVERITY_RANK[i.severity], i.file, i.line))
        return AnalysisSummary(
            analysis_id=analysis.analysis_id,
            project=analysis.project,
            branch=analysis.branch,
            commit_sha=analysis.commit_sha,
            files_analyzed=[f.path for f in analysis.files],
            metrics=analysis.metrics,
            quality_gate=analysis.quality_gate,
            top_issues=ranked[:10],
        )

    def last_analysis(self, project: str) -> Analysis:
        self.world.require_app(project)
        with self.world.db.tx() as conn:
            row = conn.execute(
                "SELECT doc FROM analyses WHERE project=? ORDER BY id DESC LIMIT 1", (project,)
            ).fetchone()
        if row is None:
            raise SandboxError(f"project {project} has not been analyzed yet; run analyze_project first")
        return Analysis.model_validate_json(row["doc"])

    def gate_status(self, project: str, gate_name: str | None) -> GateResult:
        analysis = self.last_analysis(project)
        if gate_name is None or gate_name == analysis.quality_gate.gate:
            return analysis.quality_gate
        with self.world.db.tx() as conn:
            gate = self._gate(conn, gate_name)
        return evaluate_gate(gate, analysis.metrics, project, analysis.commit_sha, analysis.analysis_id)

    def coverage(self, project: str) -> Coverage:
        analysis = self.last_analysis(project)
        total = sum(f.lines for f in analysis.files)
        covered = sum(f.lines for f in analysis.files if f.covered)
        return Coverage(
            project=project,
            commit_sha=analysis.commit_sha,
            coverage_percent=analysis.metrics.coverage,
            source=analysis.metrics.coverage_source,
            covered_lines=covered,
            total_lines=total,
            files=analysis.files,
            uncovered_files=[f.path for f in analysis.files if not f.covered],
        )

    def issues(
        self, project: str, kind: IssueType, severities: list[IssueSeverity] | None, limit: int
    ) -> IssueList:
        analysis = self.last_analysis(project)
        of_kind = [i for i in analysis.issues if i.type == kind]
        by_severity: dict[str, int] = {}
        for issue in of_kind:
            by_severity[issue.severity] = by_severity.get(issue.severity, 0) + 1
        chosen = [i for i in of_kind if not severities or i.severity in severities]
        chosen.sort(key=lambda i: (-_SEVERITY_RANK[i.severity], i.file, i.line))
        return IssueList(
            project=project,
            analysis_id=analysis.analysis_id,
            type=kind,
            total=len(of_kind),
            by_severity=by_severity,
            issues=chosen[:limit],
        )

    def metrics(self, project: str) -> ProjectMetrics:
        analysis = self.last_analysis(project)
        return ProjectMetrics(
            project=project,
            analysis_id=analysis.analysis_id,
            commit_sha=analysis.commit_sha,
            metrics=analysis.metrics,
        )

    def vulnerabilities(
        self,
        project: str,
        branch: str,
        severities: list[VulnSeverity] | None,
        block_on_critical: bool = False,
    ) -> VulnerabilityReport:
        self.world.require_app(project)
        sha = self.world.repos.resolve(project, branch)
        tree = self.world.repos.tree(project, sha)
        n_deps, findings = dependency_findings(tree)
        code_issues = [
            issue
            for path, content in sorted(tree.items())
            if is_source(path)
            for issue in scan_source(path, content.decode("utf-8", errors="replace"))
        ]
        findings += _code_findings(code_issues)
        counts = {
            sev: sum(1 for f in findings if f.severity == sev)
            for sev in ("CRITICAL", "HIGH", "MEDIUM", "LOW")
        }
        wanted: list[VulnSeverity] = list(severities) if severities else ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
        matching = [f for f in findings if f.severity in wanted]
        critical = [f for f in findings if f.severity == "CRITICAL"]
        if block_on_critical and critical:
            raise SandboxError(
                f"security scan of {project} at {sha[:7]} is BLOCKED by {len(critical)} CRITICAL finding(s): "
                + "; ".join(
                    f"{f.id} in {f.package or f.file} {f.installed_version or ''} (fixed in {f.fixed_in})"
                    for f in critical
                )
                + f". Counts: {counts}. Upgrade the dependency and rebuild."
            )
        return VulnerabilityReport(
            project=project,
            branch=branch,
            commit_sha=sha,
            dependencies_scanned=n_deps,
            files_scanned=sorted(p for p in tree if is_source(p) or p == "package.json"),
            counts=counts,
            severity_filter=wanted,
            matching=len(matching),
            vulnerabilities=matching,
            blocked=False,
        )

    def projects(self) -> ProjectList:
        projects = []
        with self.world.db.tx() as conn:
            for app in self.world.apps():
                row = conn.execute(
                    "SELECT doc FROM analyses WHERE project=? ORDER BY id DESC LIMIT 1", (app,)
                ).fetchone()
                analysis = Analysis.model_validate_json(row["doc"]) if row else None
                projects.append(
                    Project(
                        key=app,
                        last_analysis_id=analysis.analysis_id if analysis else None,
                        last_commit_sha=analysis.commit_sha if analysis else None,
                        gate_status=analysis.quality_gate.status if analysis else None,
                        coverage=analysis.metrics.coverage if analysis else None,
                    )
                )
        return ProjectList(projects=projects)

    def gates(self) -> GateList:
        with self.world.db.tx() as conn:
            rows = conn.execute("SELECT doc FROM quality_gates ORDER BY name").fetchall()
        return GateList(gates=[QualityGate.model_validate_json(r["doc"]) for r in rows])

    def configure(self, gate_name: str, metric: GateMetric, op: Operator, threshold: float) -> QualityGate:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", gate_name):
            raise SandboxError("gate names are lowercase letters, digits and dashes, e.g. 'strict-gate'")
        with self.world.db.tx(write=True) as conn:
            row = conn.execute("SELECT doc FROM quality_gates WHERE name=?", (gate_name,)).fetchone()
            gate = (
                QualityGate.model_validate_json(row["doc"])
                if row
                else QualityGate(name=gate_name, conditions=[])
            )
            kept = [c for c in gate.conditions if c.metric != metric]
            gate = QualityGate(
                name=gate_name, conditions=[*kept, Condition(metric=metric, op=op, threshold=threshold)]
            )
            conn.execute(
                "INSERT OR REPLACE INTO quality_gates(name, doc) VALUES (?, ?)",
                (gate_name, gate.model_dump_json()),
            )
        return gate

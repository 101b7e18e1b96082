"""Plan-creation latency benchmark; prints a table of p50/p99 measured in this one run.

Times Planner.plan() alone (discovery is done once beforehand and not timed) for the seed
requests over two catalogs:

(a) the 45 tools of the four sandbox MCP servers, as discovered;
(b) those 45 plus 1,955 generated tools on 46 more servers (2,000 tools, 50 servers), whose
    verb x object names (half singular: get_deployment, list_pods) and descriptions are chosen
    to compete with the real tools in mapping;

and for the seed requests plus a few more over the recorded catalogs of real servers
(tests/fixtures/catalogs, bench/record_catalogs.py), configured as `k8s` and `ci` so they can sit
beside the sandbox's own `kubernetes` and `jenkins`:

(c) mcp-server-kubernetes alone; (d) with mcp-jenkins; (e), (f) each of those with (a).

Each request is planned once to warm up, then every request is timed in each of --rounds rounds.
A request the planner refuses (IntentError, PlanError) is an outcome like a plan: it is timed and
counted in the `refused` column; any other exception is reported and that request is not timed.

    uv run python bench/plan_latency.py [--rounds 30] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from opsmith.config import Config, parse_config
from opsmith.domain.catalog import Catalog, ToolHints, ToolSpec
from opsmith.errors import IntentError, PlanError
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks
from opsmith.sandbox.world import World
from opsmith.tools.mcp import ServerPool

# Run as a script, bench/ is on sys.path and the repository root is not; the recorded catalogs
# and their loader live in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures import catalogs as recorded

SANDBOX = ["jenkins", "sonarqube", "registry", "kubernetes"]
TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("UTC"))
TOTAL_TOOLS = 2000
TOTAL_SERVERS = 50
TARGETS_MS = {"sandbox": 50.0, "generated": 250.0}

APPS = """
applications:
  my-application: {}
  microservice-one: {strategy: canary}
  microservice-two: {strategy: canary}
  payments-api: {}
planning:
  default_application: my-application
  image_repository: "myorg/{app}"
"""

REQUESTS = [
    "Deploy the code to Kubernetes production",
    "Deploy the code to prod",
    "URGENT: Deploy hotfix to production NOW",
    "Deploy microservice-one to production",
    "Deploy microservice-one and microservice-two to production",
    "Rollback production deployment",
    "Scale staging to 5 replicas",
    "Deploy payments-api to staging",
]
# Over the real catalogs: the seed requests and what an operator asks of a real cluster.
REAL_REQUESTS = [
    *REQUESTS,
    "Scale my-application in staging to 3 replicas",
    "show me the pods of my-application in production",
]
# Recorded catalogs by the server name they are configured under in this bench.
REAL = {"k8s": "mcp-server-kubernetes", "ci": "mcp-jenkins"}
REFUSALS = (IntentError, PlanError)

VERBS = ["get", "list", "create", "delete", "update", "run", "trigger", "sync", "describe", "scan", "export"]
OBJECTS = [
    "pods", "builds", "images", "deployments", "services", "jobs", "tickets", "users", "repos",
    "metrics", "alerts", "pipelines", "secrets", "volumes", "nodes", "clusters", "namespaces",
    "artifacts", "logs", "reports", "projects", "backups", "configs", "releases", "tests",
]  # fmt: skip
PRODUCTS = [
    "argo", "gitlab", "github", "jira", "datadog", "pagerduty", "grafana", "helm", "terraform",
    "vault", "nexus", "artifactory", "circleci", "buildkite", "sentry", "opsgenie", "consul",
    "nomad", "rancher", "openshift", "spinnaker", "tekton", "harbor", "snyk",
]  # fmt: skip
READING = {"get", "list", "describe", "export", "scan"}
ADJECTIVES = ["the", "all", "matching", "recent", "selected", "remote", "cluster", "project"]
PLACES = ["in a namespace", "for a project", "on the cluster", "across environments", "by label", ""]
PROPERTIES: list[tuple[str, dict[str, Any]]] = [
    ("name", {"type": "string"}),
    ("namespace", {"type": "string"}),
    ("project", {"type": "string"}),
    ("limit", {"type": "integer", "minimum": 1}),
    ("dry_run", {"type": "boolean"}),
    ("labels", {"type": "object", "additionalProperties": {"type": "string"}}),
    ("since", {"type": "string", "format": "date-time"}),
    ("image", {"type": "string"}),
    ("replicas", {"type": "integer", "minimum": 0}),
    ("tags", {"type": "array", "items": {"type": "string"}}),
]


def config_text(state: Path) -> str:
    servers = "\n".join(
        f"  {name}: {{command: {sys.executable}, args: [-m, opsmith.sandbox.{name},"
        f" --state-dir, '{state / 'world'}', --latency-ms, '0']}}"
        for name in SANDBOX
    )
    return f"state_dir: {state / 'opsmith'}\n{APPS}\nmcpServers:\n{servers}"


async def discover(config: Config) -> Catalog:
    pool = ServerPool(config, os.environ)
    try:
        statuses = await pool.start()
        bad = [s for s in statuses if s.health.value != "up"]
        if bad:
            raise SystemExit(f"sandbox server failed: {bad}")
        return Catalog(pool.catalog.tools())
    finally:
        await pool.stop()


def generated_tool(rng: random.Random, server: str, verb: str, obj: str) -> ToolSpec:
    singular = obj.removesuffix("s")
    noun = singular if rng.random() < 0.5 else obj  # singular names hit the mapper's name words
    words = [verb.capitalize(), rng.choice(ADJECTIVES), noun, rng.choice(PLACES)]
    extra = rng.sample([o for o in OBJECTS if o != obj], rng.randint(1, 4))
    sentence = " ".join(w for w in words if w) + f" with {' and '.join(extra)} via {server.split('-')[0]}"
    description = " ".join(sentence.split()[: rng.randint(6, 15)])
    props = dict(rng.sample(PROPERTIES, rng.randint(2, 5)))
    required = [f"{singular}_id"] if rng.random() < 0.6 else []
    if required:
        props = {required[0]: {"type": "string", "description": f"id of the {singular}"}, **props}
    roll = rng.random()
    if roll < 0.3:
        hints = ToolHints()  # unannotated: the spec says "may be destructive"
    elif verb in READING:
        hints = ToolHints(read_only=True, open_world=rng.random() < 0.5)
    elif verb == "delete" or roll < 0.5:
        hints = ToolHints(read_only=False, destructive=True)
    else:
        hints = ToolHints(read_only=False, destructive=False, idempotent=verb in {"update", "sync"})
    return ToolSpec(
        server=server,
        name=f"{verb}_{noun}",
        title=f"{verb.capitalize()} {noun}" if rng.random() < 0.5 else None,
        description=description,
        input_schema={"type": "object", "properties": props, "required": required},
        hints=hints,
    )


def generated_catalog(real: Catalog, seed: int) -> Catalog:
    rng = random.Random(seed)
    extra_servers = TOTAL_SERVERS - len(real.servers())
    to_make = TOTAL_TOOLS - len(real)
    share, more = divmod(to_make, extra_servers)
    per_server = [share + (1 if i < more else 0) for i in range(extra_servers)]
    combos = [(v, o) for v in VERBS for o in OBJECTS]
    tools = list(real.tools())
    for i, count in enumerate(per_server):
        server = f"{PRODUCTS[i % len(PRODUCTS)]}-{i // len(PRODUCTS) + 1}"
        tools += [generated_tool(rng, server, v, o) for v, o in rng.sample(combos, count)]
    catalog = Catalog(tools)
    if len(catalog) != TOTAL_TOOLS or len(catalog.servers()) != TOTAL_SERVERS:
        raise SystemExit(f"generated {len(catalog)} tools on {len(catalog.servers())} servers")
    return catalog


def real_catalog(*servers: str, sandbox: Catalog | None = None) -> Catalog:
    """Recorded real servers by their bench names, after the sandbox's servers if given."""
    tools = list(sandbox.tools()) if sandbox is not None else []
    for server in servers:
        tools += recorded.tool_specs(REAL[server], server)
    return Catalog(tools)


@dataclass
class Timing:
    """One catalog's results: samples per timed request, refusals and errors by request."""

    requests: list[str]
    samples: dict[str, list[float]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def plan_once(planner: Planner, request: str, situation: Situation) -> None:
    # A refusal is a planning outcome: the planner's answer, timed like a plan.
    with contextlib.suppress(*REFUSALS):
        planner.plan(request, situation)


def time_plans(planner: Planner, catalog: Catalog, rounds: int, requests: list[str]) -> Timing:
    situation = Situation(catalog=catalog, now=TUESDAY)
    timing = Timing(requests)
    for request in requests:  # warm up once per request; one that raises (not refuses) is not timed
        try:
            planner.plan(request, situation)
        except REFUSALS as exc:
            timing.refused[request] = brief(exc)
        except Exception as exc:
            timing.errors[request] = f"{type(exc).__name__}: {exc}"
    timed = [r for r in requests if r not in timing.errors]
    timing.samples = {r: [] for r in timed}
    for _ in range(rounds):
        for request in timed:
            began = time.perf_counter()
            plan_once(planner, request, situation)
            timing.samples[request].append((time.perf_counter() - began) * 1000)
    return timing


def brief(exc: Exception, width: int = 150) -> str:
    """The error's class and the start of its message (a refusal lists every missing capability)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:width]}{'...' if len(text) > width else ''}"


def outcome(timing: Timing, request: str) -> str:
    """One table cell: the request's p50, marked R if the planner refused it."""
    if request in timing.errors:
        return "E"
    mark = "R " if request in timing.refused else ""
    return f"{mark}{statistics.median(timing.samples[request]):.2f}"


def deploy_choice(planner: Planner, catalog: Catalog) -> str:
    """The tool the 'deploy' step of the first request maps to, with its score and runners-up."""
    try:
        step = planner.plan(REQUESTS[0], Situation(catalog=catalog, now=TUESDAY)).step("deploy")
    except Exception as exc:
        return brief(exc)
    if step.mapping is None:
        return f"{step.server}/{step.tool}"
    runners = ", ".join(f"{c.tool} ({c.score})" for c in step.mapping.runners_up) or "none"
    return f"{step.server}/{step.tool} ({step.mapping.chosen.score}); runners-up: {runners}"


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated catalog")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        World(state / "world").ensure_seeded()
        config = parse_config(config_text(state), source="bench")
        sandbox = await discover(config)
    planner = Planner(config, load_playbooks())
    catalogs: dict[str, tuple[Catalog, list[str]]] = {
        "sandbox": (sandbox, REQUESTS),
        "generated": (generated_catalog(sandbox, args.seed), REQUESTS),
        "k8s": (real_catalog("k8s"), REAL_REQUESTS),
        "k8s+ci": (real_catalog("k8s", "ci"), REAL_REQUESTS),
        "sandbox+k8s": (real_catalog("k8s", sandbox=sandbox), REAL_REQUESTS),
        "sandbox+k8s+ci": (real_catalog("k8s", "ci", sandbox=sandbox), REAL_REQUESTS),
    }

    results = {
        name: time_plans(planner, catalog, args.rounds, requests)
        for name, (catalog, requests) in catalogs.items()
    }

    print(
        f"\nPlan creation, discovery excluded: {len(REQUESTS)} seed requests ({len(REAL_REQUESTS)} on the"
        f" real catalogs) x {args.rounds} rounds (ms); k8s = mcp-server-kubernetes, ci = mcp-jenkins"
    )
    print(
        f"{'catalog':<16}{'tools':>7}{'servers':>9}{'requests':>10}{'refused':>9}{'plans timed':>13}"
        f"{'p50':>9}{'p99':>9}{'max':>9}"
    )
    for name, timing in results.items():
        values = [v for vs in timing.samples.values() for v in vs]
        catalog = catalogs[name][0]
        row = (
            f"{name:<16}{len(catalog):>7}{len(catalog.servers()):>9}{len(timing.requests):>10}"
            f"{len(timing.refused):>9}{len(values):>13}"
        )
        if len(values) >= 2:
            row += f"{statistics.median(values):>9.2f}{p99(values):>9.2f}{max(values):>9.2f}"
        print(row)
    largest = max(catalogs, key=lambda n: len(catalogs[n][0]))
    samples = results[largest].samples
    print(f"\nper request, {largest} catalog ({len(catalogs[largest][0])} tools), p50 ms")
    for request in REQUESTS:
        cell = f"{statistics.median(samples[request]):>9.2f}" if samples.get(request) else f"{'error':>9}"
        print(f"  {request:<60}{cell}")
    print(f"\ntarget: p99 <= {TARGETS_MS['sandbox']:.0f} ms for sandbox (a)")
    print(f"target: p99 <= {TARGETS_MS['generated']:.0f} ms for generated (b)")

    real = [name for name, (_, requests) in catalogs.items() if requests is REAL_REQUESTS]
    print("\nper request over the real catalogs, p50 ms (R: refused, E: error)")
    print(f"  {'':<60}" + "".join(f"{name:>16}" for name in real))
    for request in REAL_REQUESTS:
        print(f"  {request:<60}" + "".join(f"{outcome(results[name], request):>16}" for name in real))
    for name, timing in results.items():
        if timing.refused:
            print(f"\nrefused on {name}: {len(timing.refused)} of {len(timing.requests)}")
        for request, reason in timing.refused.items():
            print(f"  {request!r}: {reason}")
    for name, timing in results.items():
        for request, error in timing.errors.items():
            print(f"\nERROR on {name}: {request!r}: {error}")
    print(f"\n'deploy' step of {REQUESTS[0]!r} on {largest}: {deploy_choice(planner, catalogs[largest][0])}")
    for name in ("k8s", "sandbox+k8s+ci"):
        print(f"'deploy' step of {REQUESTS[0]!r} on {name}: {deploy_choice(planner, catalogs[name][0])}")


if __name__ == "__main__":
    asyncio.run(main())

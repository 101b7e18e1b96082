"""Plan-creation latency benchmark; prints a table of p50/p99 measured in this one run.

Times Planner.plan() alone (discovery is done once beforehand and not timed) for the seed
requests over two catalogs:

(a) the 45 tools of the four sandbox MCP servers, as discovered;
(b) those 45 plus 1,955 generated tools on 46 more servers (2,000 tools, 50 servers), whose
    verb x object names (half singular: get_deployment, list_pods) and descriptions are chosen
    to compete with the real tools in mapping.

Each request is planned once to warm up, then every request is timed in each of --rounds rounds.

    uv run python bench/plan_latency.py [--rounds 30] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from opsmith.config import Config, parse_config
from opsmith.domain.catalog import Catalog, ToolHints, ToolSpec
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks
from opsmith.sandbox.world import World
from opsmith.tools.mcp import ServerPool

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


def time_plans(
    planner: Planner, catalog: Catalog, rounds: int
) -> tuple[dict[str, list[float]], dict[str, str]]:
    situation = Situation(catalog=catalog, now=TUESDAY)
    errors: dict[str, str] = {}
    for request in REQUESTS:  # warm up once per request; a request that raises is reported, not timed
        try:
            planner.plan(request, situation)
        except Exception as exc:
            errors[request] = f"{type(exc).__name__}: {exc}"
    timed = [r for r in REQUESTS if r not in errors]
    samples: dict[str, list[float]] = {r: [] for r in timed}
    for _ in range(rounds):
        for request in timed:
            began = time.perf_counter()
            planner.plan(request, situation)
            samples[request].append((time.perf_counter() - began) * 1000)
    return samples, errors


def deploy_choice(planner: Planner, catalog: Catalog) -> str:
    """The tool the 'deploy' step of the first request maps to, with its score and runners-up."""
    try:
        step = planner.plan(REQUESTS[0], Situation(catalog=catalog, now=TUESDAY)).step("deploy")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
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
        real = await discover(config)
    planner = Planner(config, load_playbooks())
    catalogs = {"sandbox": real, "generated": generated_catalog(real, args.seed)}

    results = {name: time_plans(planner, catalog, args.rounds) for name, catalog in catalogs.items()}

    print(f"\nPlan creation, discovery excluded: {len(REQUESTS)} seed requests x {args.rounds} rounds (ms)")
    print(f"{'catalog':<12}{'tools':>7}{'servers':>9}{'plans timed':>13}{'p50':>9}{'p99':>9}{'max':>9}")
    for name, (samples, _) in results.items():
        values = [v for vs in samples.values() for v in vs]
        catalog = catalogs[name]
        row = f"{name:<12}{len(catalog):>7}{len(catalog.servers()):>9}{len(values):>13}"
        if len(values) >= 2:
            row += f"{statistics.median(values):>9.2f}{p99(values):>9.2f}{max(values):>9.2f}"
        print(row)
    largest = max(catalogs, key=lambda n: len(catalogs[n]))
    samples, _ = results[largest]
    print(f"\nper request, {largest} catalog ({len(catalogs[largest])} tools), p50 ms")
    for request in REQUESTS:
        cell = f"{statistics.median(samples[request]):>9.2f}" if samples.get(request) else f"{'error':>9}"
        print(f"  {request:<60}{cell}")
    print(f"\ntarget: p99 <= {TARGETS_MS['sandbox']:.0f} ms for sandbox (a)")
    print(f"target: p99 <= {TARGETS_MS['generated']:.0f} ms for generated (b)")

    for name, (_, errors) in results.items():
        for request, error in errors.items():
            print(f"\nERROR on {name}: {request!r}: {error}")
    print(f"\n'deploy' step of {REQUESTS[0]!r} on {largest}: {deploy_choice(planner, catalogs[largest])}")


if __name__ == "__main__":
    asyncio.run(main())

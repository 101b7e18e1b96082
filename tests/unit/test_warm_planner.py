"""The planner and the recorded catalog a long-lived process keeps between plans (`app.warm`): used
again while nothing they came from changed, made again as soon as something did (a playbook edited
while serving, the applications the live systems list, the configuration, the recorded tools), and
never a way around the checks (RBAC, the plan's signature). Services over fakes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from opsmith.config import parse_config
from opsmith.domain.approval import plan_is_sealed
from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.errors import UnknownNameError
from opsmith.domain.identity import Identity
from opsmith.planner.warm import Kept
from opsmith.services.access import AccessRefused
from opsmith.services.discovery import recorded_catalog, running_servers
from opsmith.services.planning import make_plan, planner_for
from tests.fakes import FakeTools, FakeWorld, fake_app

T = TypeVar("T")

CONFIG = """
applications:
  shop: {}
planning: {default_application: shop, image_repository: "org/{app}"PLAYBOOKS}
mcpServers:
  kubernetes: {command: "unused-in-unit-tests"}
rbac:
  users: {vic: viewer, bob: deployer}
"""
BOB = Identity(user="bob", role="deployer", source="config")
VIC = Identity(user="vic", role="viewer", source="config")
SCALE = "Scale shop in production to 4 replicas"

READ = ToolHints(read_only=True)
WRITE = ToolHints(read_only=False, destructive=True, idempotent=True)
NAMED = {"deployment_name": {"type": "string"}, "namespace": {"type": "string"}}


def tool(name: str, description: str, hints: ToolHints, **extra: str) -> ToolSpec:
    properties = {**NAMED, **{k: {"type": v} for k, v in extra.items()}}
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return ToolSpec(server="kubernetes", name=name, description=description, input_schema=schema, hints=hints)


SPECS = [
    tool("get_deployment", "Get a deployment's replicas and image", READ),
    tool("scale_deployment", "Scale a deployment to a number of replicas", WRITE, replicas="integer"),
    tool("backup_deployment", "Back up a deployment's spec and revision before a change", WRITE),
    ToolSpec(
        server="kubernetes",
        name="get_pods",
        description="List pods with status, readiness, restarts and image",
        input_schema={
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "label_selector": {"type": "string"}},
            "required": ["namespace"],
        },
        hints=READ,
    ),
]

# The bundled `scale` playbook, shortened: what the user's copy says is what the plan shows.
PLAYBOOK = """name: scale
description: Change the number of replicas of a deployment
title: "TITLE {{ subject }}"
precedence: 10
match: {actions: [scale], min_subjects: 1, max_subjects: 1}
steps:
  - {id: inspect, capability: deployment_status, name: "Read the current deployment"}
  - id: scale
    capability: scale
    name: "Scale"
    depends_on: [inspect]
    args: {replicas: "{{ params.replicas }}"}
"""


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def world(playbooks: Path | None = None) -> FakeWorld:
    dirs = f", playbook_dirs: ['{playbooks}']" if playbooks is not None else ""
    return fake_app(CONFIG.replace("PLAYBOOKS", dirs), FakeTools(specs=list(SPECS)))


def discovered(w: FakeWorld) -> FakeWorld:
    async def discover() -> None:
        async with running_servers(w.app):
            pass

    run(discover())
    return w


def write_playbook(directory: Path, title: str) -> Path:
    path = directory / "scale.yaml"
    path.write_text(PLAYBOOK.replace("TITLE", title))
    return path


# -- kept while nothing changed ------------------------------------------------------------------


def test_plans_reuse_one_planner_and_one_catalog_while_nothing_changed() -> None:
    w = discovered(world())
    first = run(make_plan(w.app, BOB, SCALE, {}))
    planner, (catalog, _) = planner_for(w.app), recorded_catalog(w.app) or (None, None)
    second = run(make_plan(w.app, BOB, SCALE, {}))
    assert planner_for(w.app) is planner
    found = recorded_catalog(w.app)
    assert found is not None and found[0] is catalog
    assert second.steps == first.steps and second.id != first.id
    assert w.tools.started == [["kubernetes"]], "planned from the recorded catalog, no discovery"


def test_an_app_without_a_shared_warm_keeps_nothing_of_another() -> None:
    one, two = discovered(world()), discovered(world())
    assert planner_for(one.app) is not planner_for(two.app)


# -- made again when what it came from changed ---------------------------------------------------


def test_a_playbook_edited_while_serving_is_seen_by_the_next_plan(tmp_path: Path) -> None:
    write_playbook(tmp_path, "Before")
    w = discovered(world(tmp_path))
    assert run(make_plan(w.app, BOB, SCALE, {})).title == "Before shop"
    write_playbook(tmp_path, "After, edited")
    assert run(make_plan(w.app, BOB, SCALE, {})).title == "After, edited shop"


def test_a_playbook_replaced_by_rename_at_the_same_size_and_time_is_seen(tmp_path: Path) -> None:
    # An editor that writes a new file and renames it over the old one, within one tick of the
    # file system's clock: same size, same modification time; only the file itself is new.
    path = write_playbook(tmp_path, "Before")
    w = discovered(world(tmp_path))
    assert run(make_plan(w.app, BOB, SCALE, {})).title == "Before shop"
    stat = path.stat()
    fresh = tmp_path / "scale.yaml.new"
    fresh.write_text(PLAYBOOK.replace("TITLE", "Latter"))
    os.utime(fresh, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    fresh.replace(path)
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert run(make_plan(w.app, BOB, SCALE, {})).title == "Latter shop"


def test_a_new_playbook_file_is_seen_by_the_next_plan(tmp_path: Path) -> None:
    w = discovered(world(tmp_path))
    bundled = run(make_plan(w.app, BOB, SCALE, {}))
    assert bundled.playbook == "scale" and "Added" not in bundled.title
    write_playbook(tmp_path, "Added")
    assert run(make_plan(w.app, BOB, SCALE, {})).title == "Added shop"


def test_an_application_the_live_systems_list_later_is_planned_at_once() -> None:
    w = discovered(world())
    with pytest.raises(UnknownNameError):
        run(make_plan(w.app, BOB, "Scale billing in production to 2 replicas", {}))
    w.servers.record_applications("kubernetes", ["billing"])
    plan = run(make_plan(w.app, BOB, "Scale billing in production to 2 replicas", {}))
    assert plan.intent.subjects == ["billing"]


def test_a_changed_configuration_gets_a_planner_of_its_own() -> None:
    w = discovered(world())
    before = planner_for(w.app)
    text = CONFIG.replace("PLAYBOOKS", "").replace("  shop: {}", "  shop: {}\n  ledger: {}")
    changed = dataclasses.replace(w.app, config=parse_config(text, source="opsmith.yaml (test)"))
    assert changed.warm is w.app.warm, "the same process: the same warm values, stamped"
    plan = run(make_plan(changed, BOB, "Scale ledger in production to 2 replicas", {}))
    assert plan.intent.subjects == ["ledger"] and planner_for(changed) is not before
    with pytest.raises(UnknownNameError):
        run(make_plan(w.app, BOB, "Scale ledger in production to 2 replicas", {}))


def test_changed_recorded_tools_make_a_new_catalog() -> None:
    w = discovered(world())
    found = recorded_catalog(w.app)
    assert found is not None
    before = found[0]
    assert before.get("kubernetes", "restart_deployment") is None
    w.servers.replace_tools(
        "kubernetes", [*SPECS, tool("restart_deployment", "Restart a deployment's pods", WRITE)]
    )
    after = recorded_catalog(w.app)
    assert after is not None and after[0] is not before
    assert after[0].get("kubernetes", "restart_deployment") is not None


def test_equal_tools_read_again_keep_the_catalog() -> None:
    w = discovered(world())
    found = recorded_catalog(w.app)
    assert found is not None
    # What a store does after another discovery of the same tools: new objects, equal values.
    w.servers.replace_tools("kubernetes", [t.model_copy() for t in w.servers.known_tools()])
    again = recorded_catalog(w.app)
    assert again is not None and again[0] is found[0]


def test_a_server_stopped_by_an_operator_is_not_in_the_kept_catalog() -> None:
    w = discovered(world())
    assert recorded_catalog(w.app) is not None
    w.servers.set_enabled("kubernetes", False)
    found = recorded_catalog(w.app)
    assert found is not None and found[0].tools("kubernetes") == []


def test_unchanged_tools_are_not_written_again_at_each_discovery() -> None:
    w = world()
    writes: list[str] = []
    replace = w.servers.replace_tools

    def counted(server: str, tools: Any) -> None:
        writes.append(server)
        replace(server, tools)

    w.servers.replace_tools = counted  # type: ignore[method-assign]
    discovered(discovered(w))
    assert writes == ["kubernetes"], "the second discovery found the same tools"
    w.tools.specs.append(tool("restart_deployment", "Restart a deployment's pods", WRITE))
    discovered(w)
    assert writes == ["kubernetes", "kubernetes"]
    assert any(t.name == "restart_deployment" for t in w.servers.known_tools("kubernetes"))


# -- never a way around the checks ---------------------------------------------------------------


def test_a_warm_planner_does_not_let_a_viewer_plan() -> None:
    w = discovered(world())
    run(make_plan(w.app, BOB, SCALE, {}))
    saved = len(w.plans.plans)
    with pytest.raises(AccessRefused, match="may not plan"):
        run(make_plan(w.app, VIC, SCALE, {}))
    assert len(w.plans.plans) == saved


def test_every_plan_from_the_warm_planner_is_stored_signed() -> None:
    w = discovered(world())
    plans = [run(make_plan(w.app, BOB, SCALE, {})) for _ in range(3)]
    assert len({p.id for p in plans}) == 3
    assert all(plan_is_sealed(w.app.plans.get(p.id), w.app.seal) for p in plans)


# -- Kept ----------------------------------------------------------------------------------------


def test_kept_makes_again_only_for_a_different_stamp() -> None:
    kept: Kept[list[str]] = Kept()
    made: list[str] = []

    def make(label: str) -> Any:
        return lambda: made.append(label) or [label]

    first = kept.get(("a", 1), make("first"))
    assert kept.get(("a", 1), make("second")) is first, "an equal stamp keeps the value"
    assert kept.get(("a", 2), make("third")) == ["third"]
    kept.clear()
    assert kept.get(("a", 2), make("fourth")) == ["fourth"]
    assert made == ["first", "third", "fourth"]


def test_kept_fails_without_keeping_when_making_fails() -> None:
    kept: Kept[int] = Kept()
    assert kept.get("one", lambda: 1) == 1

    def broken() -> int:
        raise ValueError("cannot make it")

    with pytest.raises(ValueError, match="cannot make it"):
        kept.get("two", broken)
    assert kept.get("one", lambda: 3) == 1, "the last value made stays kept"

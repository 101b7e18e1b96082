"""What the stores keep between reads, on real SQLite and PostgreSQL: the inventory by its signed
stamp, the tools by their version, the audit sums by the newest entry. Each is read again as soon as
anything it came from changed, by this process or another (a second repository over the same file
plays the other process), and never serves what did not verify."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmith.domain.call_stats import fold_calls
from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.inventory_ansible import parse_ini
from opsmith.domain.seal import Seal
from opsmith.store.audit import AuditLog
from opsmith.store.database import Database
from opsmith.store.inventory import InventoryRepository
from opsmith.store.servers import ServerRepository
from tests.bothdbs import execute

pytestmark = pytest.mark.integration

SEAL = Seal(b"the store-reads test key, 32 bytes or more")
AT = datetime(2026, 12, 2, 9, 30, 15, tzinfo=UTC)
BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


# -- the inventory ---------------------------------------------------------------------------------


def test_an_unchanged_inventory_is_not_parsed_again(database_url: str) -> None:
    store = InventoryRepository(Database(database_url), SEAL)
    store.replace(parse_ini("[web]\nweb01 ansible_host=10.0.0.1\n"), source="hosts.ini", by="ada", at=AT)
    first = store.load()
    assert first is not None and store.load() is first


def test_another_import_with_the_same_counts_source_time_and_importer_is_seen(database_url: str) -> None:
    # Everything but the content is the same: only the signed hash tells the two apart.
    store = InventoryRepository(Database(database_url), SEAL)
    store.replace(parse_ini("[web]\nweb01 ansible_host=10.0.0.1\n"), source="hosts.ini", by="ada", at=AT)
    assert store.load() is not None
    other = InventoryRepository(Database(database_url), SEAL)  # another process
    moved = parse_ini("[web]\nweb01 ansible_host=10.0.0.2\n")
    other.replace(moved, source="hosts.ini", by="ada", at=AT)
    assert store.load() == moved


def test_the_same_content_imported_again_shows_its_new_source(database_url: str) -> None:
    store = InventoryRepository(Database(database_url), SEAL)
    inventory = parse_ini("[db]\ndb1\n")
    store.replace(inventory, source="a.ini", by="ada", at=AT)
    assert store.load() == inventory
    later = AT + timedelta(minutes=5)
    InventoryRepository(Database(database_url), SEAL).replace(inventory, source="b.ini", by="bob", at=later)
    assert store.load() == inventory
    found = store.source()
    assert found is not None and (found.source, found.imported_by, found.imported_at) == (
        "b.ini",
        "bob",
        later,
    )


def test_a_row_planted_after_a_read_is_unknown(database_url: str) -> None:
    store = InventoryRepository(Database(database_url), SEAL)
    store.replace(parse_ini("[web]\nweb01\n"), source="hosts.ini", by="ada", at=AT)
    assert store.load() is not None
    planter = InventoryRepository(Database(database_url), Seal(b"someone else's key, also 32 bytes!"))
    planter.replace(parse_ini("[web]\nevil1\n"), source="hosts.ini", by="ada", at=AT)
    assert store.load() is None and store.source() is None


def test_data_edited_after_a_read_is_never_served(database_url: str) -> None:
    store = InventoryRepository(Database(database_url), SEAL)
    genuine = parse_ini("[web]\nweb01 ansible_host=10.0.0.1\n")
    store.replace(genuine, source="hosts.ini", by="ada", at=AT)
    assert store.load() == genuine
    [(stored,)] = execute(database_url, "SELECT data FROM inventory")
    text = stored if isinstance(stored, str) else json.dumps(stored)  # PostgreSQL's driver decodes JSON
    execute(database_url, "UPDATE inventory SET data = :data", data=text.replace("10.0.0.1", "203.0.113.66"))
    # The signed fields did not change: what verified stays; a fresh read refuses the edit.
    assert store.load() == genuine
    assert InventoryRepository(Database(database_url), SEAL).load() is None


def test_an_inventory_removed_by_another_process_is_gone(database_url: str) -> None:
    store = InventoryRepository(Database(database_url), SEAL)
    store.replace(parse_ini("[web]\nweb01\n"), source="hosts.ini", by="ada", at=AT)
    assert store.load() is not None
    execute(database_url, "DELETE FROM inventory")
    assert store.load() is None and store.source() is None


# -- the recorded tools ----------------------------------------------------------------------------


def spec(name: str, description: str = "") -> ToolSpec:
    return ToolSpec(
        server="kubernetes",
        name=name,
        description=description,
        input_schema={"type": "object"},
        hints=ToolHints(read_only=True),
    )


def test_unchanged_tools_are_the_same_objects_and_changed_ones_are_read(database_url: str) -> None:
    servers = ServerRepository(Database(database_url))
    servers.replace_tools("kubernetes", [spec("get_pods"), spec("scale")])
    first = servers.known_tools()
    assert [t.name for t in first] == ["get_pods", "scale"]
    again = servers.known_tools()
    assert all(a is b for a, b in zip(first, again, strict=True)), "the same version: the same objects"
    other = ServerRepository(Database(database_url))  # another process discovers again
    other.replace_tools("kubernetes", [spec("get_pods", "changed"), spec("scale")])
    assert servers.known_tools("kubernetes")[0].description == "changed"


def test_servers_table_reads_round_trip(database_url: str) -> None:
    servers = ServerRepository(Database(database_url))
    servers.set_enabled("jenkins", False)
    servers.record_applications("kubernetes", ["shop", "billing", "shop"])
    assert servers.disabled() == {"jenkins"}
    assert servers.applications() == {"kubernetes": ["billing", "shop"]}
    assert {r.name for r in servers.recorded()} == {"jenkins", "kubernetes"}


# -- the audit sums --------------------------------------------------------------------------------

_DETAILS = st.fixed_dictionaries(
    {},
    optional={
        "tool": st.sampled_from(["kubernetes/apply", "jenkins/build", "hosts/service_stop"]),
        "ok": st.sampled_from([True, True, False]),
        # Around the bounds too: a duration right at a bucket's bound belongs to it.
        "ms": st.one_of(
            st.integers(0, 600_000),
            st.floats(0, 600_000, allow_nan=False),
            st.sampled_from([50, 100, 250, 1000, 300_000, 100.0, 2500.0]),
        ),
    },
)


@st.composite
def _trail(draw: st.DrawFn) -> tuple[list[tuple[str, dict[str, object]]], int]:
    actions = st.sampled_from(["tool.called", "tool.called", "tool.called", "tool.refused", "plan.created"])
    entries = draw(st.lists(st.tuples(actions, _DETAILS), min_size=1, max_size=30))
    return entries, draw(st.integers(1, len(entries) + 2))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def trail_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database for every example (migrating one per example would take most of the time)."""
    if request.param == "sqlite":
        found = f"sqlite:///{tmp_path_factory.mktemp('calls') / 'o.db'}"
    else:
        found = request.getfixturevalue("postgres_server").new_database()
    AuditLog(Database(found)).entries()
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_trail())
def test_tool_calls_summed_by_the_database_agree_with_the_entries_read_one_by_one(
    trail_url: str, case: tuple[list[tuple[str, dict[str, object]]], int]
) -> None:
    entries, window = case
    execute(trail_url, "DELETE FROM audit")  # a trail of this example's entries only
    log = AuditLog(Database(trail_url, sqlite_synchronous="normal"))
    for action, details in entries:
        log.append("alice", action, "plan_x", details)
    expected = fold_calls(log.entries(limit=window), BOUNDS)
    found = log.tool_calls(window, BOUNDS)
    assert found.keys() == expected.keys()
    for tool, stats in expected.items():
        got = found[tool]
        assert (got.calls, got.errors, got.timed, got.within) == (
            stats.calls,
            stats.errors,
            stats.timed,
            stats.within,
        )
        assert got.seconds == pytest.approx(stats.seconds, rel=1e-9, abs=1e-9)


def test_a_duration_too_small_to_divide_is_summed_as_zero(database_url: str) -> None:
    # PostgreSQL raises on a quotient that underflows; one such entry must not break every read.
    log = AuditLog(Database(database_url))
    log.append("alice", "tool.called", "plan_x", {"tool": "k/apply", "ok": True, "ms": 5e-324})
    log.append("alice", "tool.called", "plan_x", {"tool": "k/apply", "ok": True, "ms": 1000})
    stats = log.tool_calls(100, BOUNDS)["k/apply"]
    assert (stats.calls, stats.timed) == (2, 2)
    assert stats.seconds == pytest.approx(1.0)
    assert log.call_durations(100) == {"k/apply": pytest.approx(0.5)}


def test_audit_sums_are_kept_until_anyone_appends(database_url: str) -> None:
    log = AuditLog(Database(database_url))
    assert log.tool_calls(100, BOUNDS) == {} and log.call_durations(100) == {}
    log.append("alice", "tool.called", "plan_x", {"tool": "k/apply", "ok": True, "ms": 200})
    assert log.call_durations(100) == {"k/apply": pytest.approx(0.2)}
    assert log.tool_calls(100, BOUNDS)["k/apply"].calls == 1
    other = AuditLog(Database(database_url))  # another process appends
    other.append("bob", "tool.called", "plan_y", {"tool": "k/apply", "ok": False, "result": "boom"})
    other.append("bob", "tool.called", "plan_y", {"tool": "k/apply", "ok": True, "ms": 400})
    assert log.call_durations(100) == {"k/apply": pytest.approx(0.3)}
    stats = log.tool_calls(100, BOUNDS)["k/apply"]
    assert (stats.calls, stats.errors, stats.timed) == (3, 1, 2)
    assert log.tool_calls(1, BOUNDS)["k/apply"].calls == 1, "another window is summed afresh"


def test_a_tail_cut_and_written_again_is_summed_afresh(database_url: str) -> None:
    # The same newest seq, another entry: the sums are keyed by its hash too.
    log = AuditLog(Database(database_url))
    log.append("alice", "tool.called", "plan_x", {"tool": "k/apply", "ok": True, "ms": 200})
    assert log.call_durations(10) == {"k/apply": pytest.approx(0.2)}
    execute(database_url, "DELETE FROM audit")
    AuditLog(Database(database_url)).append(
        "mallory", "tool.called", "plan_x", {"tool": "k/apply", "ok": True, "ms": 900}
    )
    assert log.call_durations(10) == {"k/apply": pytest.approx(0.9)}
    assert json.dumps(log.tool_calls(10, BOUNDS)["k/apply"].within) == json.dumps([0, 0, 0, 0, 1] + [1] * 6)

"""Assignment: a capable agent always beats an incapable one (which never gets the task), an agent
at its maximum load never gets one, a specialist beats a generalist when all else is equal, the
choice is deterministic with ties broken by agent id, and it carries its reasons."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.agents import BUILT_IN, Agent
from opsmith.domain.assignment import Queue, Weights, assign_all, choose
from opsmith.domain.tasks import Priority, Task, queue_key

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
W = Weights()
TYPES = ["code_fix", "issue", "monitoring", "deployment_failure", "bug_report"]


def task(type_: str = "code_fix", priority: Priority = Priority.NORMAL, id_: str = "t") -> Task:
    return Task(id=id_, type=type_, title="x", priority=priority, created_at=T0, updated_at=T0)


agents = st.builds(
    Agent,
    id=st.text(alphabet="abcdefgh", min_size=1, max_size=4),
    type=st.just("x"),
    capabilities=st.frozensets(st.sampled_from([*TYPES, "*"]), max_size=3),
    max_concurrent=st.integers(min_value=1, max_value=4),
    enabled=st.booleans(),
    successes=st.integers(min_value=0, max_value=50),
    failures=st.integers(min_value=0, max_value=50),
)
fleets = st.lists(agents, max_size=8, unique_by=lambda a: a.id)
loads_of = st.dictionaries(st.text(alphabet="abcdefgh", min_size=1, max_size=4), st.integers(0, 5))


@given(fleets, loads_of, st.sampled_from(TYPES), st.sampled_from(list(Priority)))
def test_the_chosen_agent_may_take_the_task_and_scores_best(
    fleet: list[Agent], loads: dict[str, int], kind: str, priority: Priority
) -> None:
    t = task(kind, priority)
    choice = choose(t, fleet, loads, W)
    eligible = [
        a for a in fleet if a.enabled and a.capability(kind) > 0 and loads.get(a.id, 0) < a.max_concurrent
    ]
    if not eligible:
        assert choice is None
        return
    assert choice is not None
    chosen = next(a for a in fleet if a.id == choice.agent_id)
    assert chosen in eligible  # never an incapable, disabled or full agent
    assert choice.candidates == len(eligible)
    assert 0 <= choice.score.total <= 1 and choice.agent_id in choice.reason
    assert choice == choose(t, list(reversed(fleet)), loads, W)  # the order agents come in never matters


@given(fleets, st.sampled_from(TYPES))
def test_a_capable_agent_always_beats_an_incapable_one(fleet: list[Agent], kind: str) -> None:
    capable = Agent(
        id="zz-capable", type="x", capabilities=frozenset({kind}), max_concurrent=1, failures=1000
    )
    incapable = [a.model_copy(update={"capabilities": frozenset({"other"})}) for a in fleet]
    choice = choose(task(kind), [*incapable, capable], {}, W)
    assert choice is not None and choice.agent_id == capable.id


@given(st.integers(min_value=1, max_value=10))
def test_an_agent_at_its_maximum_load_never_gets_a_task(limit: int) -> None:
    full = Agent(
        id="full", type="x", capabilities=frozenset({"code_fix"}), max_concurrent=limit, successes=999
    )
    assert choose(task(), [full], {"full": limit}, W) is None
    assert choose(task(), [full], {"full": limit - 1}, W) is not None


def test_a_specialist_beats_the_generalist_and_equal_scores_go_to_the_smaller_id() -> None:
    choice = choose(task("deployment_failure", Priority.EMERGENCY), BUILT_IN, {}, W)
    assert choice is not None and choice.agent_id == "deployment-agent"
    assert "next: general-backup" in choice.reason and choice.score.capability == 1.0
    twins = [Agent(id=i, type="x", capabilities=frozenset({"code_fix"})) for i in ("b", "a", "c")]
    found = choose(task(), twins, {}, W)
    assert found is not None and found.agent_id == "a"


def test_assigning_many_fills_capacity_most_urgent_first() -> None:
    one = Agent(id="solo", type="x", capabilities=frozenset({"code_fix"}), max_concurrent=1)
    low, high = task(id_="low", priority=Priority.LOW), task(id_="high", priority=Priority.CRITICAL)
    assert [(t.id, c.agent_id) for t, c in assign_all([low, high], [one], {}, W)] == [("high", "solo")]


def test_the_queue_pops_in_queue_order() -> None:
    tasks = [task(id_=f"t{n}", priority=list(Priority)[n % 5]) for n in range(20)]
    queue = Queue(tasks)
    assert [queue.pop().id for _ in range(len(queue))] == [t.id for t in sorted(tasks, key=queue_key)]

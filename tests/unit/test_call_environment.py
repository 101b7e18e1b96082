"""The environment a call's arguments name, and when it is foreign to its plan."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opsmith.domain.call_environment import ENVIRONMENTS, environment_of, foreign_environment


def test_the_arguments_name_an_environment_by_its_usual_keys_and_short_forms() -> None:
    assert environment_of({"namespace": "production"}) == "production"
    assert environment_of({"env": "PROD"}) == "production"
    assert environment_of({"stage": "stg"}) == "staging"
    assert environment_of({"environment": "dev"}) == "development"
    assert environment_of({"namespace": "live"}) == "production"
    assert environment_of({"namespace": "payments"}) is None
    assert environment_of({"replicas": 3}) is None


def test_a_step_more_guarded_than_its_plan_is_foreign_and_a_less_guarded_one_is_not() -> None:
    assert foreign_environment({"namespace": "production"}, "staging") == "production"
    assert foreign_environment({"namespace": "production"}, None) == "production"
    assert foreign_environment({"namespace": "staging"}, "production") is None  # a canary's validation
    assert foreign_environment({"namespace": "production"}, "production") is None
    assert foreign_environment({"image": "x"}, "development") is None


PLANNED = st.sampled_from([None, *ENVIRONMENTS])


@given(PLANNED, PLANNED)
def test_foreign_iff_the_named_environment_ranks_above_the_plans(
    named: str | None, planned: str | None
) -> None:
    arguments = {} if named is None else {"namespace": named}
    rank = {None: 0, "development": 1, "staging": 2, "production": 3}
    expected = named if named is not None and rank[named] > rank[planned] else None
    assert foreign_environment(arguments, planned) == expected

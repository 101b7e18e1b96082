"""PlanRepository on real SQLite and PostgreSQL: what a new plan is made with (the ids taken, each
subject's recent failures) comes in one read, equal to the separate reads; the save is one
transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from opsmith.domain.intent import Intent
from opsmith.domain.plan import Estimate, Plan, PlanStatus
from opsmith.domain.risk import Risk
from opsmith.domain.seal import Seal
from opsmith.store import Database
from opsmith.store.plans import PlanRepository

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def plan(plan_id: str, subject: str, environment: str, status: PlanStatus) -> Plan:
    request = f"deploy {subject} to {environment}"
    return Plan(
        id=plan_id,
        request=request,
        title=request,
        intent=Intent(request=request, action="deploy", subjects=[subject], environment=environment),
        playbook="test",
        priority="normal",
        risk=Risk.LOW,
        requires_approval=False,
        rollback_strategy="LIFO",
        failure_handling="rollback",
        estimated_duration=Estimate(minimum_seconds=0, maximum_seconds=0, text="< 1 min", critical_path=[]),
        steps=[],
        status=status,
        created_at=NOW,
    )


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[PlanRepository, list[str]]]:
    """The repository, and the transactions begun on its database (one entry per transaction)."""
    database = Database(database_url)
    database.ensure_current()  # the migrations of a first use are transactions of their own
    repository = PlanRepository(database, Seal(b"k" * 32))
    begun: list[str] = []

    def began(_connection: Any) -> None:
        begun.append("begin")

    event.listen(database.engine, "begin", began)
    yield repository, begun
    event.remove(database.engine, "begin", began)


def test_history_is_one_read_equal_to_the_separate_ones(store: tuple[PlanRepository, list[str]]) -> None:
    repository, begun = store
    repository.save(plan("plan_deploy_shop_1", "shop", "production", PlanStatus.FAILED))
    repository.save(plan("plan_deploy_shop_2", "shop", "production", PlanStatus.ROLLED_BACK))
    repository.save(plan("plan_deploy_shop_3", "shop", "staging", PlanStatus.FAILED))
    repository.save(plan("plan_deploy_cart_1", "cart", "production", PlanStatus.SUCCEEDED))
    repository.save(plan("plan_scale_shop_1", "shop", "production", PlanStatus.FAILED))
    begun.clear()
    taken, failed = repository.history("plan_deploy_", ["shop", "cart", "ledger"], "production", 7, NOW)
    assert len(begun) == 1, "one transaction for everything a new plan is made with"
    assert taken == repository.ids_with_prefix("plan_deploy_")
    assert taken == {"plan_deploy_shop_1", "plan_deploy_shop_2", "plan_deploy_shop_3", "plan_deploy_cart_1"}
    assert failed == {"shop": 3, "cart": 0, "ledger": 0}, "scale's failure counts too: same app, same place"
    assert failed["shop"] == repository.recent_failures("shop", "production", 7, NOW)


def test_failures_older_than_the_window_do_not_count(store: tuple[PlanRepository, list[str]]) -> None:
    repository, _ = store
    repository.save(plan("plan_deploy_shop_1", "shop", "production", PlanStatus.FAILED))
    later = NOW + timedelta(days=8)
    assert repository.history("plan_deploy_", ["shop"], "production", 7, later)[1] == {"shop": 0}
    assert repository.history("plan_deploy_", ["shop"], "production", 9, later)[1] == {"shop": 1}


def test_a_save_is_one_transaction_new_or_updated(store: tuple[PlanRepository, list[str]]) -> None:
    repository, begun = store
    made = plan("plan_deploy_shop_1", "shop", "production", PlanStatus.PENDING_APPROVAL)
    repository.save(made)
    assert len(begun) == 1
    repository.save(made.model_copy(update={"status": PlanStatus.APPROVED}))
    assert len(begun) == 2
    assert repository.get(made.id).status is PlanStatus.APPROVED


def test_count_is_the_length_of_the_unlimited_list(store: tuple[PlanRepository, list[str]]) -> None:
    repository, _ = store
    statuses = [PlanStatus.PENDING_APPROVAL] * 3 + [PlanStatus.APPROVED, PlanStatus.FAILED]
    for number, status in enumerate(statuses):
        repository.save(plan(f"plan_deploy_shop_{number}", "shop", "production", status))
    repository.save(plan("plan_deploy_shop_0", "shop", "production", PlanStatus.APPROVED))  # re-saved
    for status in (None, *PlanStatus):
        assert repository.count(status) == len(repository.list(status, limit=1000)), status
    assert repository.count(PlanStatus.PENDING_APPROVAL) == 2
    assert repository.count() == 5

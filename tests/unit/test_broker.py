"""What the Celery app accepts: JSON only, whatever Celery's defaults become (a pickled message
from anyone who can write to the broker would run code in every worker)."""

from __future__ import annotations

from opsmith.config import CeleryConfig
from opsmith.distributed.broker import celery_app, masked


def test_workers_accept_json_messages_only() -> None:
    app = celery_app(CeleryConfig(broker_url="redis://127.0.0.1:1/0"), {})
    assert list(app.conf.accept_content) == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.task_acks_late is False


def test_the_broker_password_is_masked() -> None:
    assert masked("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"

"""Celery over Redis, configured once from `celery:`: what the driver sends and workers consume.

A message holds a step call's key and nothing else, so what Celery over Redis is known to do with
messages is harmless here: the database says whether a call is queued, claimed or done.
- A message delivered twice (a redelivery after `visibility_timeout`, a duplicate) finds its call
  claimed or done: nothing is called twice.
- A message lost (a broker restart, a worker killed with messages it had taken) leaves its call
  queued: the driver asks for it again after `resend_after_seconds`.
- A message for a call its driver stopped waiting for finds it settled as not made.

Messages are acknowledged on delivery, not late. Late acknowledgement would only bring back the
message of a call cut off by a killed worker, and that call is claimed: its message does nothing,
and the driver settles it by the worker's silence instead. Measured here (celery 5.7, kombu 5.7,
redis-py 8.1): with late acknowledgement, a worker that loses its Redis connection while a task
is in flight stops for good ("Unrecoverable error: AttributeError" as kombu restores the unacked
message over the closed connection), so a broker restart would stop every busy worker. Prefetch
stays at one per thread, and `unacked_restore_throttle` 1 makes kombu look for messages to hand
out again at every sweep rather than every tenth, for any that were taken and not acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from opsmith.config import CeleryConfig, resolve
from opsmith.errors import ConfigError, ServerUnavailableError

if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped]

TASK = "opsmith.step_call"
QUEUE = "opsmith.steps"
ACKS_LATE = False  # see the module's docstring
SEND_TIMEOUT = 2.0  # seconds to reach the broker before a send is left to the driver's re-send


def masked(url: str) -> str:
    """The URL with its password (if any) replaced by ***: how it is shown anywhere."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def broker_url(config: CeleryConfig, environ: Mapping[str, str]) -> str:
    """The broker URL with its ${VARIABLES} filled in: passed to Redis, never shown."""
    if config.broker_url is None:
        raise ConfigError("executor: celery needs celery.broker_url", hint="set it to redis://HOST:PORT/0")
    return resolve(config.broker_url, environ, where="celery.broker_url")


def celery_app(config: CeleryConfig, environ: Mapping[str, str]) -> Celery:
    """A Celery app of its own (never Celery's current app) for sending and consuming step calls."""
    from celery import Celery

    app = Celery("opsmith", broker=broker_url(config, environ), set_as_current=False)
    app.conf.update(
        task_acks_late=ACKS_LATE,
        task_reject_on_worker_lost=False,  # a killed worker's message comes back after visibility_timeout
        task_ignore_result=True,  # the outcome is in the database, not in a result backend
        # JSON only, said rather than left to Celery's default: anyone who can write to the broker
        # would run code in every worker with a pickled message.
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=SEND_TIMEOUT,
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            "unacked_restore_throttle": 1,
            "socket_timeout": SEND_TIMEOUT,
            "socket_connect_timeout": SEND_TIMEOUT,
            "max_retries": 1,
        },
    )
    return app


class CeleryBroker:
    """The Broker port over Celery and Redis."""

    def __init__(self, config: CeleryConfig, environ: Mapping[str, str]) -> None:
        self._config = config
        self._environ = environ
        self._app: Celery | None = None
        assert config.broker_url is not None  # Config refuses executor: celery without one
        self.where = masked(config.broker_url)

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = celery_app(self._config, self._environ)
        return self._app

    def send(self, key: str) -> None:
        try:
            self.app.send_task(TASK, args=[key], queue=QUEUE, retry=False)
        except Exception as exc:  # kombu and redis-py raise many kinds for one thing: not sent
            raise ServerUnavailableError(
                f"the broker at {self.where} did not take step call {key}: {type(exc).__name__}",
                hint="check that Redis is up; the call is asked for again while it waits",
            ) from exc

    def ping(self, timeout: float) -> bool:
        import redis

        client = redis.Redis.from_url(
            broker_url(self._config, self._environ), socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

"""Slack incoming webhooks and generic signed JSON webhooks, over httpx.

A generic webhook's request carries:
- `X-Opsmith-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with the channel's secret>`;
- `X-Opsmith-Timestamp: <unix seconds>`, the same number as the body's `timestamp` (so it is signed);
- `X-Opsmith-Delivery: <notification id>` (also the body's `id`): a delivery may arrive more than
  once (a worker that stopped after sending and before recording it), a receiver dedupes on it;
- `X-Opsmith-Event: <event>`.
A receiver recomputes the HMAC over the raw body (opsmith.domain.notifications.signature_valid),
compares in constant time, and refuses a timestamp older than it tolerates (five minutes, say).
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from email.utils import parsedate_to_datetime

import httpx

from opsmith.domain.notifications import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    DeliveryFailed,
    sign,
)
from opsmith.domain.notify_messages import slack_payload, webhook_body

_RETRYABLE_STATUS = frozenset({408, 425, 429})
_USER_AGENT = "opsmith-notify/1"


async def post_slack(delivery: Delivery, url: str, *, timeout: float) -> None:
    body = json.dumps(slack_payload(delivery.notice), separators=(",", ":")).encode()
    await _post(delivery, url, body, {"Content-Type": "application/json"}, timeout=timeout)


async def post_webhook(delivery: Delivery, url: str, secret: bytes, *, timeout: float) -> None:
    timestamp = int(time.time())
    body = webhook_body(delivery, timestamp)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery.id,
        "X-Opsmith-Event": delivery.notice.event.value,
    }
    await _post(delivery, url, body, headers, timeout=timeout)


async def _post(
    delivery: Delivery, url: str, body: bytes, headers: dict[str, str], *, timeout: float
) -> None:
    what = f"POST to notification channel {delivery.channel!r}"
    try:
        async with httpx.AsyncClient(verify=_tls(), timeout=timeout, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers={"User-Agent": _USER_AGENT, **headers})
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        raise DeliveryFailed(
            f"{what}: the URL is not usable ({type(exc).__name__})",
            hint="correct the channel's URL (or the variable it references)",
            retryable=False,
        ) from exc
    except httpx.TimeoutException as exc:
        raise DeliveryFailed(f"{what} timed out after {timeout:g} s ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise DeliveryFailed(
            f"{what} could not reach the receiver: {str(exc) or type(exc).__name__}",
            hint="check that the receiver is up and reachable from this host",
        ) from exc
    if response.is_success:
        return
    status = response.status_code
    said = response.text[:200].strip()
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    raise DeliveryFailed(
        f"{what} was answered {status} {response.reason_phrase}" + (f": {said}" if said else ""),
        hint=None if retryable else "the receiver refused it: check the channel's URL and secret",
        retryable=retryable,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    # Made once: loading the CA bundle costs a quarter of a second on a busy machine, per client.
    return httpx.create_ssl_context()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None

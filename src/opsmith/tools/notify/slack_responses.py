"""Replies to a Slack click (the ChatResponder port): a JSON POST to the click's response_url.

The URL comes from the signed payload and has been checked against the channel's allowed prefixes
before it reaches here; redirects are not followed, so an allowed host cannot send the request on
to one that is not. The URL itself is a bearer capability (it lets its holder post into the
conversation), so it is never put in an error message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opsmith.domain.notifications import DeliveryFailed

_USER_AGENT = "opsmith-slack/1"


class SlackResponder:
    """POSTs a message to a response_url with a short timeout; httpx loads at the first reply."""

    def __init__(self, *, timeout: float) -> None:
        self._timeout = timeout

    async def respond(self, url: str, message: Mapping[str, Any]) -> None:
        import httpx

        from opsmith.tools.notify.http import _tls

        body = json.dumps(dict(message), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        what = "the reply to the Slack click"
        try:
            async with httpx.AsyncClient(
                verify=_tls(), timeout=self._timeout, follow_redirects=False
            ) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"{what} timed out after {self._timeout:g} s") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise DeliveryFailed(f"{what} could not be sent ({type(exc).__name__})") from exc
        if not response.is_success:
            raise DeliveryFailed(
                f"{what} was answered {response.status_code} {response.reason_phrase}",
                hint="a response_url takes a few replies within 30 minutes of the click",
            )

"""GitHub's REST API for issues (the IssueTracker port), over httpx.

Four requests, each with `Authorization: Bearer <token>`, `Accept: application/vnd.github+json`
and `X-GitHub-Api-Version: 2022-11-28`:
- open:    POST  /repos/{owner}/{repo}/issues               {"title", "body", "labels"}
- comment: POST  /repos/{owner}/{repo}/issues/{n}/comments  {"body"}
- reopen:  PATCH /repos/{owner}/{repo}/issues/{n}           {"state": "open"}
- state:   GET   /repos/{owner}/{repo}/issues/{n}

Failures become TrackerUnavailable (retryable: no connection, a timeout, 5xx, 429, a rate limit)
or TrackerRefused (401, 403, 404, 410, 422: the request fails again until the configuration is
corrected). No message carries the token.
"""

from __future__ import annotations

import functools
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from opsmith.domain.issues import ExternalRef, IssueState, TrackerError, TrackerRefused, TrackerUnavailable

__all__ = ["API_VERSION", "GithubIssues"]

API_VERSION = "2022-11-28"
_USER_AGENT = "opsmith-issues/1"


class GithubIssues:
    """One repository's issues. `token` None: the variable its reference names is not set."""

    def __init__(
        self,
        repo: str,
        token: str | None,
        *,
        base_url: str = "https://api.github.com",
        timeout: float = 10.0,
        token_name: str = "the token variable",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._repo = repo
        self._token = token
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._token_name = token_name
        self._transport = transport  # tests answer with httpx.MockTransport; None: the network

    async def open(self, title: str, body: str, labels: list[str]) -> ExternalRef:
        answer = await self._request(
            "POST", "/issues", {"title": title, "body": body, "labels": labels}, what="open an issue"
        )
        number, url = answer.get("number"), answer.get("html_url")
        if not isinstance(number, int) or isinstance(number, bool):
            raise TrackerUnavailable(
                f"GitHub answered the new issue in {self._repo} without its number",
                hint="check that issues.github.base_url is GitHub's API",
            )
        return ExternalRef(number=number, url=url if isinstance(url, str) else "")

    async def comment(self, number: int, body: str) -> None:
        await self._request(
            "POST", f"/issues/{number}/comments", {"body": body}, what=f"comment on #{number}"
        )

    async def reopen(self, number: int) -> None:
        await self._request("PATCH", f"/issues/{number}", {"state": "open"}, what=f"reopen #{number}")

    async def state(self, number: int) -> IssueState:
        answer = await self._request("GET", f"/issues/{number}", None, what=f"read #{number}")
        return IssueState.CLOSED if answer.get("state") == "closed" else IssueState.OPEN

    async def _request(self, method: str, path: str, body: dict[str, Any] | None, *, what: str) -> Any:
        doing = f"{what} in GitHub repository {self._repo}"
        if not self._token:
            raise TrackerRefused(
                f"cannot {doing}: {self._token_name} is not set",
                hint=f"export {self._token_name} (a token that may write issues),"
                " then `opsmith tracker sync --failed`",
            )
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": _USER_AGENT,
        }
        url = f"{self._base}/repos/{self._repo}{path}"
        try:
            async with httpx.AsyncClient(
                verify=_tls(), timeout=self._timeout, follow_redirects=False, transport=self._transport
            ) as client:
                response = await client.request(method, url, json=body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise TrackerRefused(
                f"cannot {doing}: issues.github.base_url is not usable ({type(exc).__name__})",
                hint="set issues.github.base_url to https://api.github.com or your server's /api/v3",
            ) from exc
        except httpx.TimeoutException as exc:
            raise TrackerUnavailable(
                f"cannot {doing}: GitHub did not answer within {self._timeout:g} s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise TrackerUnavailable(
                f"cannot {doing}: GitHub could not be reached ({type(exc).__name__}: {exc})",
                hint="check that this host reaches issues.github.base_url; the issue is synced later",
            ) from exc
        if response.is_success:
            try:
                return response.json() if response.content else {}
            except ValueError as exc:
                raise TrackerUnavailable(f"cannot {doing}: GitHub's answer is not JSON") from exc
        raise self._failure(response, doing)

    def _failure(self, response: httpx.Response, doing: str) -> TrackerError:
        status = response.status_code
        said = _message(response)
        told = f"cannot {doing}: GitHub answered {status}" + (f" ({said})" if said else "")
        wait = _retry_after(response.headers)
        if status == 429 or (status == 403 and wait is not None):
            return TrackerUnavailable(told, status=status, retry_after=wait, hint="GitHub's rate limit")
        if status >= 500:
            return TrackerUnavailable(
                told, status=status, retry_after=wait, hint="GitHub is failing: the issue is synced later"
            )
        hints = {
            401: f"the token in {self._token_name} is invalid or expired: replace it, then"
            " `opsmith tracker sync --failed`",
            403: f"the token in {self._token_name} may not write issues of {self._repo} (Issues: write)",
            404: f"check issues.github.repo ({self._repo}) and that the token can see it",
            410: f"issues are turned off in {self._repo}",
            422: "GitHub refused the issue's fields (a label, or a body too long)",
        }
        return TrackerRefused(told, status=status, hint=hints.get(status, "see GitHub's answer"))


def _message(response: httpx.Response) -> str:
    try:
        found = response.json()
    except ValueError:
        return response.text[:200].strip()
    message = found.get("message") if isinstance(found, dict) else None
    return str(message)[:200] if message else ""


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    # A primary rate limit: no Retry-After, the remaining count at zero and the reset time.
    if headers.get("X-RateLimit-Remaining") == "0" and (reset := headers.get("X-RateLimit-Reset")):
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


@functools.cache
def _tls() -> ssl.SSLContext:
    # Made once: loading the CA bundle costs a quarter of a second on a busy machine, per client.
    return httpx.create_ssl_context()

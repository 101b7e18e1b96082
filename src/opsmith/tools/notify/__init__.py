"""The notification senders (the NotificationSender port): Slack incoming webhooks and signed JSON
webhooks over httpx, e-mail over SMTP with STARTTLS and login.

Each channel's secrets (the Slack URL, the webhook's HMAC key, the SMTP password) are references
to environment variables, resolved here at the moment of sending and never kept, logged or put in
an error: every failure message is redacted of the values resolved for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsmith.config import ChannelConfig, EmailChannel, SlackChannel, resolve
from opsmith.domain.errors import ConfigError
from opsmith.domain.notifications import Delivery, DeliveryFailed
from opsmith.domain.redaction import Redactor

__all__ = ["ChannelSenders"]


class ChannelSenders:
    """Sends a delivery over the kind of channel it is for; the libraries load at the first send."""

    def __init__(self, environ: Mapping[str, str], *, timeout: float) -> None:
        self._environ = environ
        self._timeout = timeout

    async def send(self, delivery: Delivery, channel: ChannelConfig) -> None:
        where = f"notification channel {delivery.channel!r}"
        redactor = Redactor(_secret_values(channel, self._environ))
        try:
            if isinstance(channel, EmailChannel):
                from opsmith.tools.notify.smtp import send_email

                password = None if channel.password is None else self._value(channel.password, where)
                await send_email(delivery, channel, password, timeout=self._timeout)
                return
            from opsmith.tools.notify.http import post_slack, post_webhook

            if isinstance(channel, SlackChannel):
                url = self._value(channel.webhook_url, where)
                await post_slack(delivery, url, timeout=self._timeout)
            else:
                url = self._value(channel.url, where)
                secret = self._value(channel.secret, where)
                await post_webhook(delivery, url, secret.encode(), timeout=self._timeout)
        except DeliveryFailed as failed:
            # Whatever a library or a receiver said may quote what it was given: the URL, the login.
            raise DeliveryFailed(
                redactor.text(failed.message),
                hint=None if failed.hint is None else redactor.text(failed.hint),
                retryable=failed.retryable,
                retry_after=failed.retry_after,
            ) from None

    def _value(self, template: str, where: str) -> str:
        try:
            return resolve(template, self._environ, where=where)
        except ConfigError as missing:
            # Another attempt cannot see a variable this process was started without.
            raise DeliveryFailed(missing.message, hint=missing.hint, retryable=False) from missing


def _secret_values(channel: ChannelConfig, environ: Mapping[str, str]) -> list[str]:
    found = []
    for template in channel.secret_templates():
        try:
            found.append(resolve(template, environ, where="a notification channel"))
        except ConfigError:
            continue
    return found

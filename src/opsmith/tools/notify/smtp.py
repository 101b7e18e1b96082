"""E-mail over SMTP with the standard library, in a worker thread: STARTTLS (the server's certificate
verified, against `ca_bundle` when given) before any login, then AUTH, then the message."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from opsmith.config import EmailChannel
from opsmith.domain.notifications import DELIVERY_HEADER, Delivery, DeliveryFailed
from opsmith.domain.notify_messages import email_text


def message_of(delivery: Delivery, channel: EmailChannel) -> EmailMessage:
    subject, body = email_text(delivery.notice)
    message = EmailMessage()
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(idstring=delivery.id, domain=channel.sender.rsplit("@", 1)[-1])
    message[DELIVERY_HEADER] = delivery.id
    message.set_content(body)
    return message


async def send_email(
    delivery: Delivery, channel: EmailChannel, password: str | None, *, timeout: float
) -> None:
    message = message_of(delivery, channel)
    await asyncio.to_thread(_send, channel, password, message, timeout, f"channel {delivery.channel!r}")


def _send(
    channel: EmailChannel, password: str | None, message: EmailMessage, timeout: float, where: str
) -> None:
    server = f"SMTP server {channel.host}:{channel.port} ({where})"
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=timeout) as smtp:
            smtp.ehlo()
            if channel.starttls:
                context = ssl.create_default_context(
                    cafile=None if channel.ca_bundle is None else str(channel.ca_bundle)
                )
                smtp.starttls(context=context)
                smtp.ehlo()
            if channel.username is not None and password is not None:
                smtp.login(channel.username, password)
            smtp.send_message(message)
    # smtplib's errors are OSErrors: the particular ones first.
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryFailed(
            f"{server} does not offer {'STARTTLS' if channel.starttls else 'what was asked'}: {exc}",
            hint="use a port and server that offer STARTTLS (usually 587)",
            retryable=False,
        ) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(
            f"{server} refused the login of {channel.username!r}: {exc.smtp_code} {_said(exc.smtp_error)}",
            hint="check the username and the password variable the channel references",
            retryable=False,
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(sorted(exc.recipients))
        raise DeliveryFailed(
            f"{server} refused the recipients {refused}", hint="correct the channel's `to`", retryable=False
        ) from exc
    except smtplib.SMTPResponseException as exc:
        # 4xx: the server is busy or greylists, try later; 5xx: it will say the same again.
        raise DeliveryFailed(
            f"{server} answered {exc.smtp_code} {_said(exc.smtp_error)}", retryable=400 <= exc.smtp_code < 500
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryFailed(
            f"{server} presented a certificate that does not verify: {exc.verify_message}",
            hint="give the channel a ca_bundle with the CA that signed it",
            retryable=False,
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(
            f"{server} could not be reached: {str(exc) or type(exc).__name__}",
            hint="check that the SMTP server is up and reachable from this host",
        ) from exc


def _said(error: bytes | str) -> str:
    text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
    return " ".join(text.split())[:200]

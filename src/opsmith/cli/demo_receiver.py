"""What the bundled demo needs to keep its follow-ups on this machine: generated secrets for the
demo config's references, and a webhook receiver on 127.0.0.1 that stands in for yours.

The receiver checks each notification the way a real one should (HMAC-SHA256 of the raw body under
the channel's secret) and answers 401 to a body that fails it, so what the demo shows as delivered
is what a receiver accepted, not what the sender hoped."""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from opsmith.domain.notifications import DELIVERY_HEADER, SIGNATURE_HEADER, signature_valid

__all__ = ["NOTIFY_SECRET", "NOTIFY_URL", "WEBHOOK_SECRET", "Receipt", "Receiver", "demo_secrets"]

# The variables the bundled demo.yaml references.
WEBHOOK_SECRET = "OPSMITH_DEMO_WEBHOOK_SECRET"
NOTIFY_SECRET = "OPSMITH_DEMO_NOTIFY_SECRET"
NOTIFY_URL = "OPSMITH_DEMO_NOTIFY_URL"


def demo_secrets(state_dir: Path, environ: MutableMapping[str, str]) -> None:
    """Set the demo's secret variables in `environ` from files under STATE_DIR/demo, made once with
    random values (0600), unless they are exported already. Done before the app is built, which
    reads its environment then; the values are never printed."""
    folder = state_dir / "demo"
    for name in (WEBHOOK_SECRET, NOTIFY_SECRET):
        if environ.get(name):
            continue
        path = folder / name.lower()
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another demo in this directory made it first: use theirs
                pass
            else:
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
        environ[name] = path.read_text().strip()


@dataclass(frozen=True)
class Receipt:
    """One request the receiver got."""

    delivery: str | None
    event: str | None
    title: str | None
    verified: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery,
            "event": self.event,
            "title": self.title,
            "verified": self.verified,
        }


class Receiver:
    """A threaded HTTP server on 127.0.0.1 (a free port) for the length of a `with` block."""

    def __init__(self, secret: str) -> None:
        self.receipts: list[Receipt] = []
        key = secret.encode()
        receipts = self.receipts
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(size, 1_000_000))
                verified = signature_valid(key, body, self.headers.get(SIGNATURE_HEADER))
                try:
                    shown = json.loads(body)
                except ValueError:
                    shown = {}
                title = shown.get("title") if isinstance(shown, dict) else None
                receipt = Receipt(
                    self.headers.get(DELIVERY_HEADER), self.headers.get("X-Opsmith-Event"), title, verified
                )
                with lock:
                    receipts.append(receipt)
                self.send_response(204 if verified else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # the demo prints what arrived itself; no access log on its output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/opsmith-demo/notifications"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def receipt_of(self, delivery_id: str) -> Receipt | None:
        return next((r for r in self.receipts if r.delivery == delivery_id), None)

"""The audit trail as people read it: entries, and the verification of the whole chain."""

from __future__ import annotations

from opsmith.bootstrap import App
from opsmith.domain.audit import AuditEntry, Verification


def audit_entries(app: App, subject: str | None = None, limit: int = 50) -> list[AuditEntry]:
    """The newest `limit` entries (about `subject` when given), oldest first."""
    return app.audit.entries(subject=subject, limit=limit)


def verify_audit(app: App) -> Verification:
    """Recompute every hash and link; the first entry edited, removed or moved is named."""
    return app.audit.verify()

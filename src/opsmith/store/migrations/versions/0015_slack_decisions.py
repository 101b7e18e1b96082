"""Slack interactive decisions: one row per Slack user and plan version, so a click decides once

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_decisions",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("plan_id", sa.String(64), nullable=False, index=True),
        sa.Column("plan_hash", sa.String(100), nullable=False),
        sa.Column("slack_team", sa.String(64), nullable=False),
        sa.Column("slack_user", sa.String(64), nullable=False),
        sa.Column("opsmith_user", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slack_decisions")

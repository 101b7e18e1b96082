"""push webhook deliveries and deployment attempts

One row per webhook delivery opsmith accepted (its id refuses a replay), and one per plan made again
after a push, saying why: the failed run it follows, the push's commits, the root cause it matched.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.String(128), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("repository", sa.String(200), nullable=True, index=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("plan_id", sa.String(128), nullable=True),
        sa.Column("push", sa.JSON, nullable=True),
    )
    op.create_table(
        "replans",
        sa.Column("plan_id", sa.String(128), primary_key=True),
        sa.Column("application", sa.String(160), nullable=False, index=True),
        sa.Column("environment", sa.String(32), nullable=False),
        sa.Column("failed_plan_id", sa.String(128), nullable=False),
        sa.Column("failed_run_id", sa.String(128), nullable=False),
        sa.Column("delivery_id", sa.String(128), nullable=True),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("before_sha", sa.String(64), nullable=False),
        sa.Column("after_sha", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replans")
    op.drop_table("webhook_deliveries")

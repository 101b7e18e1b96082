"""the inventory: one signed row holding the groups and hosts last imported, with their source

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inventory",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("hash", sa.String(80), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(200), nullable=False),
        sa.Column("group_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("host_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("seal", sa.String(80), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("inventory")

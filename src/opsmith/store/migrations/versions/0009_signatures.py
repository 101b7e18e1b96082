"""keyed signatures: of approvals, of stored roles and of audit entries (plans carry theirs in data)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows written before signing get an empty signature, which never verifies: an approval or role
# given before the upgrade must be given again, and `audit verify` names the unsigned entries.
TABLES = (("approvals", "seal"), ("user_roles", "seal"), ("audit", "mac"))


def upgrade() -> None:
    for table, column in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, sa.String(80), nullable=False, server_default=""))


def downgrade() -> None:
    for table, column in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)

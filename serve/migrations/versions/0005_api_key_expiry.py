"""API keys may expire and be revoked.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as t:
        t.add_column(sa.Column("expires_at", sa.Float))
        t.add_column(sa.Column("revoked_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as t:
        t.drop_column("revoked_at")
        t.drop_column("expires_at")

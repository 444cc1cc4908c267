"""Idempotency keys are unique per client, not across clients.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
# 0001 left its unique constraint unnamed; PostgreSQL calls it this, and so does the batch copy on SQLite
NAMES = {"uq": "%(table_name)s_%(column_0_name)s_key"}


def upgrade() -> None:
    with op.batch_alter_table("uploads", naming_convention=NAMES) as t:
        t.drop_constraint("uploads_idempotency_key_key", type_="unique")
        t.create_unique_constraint("uploads_client_idempotency_key_key", ["client", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("uploads", naming_convention=NAMES) as t:
        t.drop_constraint("uploads_client_idempotency_key_key", type_="unique")
        t.create_unique_constraint("uploads_idempotency_key_key", ["idempotency_key"])

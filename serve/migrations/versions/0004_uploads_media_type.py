"""`uploads.kind` becomes `media_type`, as the API calls it (`kind` is left to review items).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("uploads") as t:  # SQLite: the table is copied, its constraints and indexes with it
        t.alter_column("kind", new_column_name="media_type")


def downgrade() -> None:
    with op.batch_alter_table("uploads") as t:
        t.alter_column("media_type", new_column_name="kind")

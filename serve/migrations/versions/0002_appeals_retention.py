"""Appeals (an item may appeal a decided one) and erasure marks for retention.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("review_items") as t:
        t.add_column(sa.Column("appeal_of", sa.Integer))  # the decided item an appeal contests
    with op.batch_alter_table("uploads") as t:
        t.add_column(sa.Column("bytes_erased_at", sa.Float))
        t.add_column(sa.Column("crops_erased_at", sa.Float))
        t.add_column(sa.Column("verdict_erased_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as t:
        for c in ("verdict_erased_at", "crops_erased_at", "bytes_erased_at"):
            t.drop_column(c)
    with op.batch_alter_table("review_items") as t:
        t.drop_column("appeal_of")

"""The model registry: every bundle used or proposed, with its state; shadow models' scores.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("parent", sa.String(32)),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "shadow_scores",
        sa.Column("upload_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("decision", sa.String(16)),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shadow_scores")
    op.drop_table("models")

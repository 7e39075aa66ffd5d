"""Baseline weights: the digest of the weights a seeded baseline was predicted with, and the
earlier baseline it replaces.

Existing rows keep NULL: their weights were never recorded, so the next seeding predicts
them again and keeps the old entry, recording the digest, if the predictions are the same.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("weights_sha256", sa.String(64), nullable=True))
    op.add_column("submissions", sa.Column("supersedes", sa.Integer(), nullable=True))


def downgrade() -> None:
    # DROP COLUMN, not a batch copy (see 0005: a copy would cascade-delete the results)
    op.drop_column("submissions", "supersedes")
    op.drop_column("submissions", "weights_sha256")

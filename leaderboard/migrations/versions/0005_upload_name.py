"""Upload names: the file name a submission's archive was uploaded as.

Existing rows keep NULL (the name was never stored; they show "the archive").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("upload_name", sa.String(200), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not a batch copy: copying would drop and
    # recreate `submissions`, and with foreign keys on that deletes its results (cascade).
    op.drop_column("submissions", "upload_name")

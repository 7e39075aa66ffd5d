"""Identities: opaque public submission ids, normal forms of submitter names, the content
hash of the predictions, and per-submitter keys.

Existing rows get a fresh public id and the normal forms of their submitter name
(`leaderboard.identity`); their content hash stays empty (unknown until rescored), so
duplicates of them are found by the archive hash only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from leaderboard.identity import name_key, quota_key

    op.add_column("submissions", sa.Column("public_id", sa.String(24), nullable=True))
    op.add_column("submissions", sa.Column("submitter_key", sa.String(400), nullable=True))
    op.add_column("submissions", sa.Column("quota_key", sa.String(400), nullable=True))
    op.add_column("submissions", sa.Column("content_sha256", sa.String(64), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, submitter FROM submissions")).all()
    for sid, submitter in rows:
        connection.execute(
            sa.text(
                "UPDATE submissions SET public_id = :p, submitter_key = :s, quota_key = :q "
                "WHERE id = :i"
            ),
            {
                "p": "s" + secrets.token_hex(8),
                "s": name_key(submitter or ""),
                "q": quota_key(submitter or ""),
                "i": sid,
            },
        )
    op.create_index("ix_submissions_public_id", "submissions", ["public_id"], unique=True)
    op.create_index("ix_submissions_submitter_key", "submissions", ["submitter_key"])
    op.create_index("ix_submissions_quota_key", "submissions", ["quota_key"])
    op.create_index("ix_submissions_content_sha256", "submissions", ["content_sha256"])
    op.create_table(
        "submitter_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(400), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_submitter_keys_name_key", "submitter_keys", ["name_key"], unique=True)


def downgrade() -> None:
    op.drop_table("submitter_keys")
    for name in ("content_sha256", "quota_key", "submitter_key", "public_id"):
        op.drop_index(f"ix_submissions_{name}", "submissions")
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), not a batch copy: copying would drop and
    # recreate `submissions`, and with foreign keys on that deletes its results (cascade).
    for name in ("content_sha256", "quota_key", "submitter_key", "public_id"):
        op.drop_column("submissions", name)

"""Initial schema: submissions, per-class results, per-item scores.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("authors", sa.Text(), nullable=False),
        sa.Column("paper_url", sa.String(500), nullable=False),
        sa.Column("code_url", sa.String(500), nullable=False),
        sa.Column("representation", sa.String(20), nullable=False),
        sa.Column("frame", sa.String(20), nullable=False),
        sa.Column("training_data", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(300), nullable=False),
        sa.Column("submitter", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("archive_sha256", sa.String(64), nullable=False),
        sa.Column("archive_size", sa.Integer(), nullable=False),
        sa.Column("archive_ext", sa.String(16), nullable=False),
        sa.Column("protocol_id", sa.String(64), nullable=False),
        sa.Column("benchmark_id", sa.String(128), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("baseline", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("score_headline", sa.Float(), nullable=True),
        sa.Column("score_iou", sa.Float(), nullable=True),
        sa.Column("score_chamfer_l1", sa.Float(), nullable=True),
        sa.Column("coverage", sa.JSON(), nullable=False),
        sa.Column("overall", sa.JSON(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
    )
    op.create_index("ix_submissions_submitter", "submissions", ["submitter"])
    op.create_index("ix_submissions_status", "submissions", ["status"])
    op.create_index("ix_submissions_archive_sha256", "submissions", ["archive_sha256"])
    op.create_index("ix_submissions_status_id", "submissions", ["status", "id"])
    op.create_table(
        "class_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "submission_id",
            sa.Integer(),
            sa.ForeignKey("submissions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("class_name", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("median", sa.Float(), nullable=True),
        sa.UniqueConstraint("submission_id", "class_name", "metric"),
    )
    op.create_index("ix_class_results_submission_id", "class_results", ["submission_id"])
    op.create_table(
        "item_scores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "submission_id",
            sa.Integer(),
            sa.ForeignKey("submissions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("fscore", sa.Float(), nullable=True),
        sa.Column("precision", sa.Float(), nullable=True),
        sa.Column("recall", sa.Float(), nullable=True),
        sa.Column("iou", sa.Float(), nullable=True),
        sa.Column("iou_128", sa.Float(), nullable=True),
        sa.Column("chamfer_l1", sa.Float(), nullable=True),
        sa.Column("chamfer_l2", sa.Float(), nullable=True),
        sa.Column("normal_consistency", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.UniqueConstraint("submission_id", "item_id"),
    )
    op.create_index("ix_item_scores_submission_id", "item_scores", ["submission_id"])


def downgrade() -> None:
    op.drop_table("item_scores")
    op.drop_table("class_results")
    op.drop_table("submissions")

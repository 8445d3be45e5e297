"""Feedback on served requests (``POST /api/feedback``): a score per request, with the
request's embedding so that it becomes an outcome for ``learned`` routing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(40)),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("route", sa.String(200)),
        sa.Column("deployment", sa.String(300)),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("label", sa.String(100)),
        sa.Column("embedding", sa.JSON),
    )
    op.create_index("ix_request_feedback_ts", "request_feedback", ["ts"])
    op.create_index("ix_request_feedback_request_id", "request_feedback", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_request_feedback_request_id", "request_feedback")
    op.drop_index("ix_request_feedback_ts", "request_feedback")
    op.drop_table("request_feedback")

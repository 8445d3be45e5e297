"""Stored responses of ``POST /v1/responses`` (``store``), for ``previous_response_id`` and
``GET`` / ``DELETE /v1/responses/{id}``: one row per response, its object and input items as
JSON text.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(40)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("previous_response_id", sa.String(64)),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("input_items", sa.Text, nullable=False),
    )
    op.create_index("ix_responses_key_id", "responses", ["key_id"])
    op.create_index("ix_responses_created_at", "responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_created_at", "responses")
    op.drop_index("ix_responses_key_id", "responses")
    op.drop_table("responses")

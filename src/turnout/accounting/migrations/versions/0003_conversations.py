"""Conversations of ``turnout chat``: one row per conversation, one per message.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("system", sa.Text),
        sa.Column("title", sa.String(200), nullable=False),
    )
    op.create_index("ix_conversations_updated_at", "conversations", ["updated_at"])
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("conversation_id", sa.String(40), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("deployment", sa.String(300)),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("cost", sa.Float),
        sa.Column("ttft", sa.Float),
        sa.Column("latency", sa.Float),
    )
    op.create_index(
        "ix_conversation_messages_conversation_id", "conversation_messages", ["conversation_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_messages_conversation_id", "conversation_messages")
    op.drop_table("conversation_messages")
    op.drop_index("ix_conversations_updated_at", "conversations")
    op.drop_table("conversations")

"""Request log, gateway keys and per-key spend.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
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
        "request_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("key_id", sa.String(40)),
        sa.Column("route", sa.String(200)),
        sa.Column("strategy", sa.String(40)),
        sa.Column("provider", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("deployment", sa.String(300)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error", sa.String(80)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("ttft", sa.Float),
        sa.Column("latency", sa.Float),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float),
    )
    op.create_index("ix_request_log_ts", "request_log", ["ts"])
    op.create_index("ix_request_log_key_id", "request_log", ["key_id"])
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("budget_daily", sa.Float),
        sa.Column("budget_monthly", sa.Float),
        sa.Column("budget_total", sa.Float),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("allowed_models", sa.JSON),
    )
    op.create_index("ix_gateway_keys_updated_at", "gateway_keys", ["updated_at"])
    op.create_table(
        "key_spend",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("spend", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("key_spend")
    op.drop_index("ix_gateway_keys_updated_at", "gateway_keys")
    op.drop_table("gateway_keys")
    op.drop_index("ix_request_log_key_id", "request_log")
    op.drop_index("ix_request_log_ts", "request_log")
    op.drop_table("request_log")

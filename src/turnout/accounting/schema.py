"""The database tables, as SQLAlchemy Core metadata used by queries (the migrations in
``migrations/versions`` create them; a test checks the two agree).

Times are UNIX seconds in a double column: portable across SQLite and PostgreSQL, cheap to
compare and to window over.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["tables"]


@cache
def tables() -> dict[str, Any]:
    """``{"request_log": Table, "request_rollup": Table, "gateway_keys": Table,
    "key_spend": Table}``, built on first use so that importing Turnout does not import
    SQLAlchemy."""
    from sqlalchemy import (
        JSON,
        BigInteger,
        Boolean,
        Column,
        Float,
        Integer,
        MetaData,
        SmallInteger,
        String,
        Table,
        Text,
    )

    meta = MetaData()
    out: dict[str, Any] = {"metadata": meta}
    out["request_log"] = Table(
        "request_log",
        meta,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("ts", Float, nullable=False, index=True),
        Column("request_id", String(64)),
        Column("key_id", String(40), index=True),
        Column("route", String(200)),
        Column("strategy", String(40)),
        Column("provider", String(100)),
        Column("model", String(200)),
        Column("deployment", String(300)),
        Column("stream", Boolean, nullable=False, default=False),
        Column("status", Integer, nullable=False),
        Column("error", String(80)),
        Column("attempts", Integer, nullable=False, default=1),
        Column("ttft", Float),
        Column("latency", Float),
        Column("input_tokens", Integer, nullable=False, default=0),
        Column("output_tokens", Integer, nullable=False, default=0),
        Column("cached_tokens", Integer, nullable=False, default=0),
        Column("cost", Float),
        Column("attempt", Integer),
        Column("error_message", Text),
        Column("prompt", Text),
        Column("answer", Text),
    )
    out["gateway_keys"] = Table(
        "gateway_keys",
        meta,
        Column("id", String(40), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("secret_hash", String(64), nullable=False, unique=True),
        Column("last4", String(4), nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False, index=True),
        Column("revoked_at", Float),
        Column("budget_daily", Float),
        Column("budget_monthly", Float),
        Column("budget_total", Float),
        Column("rpm", Integer),
        Column("tpm", Integer),
        Column("allowed_models", JSON),
    )
    out["request_rollup"] = Table(
        "request_rollup",
        meta,
        Column("slot", Integer, primary_key=True, autoincrement=False),
        Column("route", String(200), primary_key=True),
        Column("provider", String(100), primary_key=True),
        Column("model", String(200), primary_key=True),
        Column("requests", Integer, nullable=False),
        Column("errors", Integer, nullable=False),
        Column("ttft_sum", Float, nullable=False),
        Column("ttft_n", Integer, nullable=False),
        Column("spend", Float, nullable=False),
    )

    def stats_columns() -> list[Any]:
        """Per (slot, provider, model, error class): calls, tokens, generation time, spend."""
        return [
            Column("slot", Integer, primary_key=True, autoincrement=False),
            Column("provider", String(100), primary_key=True),
            Column("model", String(200), primary_key=True),
            Column("error", String(80), primary_key=True),
            Column("requests", Integer, nullable=False),
            Column("output_tokens", BigInteger, nullable=False),
            Column("ok_tokens", BigInteger, nullable=False),
            Column("gen_time", Float, nullable=False),
            Column("spend", Float, nullable=False),
            Column("spend_n", Integer, nullable=False),
        ]

    def histogram_columns() -> list[Any]:
        """Per (slot, provider, model, metric, bin): how many values fell in the bin."""
        return [
            Column("slot", Integer, primary_key=True, autoincrement=False),
            Column("provider", String(100), primary_key=True),
            Column("model", String(200), primary_key=True),
            Column("metric", SmallInteger, primary_key=True, autoincrement=False),
            Column("bin", SmallInteger, primary_key=True, autoincrement=False),
            Column("n", Integer, nullable=False),
        ]

    def width() -> Any:
        return Column("width", Integer, primary_key=True, autoincrement=False)

    # Five-minute slots, and the same sums per hour and per day (``width`` says which).
    out["request_stats"] = Table("request_stats", meta, *stats_columns())
    out["request_histogram"] = Table("request_histogram", meta, *histogram_columns())
    out["request_stats_coarse"] = Table("request_stats_coarse", meta, width(), *stats_columns())
    out["request_histogram_coarse"] = Table(
        "request_histogram_coarse", meta, width(), *histogram_columns()
    )
    out["conversations"] = Table(
        "conversations",
        meta,
        Column("id", String(40), primary_key=True),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False, index=True),
        Column("model", String(300), nullable=False),
        Column("system", Text),
        Column("title", String(200), nullable=False),
    )
    out["conversation_messages"] = Table(
        "conversation_messages",
        meta,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("conversation_id", String(40), nullable=False, index=True),
        Column("ts", Float, nullable=False),
        Column("role", String(20), nullable=False),
        Column("content", Text, nullable=False),
        Column("deployment", String(300)),
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("cost", Float),
        Column("ttft", Float),
        Column("latency", Float),
    )
    out["responses"] = Table(
        "responses",
        meta,
        Column("id", String(64), primary_key=True),
        Column("key_id", String(40), index=True),
        Column("created_at", Float, nullable=False, index=True),
        Column("model", String(300), nullable=False),
        Column("status", String(20), nullable=False),
        Column("previous_response_id", String(64)),
        Column("response", Text, nullable=False),
        Column("input_items", Text, nullable=False),
    )
    out["key_spend"] = Table(
        "key_spend",
        meta,
        Column("key_id", String(40), primary_key=True),
        Column("period", String(16), primary_key=True),
        Column("spend", Float, nullable=False, default=0.0),
    )
    out["request_feedback"] = Table(
        "request_feedback",
        meta,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("request_id", String(128), nullable=False, index=True),
        Column("key_id", String(40)),
        Column("ts", Float, nullable=False, index=True),
        Column("route", String(200)),
        Column("deployment", String(300)),
        Column("score", Float, nullable=False),
        Column("comment", Text),
        Column("label", String(100)),
        Column("embedding", JSON),
    )
    return out

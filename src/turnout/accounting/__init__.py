"""Accounting: the request log, gateway keys with limits and budgets, budget alerts, and the
state replicas share through Redis."""

from .db import Database, DatabaseUnavailable, database_url
from .keys import GatewayKey, KeySpec
from .records import UsageRecord, attempt_records, judge_records, record_error, record_result
from .request_log import RequestLog
from .service import Accounting

__all__ = [
    "Accounting",
    "Database",
    "DatabaseUnavailable",
    "GatewayKey",
    "KeySpec",
    "RequestLog",
    "UsageRecord",
    "attempt_records",
    "database_url",
    "judge_records",
    "record_error",
    "record_result",
]

"""What redaction costs: one call of the gateway's ``Redactor`` on a typical upstream error
message and on an access-log line, and one log record through ``RedactingFilter``, against
the same record unfiltered. Redaction runs only on error paths and log records; a successful
request pays for it only when the access log is on (one record).

    python -m bench.redaction [-n 100000]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from turnout.logs import RedactingFilter
from turnout.redaction import Redactor

# A config's worth of secrets: a dozen provider keys, the master key, a URL password.
SECRETS = [f"sk-provider-{i:02d}-" + "x7Qk2mPz9LwB4vTn" * 3 for i in range(12)] + [
    "sk-master-0123456789abcdef0123456789abcdef",
    "db-password-0123456789",
]
ERROR = (
    "Rate limit reached for gpt-4o-mini in organization org-abc123 on tokens per min (TPM): "
    "Limit 200000, Used 199613, Requested 1024. Please try again in 187ms. Visit "
    "https://platform.openai.com/account/rate-limits to learn more."
)
ACCESS = ("127.0.0.1:53422", "POST", "/v1/chat/completions", "1.1", 200)


def _per_call(fn: Callable[[], object], n: int) -> float:
    """Microseconds per call, best of five runs of ``n`` calls."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def _record() -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', ACCESS, None
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args(argv)
    redact = Redactor(SECRETS)
    flt = RedactingFilter(redact)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"{redact.count} known secrets, {args.n} calls per figure (best of 5)")
    rows = [
        ("redact an upstream error message (196 chars)", lambda: redact(ERROR)),
        ("redact an access-log line", lambda: redact('127.0.0.1:53422 - "POST /v1/chat"')),
        ("format an access-log record, no filter", lambda: fmt.format(_record())),
        (
            "format an access-log record, filtered",
            lambda: fmt.format(r) if flt.filter(r := _record()) else None,
        ),
    ]
    for name, fn in rows:
        print(f"{name:<48} {_per_call(fn, args.n):8.2f} us")


if __name__ == "__main__":
    main()

"""The rolling-restart benchmark, small: three real ``turnout serve`` replicas behind HAProxy
sharing PostgreSQL and Redis, mixed stream and non-stream load, each replica restarted in
turn with SIGTERM. No client sees a failure and every answered request is in the request log.
(``python -m bench.rolling_restart`` runs it for 60 s and prints the figures.)"""

from __future__ import annotations

import shutil

import pytest
from bench.rolling_restart import report, run


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing (.ci/run installs it)")
def test_rolling_restart_loses_nothing() -> None:
    result = run(seconds=12, clients=4)
    summary = report(result)
    assert len(result.outcomes) > 20, summary
    assert sum(o.during_roll for o in result.outcomes) > 10, summary
    assert result.failures == [], summary
    assert result.lost == [], summary
    assert len(result.restarts) == 3

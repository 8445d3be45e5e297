"""The soak and fault benchmark (bench/soak.py), run short as a functional check: both ingresses,
streamed and not, answer whole; the RSS series is printed; an upstream killed and restarted
under load costs the clients nothing; slowloris connections are let go. No figure here is
timed or compared to a goal."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from bench import soak


def test_check_tells_a_whole_answer_from_a_broken_one() -> None:
    assert soak.check("chat", 502, b"{}") == "HTTP 502"
    assert soak.check("chat-stream", 200, b'data: {"error": {}}\n\ndata: [DONE]\n\n')
    assert soak.check("chat-stream", 200, b'data: {"choices": []}\n\n')  # no [DONE]
    assert soak.check("messages-stream", 200, b"event: message_start\ndata: {}\n\n")
    assert soak.check("messages-stream", 200, b"event: message_stop\ndata: {}\n\n") is None


def test_a_short_soak_and_fault_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = ["--requests", "400", "--sample-every", "100", "--warmup", "100"]
    argv += ["--fault-requests", "300", "--concurrency", "4", "--json", str(out)]
    argv += ["--slow", "40", "--header-timeout", "0.5"]
    code = soak.main(argv)
    printed = capsys.readouterr().out
    results = orjson.loads(out.read_bytes())
    s, f = results["soak"], results["fault"]
    assert s["kinds"] == dict.fromkeys(soak.KINDS, 100)
    assert s["failures"] == {}
    assert [n for n, _ in s["rss_series_mb"]] == [0, 100, 200, 300, 400]
    assert all(mb > 10 for _, mb in s["rss_series_mb"])
    assert "RSS (MB) by requests answered" in printed and "load average" in printed
    assert [e.split(" after ")[0].split(" on port")[0] for e in f["events"]] == [
        "killed mock A",
        "restarting mock A",
        "mock A restarted",
    ]
    assert f["client_visible_failures"] == 0, f["failures"]
    # Both deployments served, and the killed one's failures were failed over, not returned.
    both, a_down = f["served_by"]["both up"], f["served_by"]["A killed"]
    assert both.get("mocka ok", 0) > 0 and both.get("mockb ok", 0) > 0
    assert a_down.get("mockb ok", 0) > a_down.get("mocka ok", 0)
    # Slowloris: every slow connection let go at the header deadline, clients served meanwhile.
    w = results["slowloris"]
    assert w["still_open_after_wait"] == 0 and w["answered_503_at_once"] == 0
    assert w["connected_clients_meanwhile"]["failures"] == {}
    assert w["new_client_meanwhile"] == "HTTP 200"
    assert w["metrics"]["turnout_header_timeouts_total"] >= 40
    assert code == 0

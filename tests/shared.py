"""The data beside the checkout in ``../shared``: the vendor API specs (``specs/``, the oracles
that fakes and adapters are checked against) and the routing outcome data (``routing-data/``).

They are not part of the repository, so a user's fresh clone has no ``../shared``. Every test
reaches them through ``shared_path``, the one place that decides what happens when a file is
absent: the test skips with a reason saying what is missing and where it comes from
(docs/testing.md lists the sources). With ``TURNOUT_REQUIRE_SHARED=1`` (set by ``.ci/run``)
a missing file fails the test instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

_WHAT = {
    "specs": "the vendor API specs",
    "routing-data": "the routing outcome data",
}


def shared_path(*parts: str) -> Path:
    """``../shared/<parts>``; the calling test (or fixture, or module) skips when it is absent."""
    path = SHARED.joinpath(*parts)
    if path.exists():
        return path
    what = _WHAT.get(parts[0], "data") if parts else "data"
    reason = (
        f"needs ../shared/{'/'.join(parts)} ({what}, kept beside the repository checkout, "
        "not in it; sources in docs/testing.md)"
    )
    if os.environ.get("TURNOUT_REQUIRE_SHARED") == "1":
        pytest.fail(f"TURNOUT_REQUIRE_SHARED=1 but {SHARED} lacks it: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def spec_path(name: str) -> Path:
    """A file of ``../shared/specs``."""
    return shared_path("specs", name)

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from turnout.config import Config
from turnout.gateway import Gateway

from ..conftest import HAS_LOCAL
from ..fakes.script import FakeUpstream
from ..fakes.servers import AiohttpThread
from .vendors import VENDORS, Vendor


@pytest.fixture(scope="session", params=VENDORS, ids=str)
def vendor_server(request: pytest.FixtureRequest) -> Iterator[tuple[Vendor, Any, str]]:
    vendor: Vendor = request.param
    if vendor.make_fake is None:
        if vendor.name == "local" and not HAS_LOCAL:
            pytest.skip("needs the 'local' extra")
        yield vendor, None, ""
        return
    fake = vendor.make_fake()
    server = AiohttpThread(fake.app).start()
    yield vendor, fake, server.url
    server.stop()


class Case:
    """One vendor under test: its fake (reset) and a gateway with one deployment on it."""

    def __init__(self, vendor: Vendor, fake: FakeUpstream | None, url: str) -> None:
        self.vendor = vendor
        self.fake = fake
        self.model = f"p:{vendor.model}"
        self.provider = vendor.provider(url)
        self.gateway = self.gateway_with()

    def gateway_with(self, **overrides: Any) -> Gateway:
        data: dict[str, Any] = {
            "providers": {"p": self.provider},
            "retry": {"retries": 0},
            # Fakes answer at once; the embedded model loads and generates on a busy CPU.
            "timeouts": {"connect": 2, "first_token": 2, "total": 3}
            if self.fake is not None
            else {"connect": 60, "first_token": 60, "total": 120},
            "server": {"preload_local": False},
        }
        return Gateway(Config.model_validate({**data, **overrides}))

    def skip_unless_applies(self, case: str) -> None:
        reason = self.vendor.not_applicable.get(case)
        if reason:
            pytest.skip(f"{self.vendor.name}: {reason}")

    @property
    def scripted(self) -> FakeUpstream:
        assert self.fake is not None
        return self.fake

    def last_body(self) -> dict[str, Any]:
        return self.scripted.calls[-1]["body"]

    def last_raw(self) -> bytes:
        return bytes(self.scripted.calls[-1]["raw"])


@pytest.fixture
async def case(vendor_server: tuple[Vendor, Any, str]) -> AsyncIterator[Case]:
    vendor, fake, url = vendor_server
    if fake is not None:
        fake.reset()
    c = Case(vendor, fake, url)
    yield c
    await c.gateway.aclose()

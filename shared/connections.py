"""Redis connection pools as both sides of the queue open them: sized, and waiting rather than growing."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool


def blocking_pool(url: str, max_connections: int, *, timeout: float = 5.0) -> BlockingConnectionPool:
    """A pool that waits up to ``timeout`` for a free connection rather than opening one more."""
    return BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )

"""Redis connection pools as both sides of the queue open them: sized, and waiting rather than growing."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool

#: How long a command may wait for a free pooled connection. Waiting means the process is busy, not that
#: Redis is down (an unreachable Redis fails at connect, after ``socket_connect_timeout``): a burst of a
#: thousand requests on a starved machine must queue for its turn, not fail.
POOL_WAIT_SECONDS = 30.0


def blocking_pool(
    url: str, max_connections: int, *, timeout: float = POOL_WAIT_SECONDS
) -> BlockingConnectionPool:
    """A pool that waits up to ``timeout`` for a free connection rather than opening one more."""
    return BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=5,
        socket_keepalive=True,
    )

"""The one place where the producer turns a Redis failure into ``BackendUnavailableError``."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from redis.exceptions import RedisError

from llmrelay.shared.errors import BackendUnavailableError

T = TypeVar("T")

#: What a lost or refusing Redis raises: redis-py's errors, and the socket's own (TimeoutError included).
REDIS_FAILURES = (RedisError, OSError)


@contextmanager
def redis_failures(what: str = "Redis failed") -> Iterator[None]:
    """Raise ``BackendUnavailableError("<what>: <exception class>")`` for a Redis failure in the block.

    Only the class name is kept: redis-py's messages may carry the server's address or a password.
    """
    try:
        yield
    except REDIS_FAILURES as exc:
        raise BackendUnavailableError(f"{what}: {type(exc).__name__}") from None


async def backend_call(awaitable: Awaitable[T]) -> T:
    """Await one Redis call, its failure translated."""
    with redis_failures():
        return await awaitable


__all__ = ["REDIS_FAILURES", "backend_call", "redis_failures"]

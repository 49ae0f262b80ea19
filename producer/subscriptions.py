"""One pub/sub connection per process, multiplexed over every in-flight request's event channel."""

from __future__ import annotations

import asyncio
import contextlib
import random
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = structlog.get_logger("llmrelay.producer")

#: Put on every subscriber's queue after the connection was lost and re-established: messages may have
#: been missed, so the subscriber reads its request's event log to catch up.
RESYNC = object()
#: How long leaving a channel may take on a live connection (a stalled one must not hold up the caller).
UNSUBSCRIBE_TIMEOUT = 2.0


class Subscriptions:
    """Subscribes channels on one shared connection and hands each its own queue.

    ``subscribe`` returns only after Redis confirmed the subscription, because pub/sub has no replay: a
    message published before the confirmation would be lost. The caller enqueues its job after that.
    """

    def __init__(self, redis: Redis, home_channel: str) -> None:
        self._redis = redis
        self._home = home_channel.encode()
        self._pubsub: PubSub | None = None
        self._queues: dict[bytes, asyncio.Queue[Any]] = {}
        self._confirms: dict[bytes, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        #: Set while the connection is lost (the complement of ``_ready``, which asyncio cannot wait for).
        self._lost = asyncio.Event()
        self._closed = False

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._read_loop(), name="llmrelay-pubsub")

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        for futures in self._confirms.values():
            for fut in futures:
                if not fut.done():
                    fut.set_exception(RedisConnectionError("subscriptions closed"))

    async def _connect(self) -> None:
        pubsub = self._redis.pubsub()
        channels = [self._home, *self._queues]
        await pubsub.subscribe(*channels)
        self._pubsub = pubsub
        self._lost.clear()
        self._ready.set()

    @contextlib.asynccontextmanager
    async def subscription(
        self, channel: str, timeout: float = 5.0, confirm_timeout: float = 30.0
    ) -> AsyncIterator[asyncio.Queue[Any]]:
        """A queue of the channel's messages, live from the moment this yields.

        ``timeout`` bounds the wait for a connection (Redis unreachable: fail fast); ``confirm_timeout``
        the wait for Redis's confirmation on a live one, which a burst of subscriptions on a busy machine
        can delay by seconds without anything being wrong (a lost connection is noticed by the reader,
        which reconnects and resubscribes, confirming this one too).
        """
        key = channel.encode()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues[key] = queue
        self._confirms.setdefault(key, []).append(fut)
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
            assert self._pubsub is not None
            await self._pubsub.subscribe(key)
            await self._confirmed(fut, timeout, confirm_timeout)
            yield queue
        finally:
            self._queues.pop(key, None)
            self._confirms.pop(key, None)
            # Only on a live connection: a lost one is resubscribed by the reader to what is still in
            # ``_queues``, which no longer holds this channel, and an unsubscribe sent on it would wait
            # for a Redis that is not there.
            if self._pubsub is not None and not self._closed and self._ready.is_set():
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(self._pubsub.unsubscribe(key), UNSUBSCRIBE_TIMEOUT)

    async def _confirmed(self, fut: asyncio.Future[None], timeout: float, confirm_timeout: float) -> None:
        """Wait for Redis's confirmation. Should the connection be lost meanwhile (a subscribe sent just
        as Redis went away), the reader resubscribes on reconnecting, which confirms this one: that
        reconnection gets ``timeout``, as the first connection did, so that a Redis that is gone fails
        the caller in seconds instead of after ``confirm_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + confirm_timeout
        while not fut.done():
            lost: asyncio.Future[Any] = asyncio.ensure_future(self._lost.wait())
            waiting: set[asyncio.Future[Any]] = {fut, lost}
            try:
                await asyncio.wait(waiting, timeout=deadline - loop.time(), return_when=FIRST_COMPLETED)
            finally:
                lost.cancel()
            if fut.done():
                break
            if not self._lost.is_set():
                raise TimeoutError("Redis did not confirm the subscription")
            await asyncio.wait_for(self._ready.wait(), timeout)
        fut.result()

    async def _read_loop(self) -> None:
        delay = 0.05
        while not self._closed:
            pubsub = self._pubsub
            try:
                assert pubsub is not None
                msg = await pubsub.get_message(timeout=None)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._ready.clear()
                self._lost.set()
                log.warning("pubsub connection lost; reconnecting", error=type(exc).__name__)
                while not self._closed:
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 2.0)
                    try:
                        if pubsub is not None:
                            with contextlib.suppress(RedisError, OSError):
                                await pubsub.aclose()  # type: ignore[no-untyped-call]
                        await self._connect()
                        break
                    except (RedisError, OSError):
                        continue
                delay = 0.05
                for queue in self._queues.values():
                    queue.put_nowait(RESYNC)
                continue
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "message":
                target = self._queues.get(msg["channel"])
                if target is not None:
                    target.put_nowait(msg["data"])
            elif kind == "subscribe":
                for fut in self._confirms.pop(msg["channel"], ()):
                    if not fut.done():
                        fut.set_result(None)

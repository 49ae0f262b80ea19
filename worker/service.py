"""The worker process: consumer loops per provider, leases, reclaim, cancellation, heartbeat, shutdown.

Lifecycle: ``start`` opens Redis, creates the consumer groups and starts one consumer loop per provider;
``stop`` stops reading, lets in-flight jobs finish within the grace period, then cancels the rest and
leaves them unacknowledged, marked idle, so that another worker reclaims them at once.

What to read next is the pure lane policy of ``lanes``; running one job is ``runner``'s. The rest stays
in one class, a little over 400 lines, because every part of it reads and writes the same table of
jobs in flight (reading, launching, leases, reclaim, hand-back, cancellation, the heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llmrelay.shared import keys
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.connections import blocking_pool
from llmrelay.shared.governance import Governance
from llmrelay.shared.jobs import read_entry
from llmrelay.shared.metrics import WorkerMetrics
from llmrelay.shared.payloads import WorkerHeartbeat, encode_heartbeat, encode_metrics_snapshot
from llmrelay.shared.settings import Settings
from llmrelay.worker import lanes
from llmrelay.worker.housekeeping import close_housekeeper, delete_consumer_if_idle, housekeeper
from llmrelay.worker.leases import LeaseKeeper
from llmrelay.worker.providers import build_adapter
from llmrelay.worker.providers.base import ProviderAdapter
from llmrelay.worker.ratelimit import RateLimiter
from llmrelay.worker.runner import CancelReason, JobRunner, Running
from llmrelay.worker.served_models import check_served_models

log = structlog.get_logger("llmrelay.worker")

HEARTBEAT_SECONDS = 2.0


class Worker:
    """One worker process: runs jobs of the given providers, ``concurrency`` at a time per provider."""

    def __init__(
        self,
        settings: Settings,
        *,
        providers: Iterable[str] = PROVIDERS,
        concurrency: int | None = None,
        registry: CollectorRegistry | None = None,
        adapters: dict[str, ProviderAdapter] | None = None,
    ) -> None:
        if concurrency is not None and concurrency != settings.worker_concurrency:
            # Adapters size their connection pools from the settings: they must see the real figure.
            settings = settings.model_copy(update={"worker_concurrency": concurrency})
        self.settings = settings
        self.providers = list(providers)
        unknown = set(self.providers) - set(PROVIDERS)
        if unknown:
            raise ValueError(f"unknown providers: {sorted(unknown)}")
        self.concurrency = concurrency or settings.worker_concurrency
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.governance = Governance.from_settings(settings)
        self.registry = registry or CollectorRegistry()
        self.metrics = WorkerMetrics.create(self.registry)
        self._adapters: dict[str, ProviderAdapter] = dict(adapters or {})
        self._running: dict[str, dict[str, Running]] = {p: {} for p in self.providers}
        self._slots: dict[str, asyncio.Event] = {p: asyncio.Event() for p in self.providers}
        self._batch_inflight: dict[str, int] = dict.fromkeys(self.providers, 0)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._redis: Redis | None = None
        self._blocking: Redis | None = None
        self._leases = LeaseKeeper(
            settings.redis_url, self.worker_id, settings.lease_seconds, settings.stall_seconds
        )
        self.started = asyncio.Event()
        self.jobs_done = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        pool = blocking_pool(self.settings.redis_url, self.settings.redis_pool_size)
        self._redis = Redis(connection_pool=pool)
        # Blocking reads hold their connection: one per provider loop plus one for control messages.
        self._blocking = Redis.from_url(
            self.settings.redis_url, max_connections=len(self.providers) + 4, socket_connect_timeout=5
        )
        await self._until_redis()
        for provider in self.providers:
            for lane in keys.LANES:
                await self._ensure_group(keys.work_stream(provider, lane))
        self.limiter = RateLimiter(self._redis, self.settings, self.metrics)
        self.runner = JobRunner(
            self._redis,
            self.settings,
            self.governance,
            self._adapter,
            self.limiter,
            self.metrics,
            self.worker_id,
        )
        for provider in self.providers:
            self._adapter(provider)  # SDK clients are built before the first job, not by it
        await self._heartbeat_once()
        self._leases.start()
        for provider in self.providers:
            self._tasks.append(asyncio.create_task(self._consume(provider), name=f"consume-{provider}"))
        self._tasks.append(asyncio.create_task(self._maintain(), name="maintain"))
        self._tasks.append(asyncio.create_task(self._pulse(), name="pulse"))
        self._tasks.append(asyncio.create_task(self._control(), name="control"))
        served = check_served_models(self.settings, self.governance, self._adapter, self.providers)
        self._tasks.append(asyncio.create_task(served, name="served-models"))
        self._housekeeper = housekeeper(self.settings, self.providers, self.governance)
        self._tasks.append(asyncio.create_task(self._housekeeper.async_run(), name="housekeeping"))
        self.started.set()
        log.info(
            "worker started", worker_id=self.worker_id, providers=self.providers, concurrency=self.concurrency
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking jobs, finish in-flight ones within ``grace`` seconds, hand the rest back."""
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stopping.set()
        readers = [t for t in self._tasks if t.get_name().startswith("consume-")]
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await self._release_unstarted()
        inflight = [r.task for per in self._running.values() for r in per.values() if r.task is not None]
        if inflight:
            log.info("draining in-flight jobs", count=len(inflight), grace=grace)
            _done, pending = await asyncio.wait(inflight, timeout=grace)
            if pending:
                # Stopped first: a renewal after the hand-back would undo it.
                await asyncio.to_thread(self._leases.stop)
                handed_back = await self._hand_back()
                log.warning("grace period over; jobs handed back", count=handed_back)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._leases.stop)
        await close_housekeeper(self._housekeeper)
        await self._deregister()
        for adapter in self._adapters.values():
            with contextlib.suppress(Exception):
                await adapter.aclose()
        for client in (self._redis, self._blocking):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
        log.info("worker stopped", worker_id=self.worker_id, jobs_done=self.jobs_done)

    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "the worker is not started"
        return self._redis

    def _adapter(self, provider: str) -> ProviderAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = build_adapter(provider, self.settings)
            self._adapters[provider] = adapter
        return adapter

    async def _until_redis(self) -> None:
        delay = 0.1
        while True:
            try:
                await self.redis.ping()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                log.warning("Redis not reachable; retrying", delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- consuming ------------------------------------------------------------------------------------

    def _batch_room(self, provider: str) -> int:
        """Slots the batch lane may still take within its share (``<= 0``: none)."""
        cap = max(self.settings.batch_min_slots, int(self.concurrency * self.settings.batch_max_share))
        return cap - self._batch_inflight[provider]

    async def _consume(self, provider: str) -> None:
        """Read what the lane policy says, launch what arrives, until the worker stops."""
        step = lanes.Step.POLL
        delay = 0.1
        while not self._stopping.is_set():
            try:
                free = self.concurrency - len(self._running[provider])
                match lanes.next_read(step, free, self._batch_room(provider)):
                    case lanes.WaitForSlot(step=step):
                        self._slots[provider].clear()
                        await self._slots[provider].wait()
                    case lanes.Read() as read:
                        step = lanes.after(read, await self._read(provider, read))
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("Redis read failed; retrying", provider=provider, error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    for lane in keys.LANES:
                        await self._ensure_group(keys.work_stream(provider, lane))
                else:
                    raise

    async def _read(self, provider: str, read: lanes.Read) -> int:
        """Read and launch entries; returns how many started (or, for a read of several lanes, the
        most any one lane gave: see ``lanes.Read.per_stream``)."""
        assert self._blocking is not None
        client = self._blocking if read.block_ms is not None else self.redis
        streams: Any = {keys.work_stream(provider, lane): ">" for lane in read.lanes}
        reply = await client.xreadgroup(
            keys.GROUP, self.worker_id, streams, count=read.count, block=read.block_ms
        )
        started = most = 0
        for stream, entries in reply or ():
            lane = lanes.BATCH if stream.endswith(b":batch") else lanes.INTERACTIVE
            most = max(most, len(entries))
            for entry_id, fields in entries:
                if fields:
                    self._launch(provider, lane, entry_id.decode(), fields)
                    started += 1
        return most if read.per_stream else started

    def _launch(self, provider: str, lane: str, entry_id: str, fields: dict[bytes, bytes]) -> None:
        request_id, _job = read_entry(fields)
        running = Running(request_id=request_id, entry_id=entry_id, lane=lane)
        self._running[provider][entry_id] = running
        self._leases.add(keys.work_stream(provider, lane), entry_id)
        if lane == "batch":
            self._batch_inflight[provider] += 1
        self.metrics.inflight.labels(provider, lane).inc()
        running.task = asyncio.create_task(self._run(provider, lane, entry_id, fields, running))

    async def _run(
        self, provider: str, lane: str, entry_id: str, fields: dict[bytes, bytes], running: Running
    ) -> None:
        try:
            await self.runner.run(provider, lane, entry_id, fields, running)
            self.jobs_done += 1
        except asyncio.CancelledError:
            pass
        except (RedisError, OSError) as exc:
            # The job stays pending under this consumer and is reclaimed once its lease runs out.
            log.error(
                "Redis failed during a job; it will be reclaimed", provider=provider, error=type(exc).__name__
            )
        except Exception:
            log.exception("job crashed; it will be reclaimed", provider=provider, entry_id=entry_id)
        finally:
            self._leases.discard(keys.work_stream(provider, lane), entry_id)
            self._running[provider].pop(entry_id, None)
            if lane == "batch":
                self._batch_inflight[provider] -= 1
            self.metrics.inflight.labels(provider, lane).dec()
            self._slots[provider].set()

    # -- leases, reclaim, heartbeat -------------------------------------------------------------------

    async def _pulse(self) -> None:
        """Tell the lease keeper, every third of a lease, that the event loop is turning (a task of its
        own: a slow Redis round trip elsewhere is not a stalled loop)."""
        every = max(0.05, self.settings.lease_seconds / 3)
        while True:
            self._leases.progress()
            await asyncio.sleep(every)

    async def _maintain(self) -> None:
        """Reclaim stalled jobs, beat the heart."""
        lease = self.settings.lease_seconds
        every = max(0.05, lease / 3)
        next_reclaim = next_beat = 0.0
        while True:
            try:
                now = time.monotonic()
                if now >= next_reclaim and not self._stopping.is_set():
                    await self._reclaim()
                    next_reclaim = now + max(0.05, lease / 2)
                if now >= next_beat:
                    await self._heartbeat_once()
                    next_beat = now + HEARTBEAT_SECONDS
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("maintenance round failed", error=type(exc).__name__)
            await asyncio.sleep(every)

    async def _reclaim(self) -> None:
        min_idle = int(self.settings.lease_seconds * 1000)
        for provider in self.providers:
            for lane in keys.LANES:
                stream = keys.work_stream(provider, lane)
                cursor = "0-0"
                while True:
                    free = self.concurrency - len(self._running[provider])
                    if free <= 0:
                        break
                    reply = await self.redis.xautoclaim(
                        stream, keys.GROUP, self.worker_id, min_idle, start_id=cursor, count=free
                    )
                    cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
                    for entry_id, fields in reply[1]:
                        if fields and entry_id.decode() not in self._running[provider]:
                            log.info("reclaimed a stalled job", provider=provider, entry_id=entry_id.decode())
                            self._launch(provider, lane, entry_id.decode(), fields)
                    if cursor == "0-0":
                        break

    async def _release_unstarted(self) -> None:
        """Entries delivered to this consumer that it never started (a read cut short by the stop) are
        marked idle past the lease, so that another worker reclaims them at once."""
        for provider in self.providers:
            running = self._running[provider]
            for lane in keys.LANES:
                stream = keys.work_stream(provider, lane)
                with contextlib.suppress(RedisError, OSError):
                    pending = await self.redis.xpending_range(
                        stream, keys.GROUP, min="-", max="+", count=10_000, consumername=self.worker_id
                    )
                    orphans = [p["message_id"] for p in pending if p["message_id"].decode() not in running]
                    if orphans:
                        await self._past_the_lease(stream, orphans)
                        log.info("released unstarted jobs", provider=provider, count=len(orphans))

    async def _past_the_lease(self, stream: str, entry_ids: list[Any]) -> None:
        """Mark entries of this consumer idle past the lease: the next reclaim anywhere takes them."""
        idle_ms = int(self.settings.lease_seconds * 1000) + 1
        await self.redis.xclaim(stream, keys.GROUP, self.worker_id, 0, entry_ids, idle=idle_ms, justid=True)

    async def _hand_back(self) -> int:
        """Cancel what is still running and mark it idle past the lease so others reclaim it at once."""
        count = 0
        for provider, running in self._running.items():
            for r in list(running.values()):
                r.cancel_reason = CancelReason.SHUTDOWN
                if r.task is not None:
                    r.task.cancel()
                with contextlib.suppress(RedisError, OSError):
                    await self._past_the_lease(keys.work_stream(provider, r.lane), [r.entry_id])
                count += 1
        tasks = [r.task for per in self._running.values() for r in per.values() if r.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        return count

    async def _heartbeat_once(self) -> None:
        ttl = int(max(10, HEARTBEAT_SECONDS * 5))
        beat = WorkerHeartbeat(
            worker_id=self.worker_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            providers=self.providers,
            concurrency=self.concurrency,
            inflight={p: len(r) for p, r in self._running.items()},
            jobs_done=self.jobs_done,
            ts=time.time(),
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.worker_heartbeat(self.worker_id), encode_heartbeat(beat), ex=ttl)
            pipe.set(keys.worker_metrics(self.worker_id), encode_metrics_snapshot(self.registry), ex=ttl * 3)
            pipe.zadd(keys.WORKERS_REGISTRY, {self.worker_id: time.time()})
            await pipe.execute()

    async def _deregister(self) -> None:
        """Leave the registry and the consumer groups; a consumer that still owns jobs stays.

        XGROUP DELCONSUMER discards the consumer's pending entries, so it is only used on a consumer
        that owns none: jobs handed back at shutdown must stay pending for another worker to reclaim.
        """
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(keys.worker_heartbeat(self.worker_id))
            await self.redis.zrem(keys.WORKERS_REGISTRY, self.worker_id)
            for provider in self.providers:
                for lane in keys.LANES:
                    await delete_consumer_if_idle(
                        self.redis, keys.work_stream(provider, lane), self.worker_id
                    )

    # -- cancellation ---------------------------------------------------------------------------------

    async def _control(self) -> None:
        """Cancel running jobs when their callers ask (messages on the providers' control channels)."""
        assert self._blocking is not None
        while True:
            pubsub = self._blocking.pubsub(ignore_subscribe_messages=True)
            try:
                namespace = keys.namespace(self.settings.redis_url)
                await pubsub.subscribe(
                    *(keys.control_channel(p, namespace=namespace) for p in self.providers)
                )
                async for message in pubsub.listen():
                    if message["type"] != "message":
                        continue
                    provider = message["channel"].decode().rsplit(":", 1)[-1]
                    self._cancel_local(provider, message["data"].decode(errors="replace"))
            except asyncio.CancelledError:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError):
                await asyncio.sleep(0.5)

    def _cancel_local(self, provider: str, request_id: str) -> None:
        for running in self._running.get(provider, {}).values():
            if running.request_id == request_id and running.task is not None:
                running.cancel_reason = CancelReason.CALLER
                running.task.cancel()
                log.info("cancelling a running job", provider=provider, request_id=request_id)

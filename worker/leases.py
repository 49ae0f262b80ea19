"""Lease renewal on a thread of its own, so that a busy or blocked event loop does not lose its jobs.

A job's lease is its pending entry's idle time: every worker reclaims entries idle longer than the
lease. Renewed from the event loop, a lease runs out whenever that loop is late (CPU-bound code, a
long GC pause, a core shared with other processes), and another worker then calls the provider again
while the first call is still running. An OS thread is scheduled by the kernel and gets the GIL
within the interpreter's switch interval (5 ms by default: ``sys.setswitchinterval``,
https://docs.python.org/3/library/sys.html#sys.setswitchinterval, read 2026-12-01), so it renews on
time while the loop is slow. Only what stops the whole process (a kill, a crash, SIGSTOP, the node's
loss) stops it, and that is what reclaim is for. A loop that has made no progress for
``stall_seconds`` is hung, not slow: its jobs are no longer renewed, so they are reclaimed a lease
later.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError

from llmrelay.shared import keys, scripts

log = structlog.get_logger("llmrelay.worker")

#: Entries renewed per XCLAIM call, so that a worker with thousands in flight never sends one huge one.
CLAIM_CHUNK = 500


class LeaseKeeper:
    """Renews the leases of the entries this consumer runs, every ``lease_seconds / 3``, from a thread.

    The event loop registers entries (``add``, ``discard``) and reports progress (``progress``); the
    thread reads a copy of the entries taken under a lock, so neither side ever waits on the other's
    Redis round trips.
    """

    def __init__(self, redis_url: str, consumer: str, lease_seconds: float, stall_seconds: float) -> None:
        self._url = redis_url
        self._consumer = consumer
        self._every = max(0.05, lease_seconds / 3)
        self._timeout = max(1.0, lease_seconds)
        # The loop reports progress every third of a lease: a bound below the lease would misread that.
        self.stall_seconds = max(stall_seconds, lease_seconds)
        self._entries: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._progress = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, stream: str, entry_id: str) -> None:
        with self._lock:
            self._entries.setdefault(stream, set()).add(entry_id)

    def discard(self, stream: str, entry_id: str) -> None:
        with self._lock:
            self._entries.get(stream, set()).discard(entry_id)

    def progress(self) -> None:
        """Called by the event loop: it is alive and turning."""
        self._progress = time.monotonic()

    def start(self) -> None:
        self._stop.clear()
        self._progress = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"leases-{self._consumer}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (blocks until the thread has ended: call it through ``asyncio.to_thread``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        client = Redis.from_url(self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
        renew = client.register_script(scripts.RENEW)
        stalled = False
        try:
            while not self._stop.wait(self._every):
                if time.monotonic() - self._progress > self.stall_seconds:
                    if not stalled:
                        log.error("event loop stalled; no longer renewing leases", stall=self.stall_seconds)
                    stalled = True
                    continue
                stalled = False
                try:
                    self._renew(client, renew)
                except (RedisError, OSError) as exc:
                    log.warning("lease renewal failed", error=type(exc).__name__)
        finally:
            client.close()

    def _renew(self, client: Redis, renew: Any) -> None:
        with self._lock:
            held = [(stream, list(ids)) for stream, ids in self._entries.items() if ids]
        for stream, ids in held:
            for start in range(0, len(ids), CLAIM_CHUNK):
                renew(keys=[stream], args=[keys.GROUP, self._consumer, *ids[start : start + CLAIM_CHUNK]])

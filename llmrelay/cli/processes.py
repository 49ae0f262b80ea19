"""Child processes of `llmrelay up`: each in its own session, its output prefixed, stopped in order.

Everything runs on one thread: a selector pumps the children's output while the launcher waits for a
condition, a signal or a deadline. Children get a session of their own so that a Ctrl-C typed in the
terminal reaches only the launcher, which then stops them in the order it chooses; on Linux they also
get SIGTERM from the kernel if the launcher itself dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from rich.console import Console
from rich.text import Text

PR_SET_PDEATHSIG = 1

#: How often waits look at signals, deadlines and children (they wake earlier on output).
TICK = 0.05


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived while the launcher was waiting."""


class ChildExited(Exception):
    """A child the launcher depends on exited on its own."""

    def __init__(self, child: ManagedProcess) -> None:
        self.child = child
        super().__init__(f"{child.name} exited with code {child.returncode}")


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec function asking the kernel to SIGTERM the child when the launcher dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before the hook ran
            os._exit(1)

    return hook


@dataclass
class ManagedProcess:
    """One child: its Popen, the prefix of its output lines and the colour of that prefix."""

    name: str
    popen: subprocess.Popen[bytes]
    style: str
    started_at: float = field(default_factory=time.monotonic)
    returncode: int | None = None
    killed: bool = False
    _buffer: bytes = b""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> bool:
        """Whether the child has exited, without reaping it (so its process group id stays reserved)."""
        if self.returncode is not None:
            return True
        waitid = getattr(os, "waitid", None)
        if waitid is None:  # pragma: no cover - not Linux
            code = self.popen.poll()
            if code is not None:
                self.returncode = code
            return code is not None
        try:
            result = waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # already reaped
            self.returncode = self.popen.poll()
            return True
        return result is not None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's process group: the child and anything it started."""
        if self.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def reap(self) -> int:
        if self.returncode is None:
            # Whatever the child left in its group goes first, while its group id cannot be reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.returncode = self.popen.wait()
        return self.returncode

    @property
    def stopped_cleanly(self) -> bool:
        return not self.killed and self.returncode in (0, -signal.SIGTERM, -signal.SIGINT)


class Supervisor:
    """Starts children, relays their output, waits for conditions, and stops them stage by stage."""

    def __init__(self, console: Console, *, relay_output: bool = True) -> None:
        self.console = console
        self.relay_output = relay_output
        self.children: list[ManagedProcess] = []
        self.signals: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._previous: dict[int, object] = {}
        self._death_hook = _parent_death_hook()

    # -- signals ---------------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        # SIGHUP too: a closed terminal should stop the stack as cleanly as Ctrl-C does.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    @property
    def stop_requested(self) -> bool:
        return bool(self.signals)

    @property
    def force_requested(self) -> bool:
        """A second signal: the user does not want to wait for a graceful stop."""
        return len(self.signals) > 1

    # -- children --------------------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        style: str,
        cwd: str | None = None,
        relay: bool = True,
    ) -> ManagedProcess:
        """Start ``argv`` in a session of its own; its output is relayed line by line if ``relay``."""
        relay = relay and self.relay_output
        popen = subprocess.Popen(  # noqa: S603 - argv is built by the launcher, never by a shell
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if relay else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if relay else subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=self._death_hook,  # safe: the launcher never starts threads
            close_fds=True,
        )
        child = ManagedProcess(name=name, popen=popen, style=style)
        self.children.append(child)
        if popen.stdout is not None:
            os.set_blocking(popen.stdout.fileno(), False)
            self._selector.register(popen.stdout, selectors.EVENT_READ, child)
        return child

    def check_alive(self, children: Iterable[ManagedProcess]) -> None:
        for child in children:
            if child.exited():
                child.reap()
                self.pump(0)
                raise ChildExited(child)

    # -- waiting ---------------------------------------------------------------------------------------

    def pump(self, timeout: float) -> None:
        """Relay whatever the children wrote, waiting up to ``timeout`` seconds for something."""
        if not self._selector.get_map():
            if timeout > 0:
                time.sleep(timeout)
            return
        for key, _ in self._selector.select(timeout):
            child: ManagedProcess = key.data
            stream = key.fileobj
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self._selector.unregister(stream)
                with contextlib.suppress(OSError):
                    stream.close()  # type: ignore[union-attr]
                if child._buffer:
                    self._print(child, child._buffer)
                    child._buffer = b""
                continue
            lines = (child._buffer + chunk).split(b"\n")
            child._buffer = lines.pop()
            for line in lines:
                self._print(child, line)

    def _print(self, child: ManagedProcess, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        prefix = Text(f"{child.name:<10}| ", style=child.style)
        self.console.print(prefix + Text(line), soft_wrap=True, highlight=False)

    def wait_until(
        self,
        condition: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        watch: Iterable[ManagedProcess] = (),
    ) -> None:
        """Poll ``condition`` until it holds; raise on a signal, a dead child or the deadline."""
        watched = list(watch)
        deadline = time.monotonic() + timeout
        interval = 0.02
        while True:
            if self.stop_requested:
                raise StopRequested
            self.check_alive(watched)
            if condition():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready within {timeout:.0f}s")
            self.pump(interval)
            interval = min(interval * 1.5, 0.25)

    def wait_for_stop(self, watch: Iterable[ManagedProcess]) -> None:
        """Relay output until a signal arrives (returns) or a watched child exits (raises ChildExited)."""
        watched = list(watch)
        while not self.stop_requested:
            self.check_alive(watched)
            self.pump(TICK)

    # -- stopping --------------------------------------------------------------------------------------

    def stop(self, children: Sequence[ManagedProcess], *, timeout: float) -> None:
        """SIGTERM the children together; SIGKILL those still running after ``timeout`` (or a 2nd signal)."""
        running = [c for c in children if not c.exited()]
        for child in running:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline and not self.force_requested:
            self.pump(TICK)
            running = [c for c in running if not c.exited()]
        for child in running:
            child.killed = True
            child.signal_group(signal.SIGKILL)
        for child in children:
            child.reap()
        self.pump(0)

    def close(self) -> None:
        """Kill and reap anything still running, relay the last output, release the selector."""
        for child in self.children:
            if not child.exited():
                child.killed = True
            child.reap()
        deadline = time.monotonic() + 1.0
        while self._selector.get_map() and time.monotonic() < deadline:
            self.pump(TICK)
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

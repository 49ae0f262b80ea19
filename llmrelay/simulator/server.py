"""Running the simulator: :func:`serve` (blocking), :class:`SimulatorServer` (a subprocess, for tests and
benchmarks) and :class:`ThreadedSimulatorServer` (a thread of the current process).

``serve`` runs uvicorn with httptools, uvloop, no lifespan, no access log and a large backlog::

    from llmrelay.simulator import SimulatorConfig, serve
    serve(host="127.0.0.1", port=8900, config=SimulatorConfig(ttft_ms=50, tokens_per_second=100))

``SimulatorServer`` starts ``python -m llmrelay.simulator`` on a free port and waits until ``/_sim/health``
answers::

    with SimulatorServer(ttft_ms=0, reply_tokens=20) as sim:
        client = AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)
        ...
        sim.requests()       # what the simulator received
        sim.add_fault("429", retry_after=1, times=2, provider="openai")
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .app import SimulatorApp, create_app
from .config import SimulatorConfig
from .control import SimulatorControls

__all__ = ["SimulatorServer", "ThreadedSimulatorServer", "serve"]

DEFAULT_BACKLOG = 4096
_INCOMPLETE = "ASGI callable returned without completing response."
_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the llmrelay package


class _DropIntentionalCuts(logging.Filter):
    """A simulated stream cut is not a server error: keep it out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _INCOMPLETE


def _uvicorn_config(
    app: SimulatorApp,
    *,
    host: str,
    port: int,
    backlog: int,
    log_level: str,
    timeout_graceful_shutdown: int | None,
    configure_logging: bool,
) -> Any:
    import uvicorn

    kwargs: dict[str, Any] = {}
    if not configure_logging:
        kwargs["log_config"] = None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        backlog=backlog,
        log_level=log_level,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        timeout_keep_alive=30,
        server_header=False,
        date_header=False,
        **kwargs,
    )
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropIntentionalCuts) for f in error_log.filters):
        error_log.addFilter(_DropIntentionalCuts())
    return config


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(
    host: str = "127.0.0.1",
    port: int = 8900,
    config: SimulatorConfig | None = None,
    *,
    backlog: int = DEFAULT_BACKLOG,
    log_level: str = "warning",
    cpu: int | None = None,
    port_file: str | os.PathLike[str] | None = None,
    timeout_graceful_shutdown: int | None = 3,
    exit_with_parent: bool = False,
) -> None:
    """Serve the simulator until SIGINT/SIGTERM (blocking).

    ``port=0`` picks a free port; ``port_file`` receives the port actually bound, once listening.
    ``cpu`` pins the process to that core (``os.sched_setaffinity``), for benchmarks.
    ``exit_with_parent`` stops the server when the process that started it dies (no orphans after a
    crashed test run).
    """
    import uvicorn

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    if exit_with_parent:
        _watch_parent(os.getppid())
    app = create_app(config)
    sock = _bind(host, port, backlog)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(
        _uvicorn_config(
            app,
            host=host,
            port=bound,
            backlog=backlog,
            log_level=log_level,
            timeout_graceful_shutdown=timeout_graceful_shutdown,
            configure_logging=True,
        )
    )
    if port_file is not None:
        target = Path(port_file)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(str(bound))
        tmp.replace(target)
    print(f"llmrelay simulator listening on http://{host}:{bound}", file=sys.stderr, flush=True)
    server.run(sockets=[sock])


def _config_args(config: SimulatorConfig) -> list[str]:
    args: list[str] = []
    defaults = SimulatorConfig()
    for name, value in config.to_dict().items():
        if value == getattr(defaults, name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            args += [flag, repr(value)]
    return args


class SimulatorServer(SimulatorControls):
    """The simulator in a subprocess (``python -m llmrelay.simulator``) on a free loopback port.

    ``SimulatorServer(config=SimulatorConfig(...))`` or ``SimulatorServer(ttft_ms=..., reply_tokens=...)``.
    ``cpu`` pins the subprocess to one core. On exit the process is terminated (then killed after
    ``stop_timeout``) and reaped.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cpu: int | None = None,
        backlog: int = DEFAULT_BACKLOG,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        log_level: str = "warning",
        **knobs: Any,
    ) -> None:
        config = (config.copy() if config is not None else SimulatorConfig()).update(**knobs)
        self.start_config = config
        self.host = host
        self.port = port
        self._requested_port = port
        self.cpu = cpu
        self.backlog = backlog
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> SimulatorServer:
        if self.process is not None:
            raise RuntimeError("simulator already started")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="llmrelay-sim-")
        port_file = Path(self._tmpdir.name) / "port"
        self.log_path = Path(self._tmpdir.name) / "simulator.log"
        cmd = [
            sys.executable,
            "-m",
            "llmrelay.simulator",
            "--host",
            self.host,
            "--port",
            str(self._requested_port),
            "--port-file",
            str(port_file),
            "--backlog",
            str(self.backlog),
            "--log-level",
            self.log_level,
            "--exit-with-parent",
            *_config_args(self.start_config),
        ]
        if self.cpu is not None:
            cmd += ["--cpu", str(self.cpu)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        try:
            self._wait_started(port_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_started(self, port_file: Path) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.005
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.process.returncode}: {self._log_tail()}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.port = int(port_file.read_text())
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"simulator did not start within {self.startup_timeout}s: {self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        self.wait_ready(max(0.5, deadline - time.monotonic()))

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            else:
                process.wait()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


class ThreadedSimulatorServer(SimulatorControls):
    """The simulator in a background thread of this process (its own event loop).

    Cheaper to start than :class:`SimulatorServer` and gives direct access to the app's state
    (``.app.config``, ``.app.records``, ``.app.faults``), but it shares this process's GIL: use the
    subprocess for load tests and benchmarks.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        backlog: int = DEFAULT_BACKLOG,
        startup_timeout: float = 10.0,
        **knobs: Any,
    ) -> None:
        config = (config.copy() if config is not None else SimulatorConfig()).update(**knobs)
        self.app = create_app(config)
        self.host = host
        self.port = port
        self.backlog = backlog
        self.startup_timeout = startup_timeout
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> ThreadedSimulatorServer:
        import uvicorn

        sock = _bind(self.host, self.port, self.backlog)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(
            _uvicorn_config(
                self.app,
                host=self.host,
                port=self.port,
                backlog=self.backlog,
                log_level="warning",
                timeout_graceful_shutdown=1,
                configure_logging=False,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="llmrelay-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator thread failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> ThreadedSimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

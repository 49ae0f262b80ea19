"""`llmrelay up`: Redis, the simulator, the workers and the façade on one machine, started and stopped.

Start order: Redis (REDIS_URL, else the Redis answering on 127.0.0.1:6379, else an embedded redis-server
of our own), the simulator (when no provider key is set, or --simulate), the workers, the façade. Stop
order is the reverse, on SIGINT or SIGTERM: the façade first so that no new work arrives, then the
workers (SIGTERM makes them drain their in-flight jobs), then the simulator, then the embedded Redis.

One `Launcher` holds that whole sequence so it reads in start order; what it stands on is elsewhere:
child processes in :mod:`.processes`, Redis probing in :mod:`.redis_server`, the banner in :mod:`.banner`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from llmrelay.cli import redis_server
from llmrelay.cli.banner import print_ready
from llmrelay.cli.processes import ChildExited, ManagedProcess, StopRequested, Supervisor
from llmrelay.shared import keys
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.payloads import decode_each, decode_heartbeat
from llmrelay.shared.settings import Settings

#: Keys given to the SDKs when they talk to the simulator: real keys never leave for a fake provider.
SIMULATED_KEYS = {
    "openai": "sk-llmrelay-simulated",
    "anthropic": "sk-ant-llmrelay-simulated",
    "gemini": "llmrelay-simulated",
}
#: Variables that could still carry a real key into a simulated worker.
_KEY_ALIASES = ("GOOGLE_API_KEY",)

REDIS_START_ATTEMPTS = 3
API_STOP_TIMEOUT = 15.0
SIMULATOR_STOP_TIMEOUT = 5.0
REDIS_STOP_TIMEOUT = 5.0
#: Time the workers get beyond their own drain grace before they are killed.
WORKER_STOP_MARGIN = 10.0


class LaunchError(Exception):
    """`llmrelay up` cannot start; the message says what to do."""


@dataclass
class UpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    simulate: bool = False
    redis_probe: tuple[str, int] = redis_server.DEFAULT_PROBE
    startup_timeout: float = 60.0


@dataclass
class Stage:
    """Processes started together and stopped together."""

    name: str
    children: list[ManagedProcess]
    stop_timeout: float


@dataclass
class RunningStack:
    redis_url: str
    redis_origin: str
    simulator_url: str | None = None
    api: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)


def env_name(field_name: str) -> str:
    """The environment variable a Settings field is read from (the first, where there are several)."""
    alias: Any = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, str):
        return alias
    return str(alias.choices[0])


def child_env(
    base: Mapping[str, str], settings: Settings, fields: Iterable[str], drop: Iterable[str] = ()
) -> dict[str, str]:
    """``base`` with the given Settings fields written back as the variables they are read from."""
    env = dict(base)
    for name in drop:
        env.pop(name, None)
    for name in fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            env.pop(env_name(name), None)
        else:
            env[env_name(name)] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def has_any_key(settings: Settings) -> bool:
    return any(_key_set(settings, p) for p in PROVIDERS)


def _key_set(settings: Settings, provider: str) -> bool:
    secret = settings.api_key(provider)  # type: ignore[arg-type]
    return secret is not None and bool(secret.get_secret_value().strip())


def loopback_host(host: str) -> str:
    """Where a local client reaches a server bound to ``host``."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - only used to pick the address we probe
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def http_base(host: str, port: int) -> str:
    host = loopback_host(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with httpx2.Client(timeout=timeout, trust_env=False) as client:
            return client.get(url).status_code == 200
    except httpx2.HTTPError:
        return False


class Launcher:
    """Runs `llmrelay up` from start to a clean stop; :meth:`run` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        options: UpOptions,
        console: Console,
        *,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.supervisor = Supervisor(console)
        self.stages: list[Stage] = []
        self.env_fields: set[str] = {"redis_url"}
        self.drop_vars: set[str] = set()
        self.tmpdir: Path | None = None
        self.reported: set[int] = set()  # children whose exit was already shown

    # -- the whole run ---------------------------------------------------------------------------------

    def run(self) -> int:
        self.supervisor.install_signal_handlers()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="llmrelay-up-"))
        code = 0
        try:
            stack = self._start()
            self.supervisor.pump(0.1)  # the children's start-up lines before the banner, not after it
            self._print_ready(stack)
            self.supervisor.wait_for_stop([c for s in self.stages for c in s.children])
            self.console.print()  # past the ^C the terminal echoed
            self.console.print(Rule("stopping", style="yellow"))
        except StopRequested:
            self.console.print("[yellow]Interrupted while starting: stopping what was started.[/]")
        except ChildExited as exc:
            self.reported.add(exc.child.pid)
            self.console.print(f"[bold red]{exc.child.name} exited with code {exc.child.returncode}[/]")
            self.console.print("[red]Stopping everything else.[/]")
            code = 1
        except (LaunchError, TimeoutError) as exc:
            self.console.print(Panel(Text(str(exc)), title="llmrelay up cannot start", border_style="red"))
            code = 1
        finally:
            clean = self._stop_all()
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.supervisor.restore_signal_handlers()
        if code == 0 and not clean:
            code = 1
        if code == 0:
            self.console.print("[green]Everything stopped cleanly.[/]")
        return code

    def _start(self) -> RunningStack:
        self._check_api_port()
        stack = self._start_redis()
        if self.options.simulate or not has_any_key(self.settings):
            stack.simulator_url = self._start_simulator()
        else:
            keyed = [p for p in PROVIDERS if _key_set(self.settings, p)]
            self._note("Providers", f"the real APIs of {', '.join(keyed)} (API keys found)")
            missing = [p for p in PROVIDERS if not _key_set(self.settings, p)]
            if missing:
                self.console.print(
                    f"[yellow]No API key for {', '.join(missing)}: requests to "
                    f"{'that provider' if len(missing) == 1 else 'those providers'} will fail "
                    "(set the key, or use --simulate).[/]"
                )
        self._set_log_format()
        stack.workers = self._start_workers()
        stack.api = self._start_api()
        self._wait_ready(stack)
        return stack

    # -- Redis -----------------------------------------------------------------------------------------

    def _start_redis(self) -> RunningStack:
        if "redis_url" in self.settings.model_fields_set:
            url = self.settings.redis_url
            reason = redis_server.ping_url(url)
            if reason is not None:
                raise LaunchError(
                    f"REDIS_URL={redis_server.redact_url(url)} does not answer ({reason}).\n"
                    "Start that Redis, or unset REDIS_URL to let `llmrelay up` start one of its own."
                )
            self._note("Redis", f"{redis_server.redact_url(url)} (from REDIS_URL)")
            return RunningStack(redis_url=url, redis_origin="REDIS_URL")
        host, port = self.options.redis_probe
        state = redis_server.probe(host, port)
        if state == "ok":
            url = f"redis://{host}:{port}/0"
            self._use_redis(url)
            self._note("Redis", f"{url} (already running)")
            return RunningStack(redis_url=url, redis_origin="running")
        if state == "auth":
            self.console.print(
                f"[yellow]The Redis on {escape(host)}:{port} wants a password; to use it, set "
                f"REDIS_URL=redis://:PASSWORD@{escape(host)}:{port}/0. "
                "Starting a Redis of our own instead.[/]"
            )
        elif state == "other":
            self.console.print(
                f"[yellow]{escape(host)}:{port} is not a Redis; starting a Redis of our own.[/]"
            )
        url = self._start_embedded_redis()
        return RunningStack(redis_url=url, redis_origin="embedded")

    def _start_embedded_redis(self) -> str:
        found = redis_server.find_redis_server()
        if found is None:
            raise LaunchError(
                "No Redis is answering and no redis-server binary was found.\n"
                "Install one with `pip install 'llmrelay[embedded-redis]'` (or your system's redis-server),\n"
                "or point REDIS_URL at a running Redis."
            )
        binary, origin = found
        assert self.tmpdir is not None
        directory = self.tmpdir / "redis"
        directory.mkdir(exist_ok=True)
        last: Exception | None = None
        logfile = directory / "redis.log"
        for _ in range(REDIS_START_ATTEMPTS):
            port = redis_server.free_port()
            child = self.supervisor.spawn(
                "redis",
                redis_server.server_argv(binary, port, directory, logfile),
                env=self.base_env,
                style="red",
                relay=False,  # its start-up banner is noise; the log is shown if it fails
            )
            stage = Stage("redis", [child], REDIS_STOP_TIMEOUT)
            self.stages.append(stage)
            try:
                self.supervisor.wait_until(
                    lambda port=port: redis_server.ping("127.0.0.1", port),  # type: ignore[misc]
                    timeout=10,
                    what="the embedded Redis",
                    watch=[child],
                )
            except ChildExited as exc:  # most likely another process took the port first
                last = exc
                self.stages.remove(stage)
                self._show_log("redis", logfile)
                continue
            except TimeoutError:
                self._show_log("redis", logfile)
                raise
            url = f"redis://127.0.0.1:{port}/0"
            self._use_redis(url)
            self._note("Redis", f"{url} (embedded, {binary} from {origin}; nothing kept on disk)")
            return url
        raise LaunchError(f"the embedded Redis did not start: {last}")

    def _show_log(self, name: str, path: Path, lines: int = 20) -> None:
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return
        for line in tail:
            self.console.print(Text(f"{name:<10}| ", style="red") + Text(line), soft_wrap=True)

    def _use_redis(self, url: str) -> None:
        self.settings = self.settings.model_copy(update={"redis_url": url})

    # -- simulator, workers, façade ----------------------------------------------------------------------

    def _start_simulator(self) -> str:
        assert self.tmpdir is not None
        port_file = self.tmpdir / "simulator.port"
        argv = [
            sys.executable, "-m", "llmrelay.simulator",
            "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
        ]  # fmt: skip
        child = self.supervisor.spawn("simulator", argv, env=self.base_env, style="magenta")
        self.stages.append(Stage("simulator", [child], SIMULATOR_STOP_TIMEOUT))
        self.supervisor.wait_until(
            port_file.exists, timeout=self.options.startup_timeout, what="the simulator", watch=[child]
        )
        url = f"http://127.0.0.1:{int(port_file.read_text().strip())}"
        self.supervisor.wait_until(
            lambda: _http_ok(f"{url}/_sim/health"),
            timeout=self.options.startup_timeout,
            what="the simulator",
            watch=[child],
        )
        update: dict[str, Any] = {
            "openai_base_url": f"{url}/v1",
            "anthropic_base_url": url,
            "gemini_base_url": url,
        }
        for provider, key in SIMULATED_KEYS.items():
            update[f"{provider}_api_key"] = SecretStr(key)
        self.settings = self.settings.model_copy(update=update)
        self.env_fields |= set(update)
        self.drop_vars |= set(_KEY_ALIASES)
        self.console.print(
            Panel(
                Text.assemble(
                    ("Every provider points at the local simulator", "bold"),
                    f" ({url}).\n",
                    "Replies are synthetic and cost nothing. "
                    + (
                        "--simulate was given"
                        if self.options.simulate
                        else "No OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY is set"
                    )
                    + ".\nTo reach the real APIs, set the keys (environment or .env) "
                    "and start without --simulate.",
                ),
                title="[bold]SIMULATED PROVIDERS[/]",
                border_style="bold yellow",
                expand=False,
            )
        )
        return url

    def _set_log_format(self) -> None:
        # The children write into a pipe; keep their logs readable when we are on a terminal.
        if self.console.is_terminal and "log_format" not in self.settings.model_fields_set:
            self.settings = self.settings.model_copy(update={"log_format": "console"})
            self.env_fields.add("log_format")

    def _env(self) -> dict[str, str]:
        return child_env(self.base_env, self.settings, sorted(self.env_fields), self.drop_vars)

    def _start_workers(self) -> list[ManagedProcess]:
        env = self._env()
        children = [
            self.supervisor.spawn(
                f"worker-{i}",
                [sys.executable, "-m", "llmrelay.worker"],
                env=env,
                style="cyan" if i % 2 else "blue",
            )
            for i in range(1, self.options.workers + 1)
        ]
        timeout = self.settings.shutdown_grace + WORKER_STOP_MARGIN
        self.stages.append(Stage("workers", children, timeout))
        return children

    def _start_api(self) -> ManagedProcess:
        argv = [
            sys.executable, "-m", "llmrelay.producer.api",
            "--host", self.options.host, "--port", str(self.options.port),
        ]  # fmt: skip
        child = self.supervisor.spawn("api", argv, env=self._env(), style="green")
        self.stages.append(Stage("api", [child], API_STOP_TIMEOUT))
        return child

    def _check_api_port(self) -> None:
        if self.options.port and redis_server.port_in_use(self.options.host, self.options.port):
            raise LaunchError(
                f"{self.options.host}:{self.options.port} is already in use "
                "(another `llmrelay up`?). Stop it, or pass --port."
            )

    # -- readiness -------------------------------------------------------------------------------------

    def _wait_ready(self, stack: RunningStack) -> None:
        everyone = [c for s in self.stages for c in s.children]
        health = f"{http_base(self.options.host, self.options.port)}/health"
        self.supervisor.wait_until(
            lambda: _http_ok(health),
            timeout=self.options.startup_timeout,
            what=f"the façade ({health})",
            watch=everyone,
        )
        pids = {w.pid for w in stack.workers}
        self.supervisor.wait_until(
            lambda: pids <= self._live_worker_pids(),
            timeout=self.options.startup_timeout,
            what="the workers",
            watch=everyone,
        )

    def _live_worker_pids(self) -> set[int]:
        """PIDs of the workers whose heartbeat is in Redis (on this host)."""
        import redis

        client = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        try:
            ids: list[bytes] = client.zrange(keys.WORKERS_REGISTRY, 0, -1)  # type: ignore[assignment]
            if not ids:
                return set()
            beats: list[bytes | None] = client.mget(  # type: ignore[assignment]
                [keys.worker_heartbeat(i.decode()) for i in ids]
            )
        except (redis.RedisError, OSError):
            return set()
        finally:
            client.close()
        return {beat["pid"] for beat in decode_each(decode_heartbeat, beats)}

    # -- output ----------------------------------------------------------------------------------------

    def _note(self, what: str, text: str) -> None:
        self.console.print(Text.assemble(("● ", "green"), (f"{what}: ", "bold"), text), soft_wrap=True)

    def _example_model(self) -> str:
        allowed = self.settings.effective_allowed_models
        return self.settings.default_model if self.settings.default_model in allowed else allowed[0]

    def _print_ready(self, stack: RunningStack) -> None:
        print_ready(
            self.console,
            base=http_base(self.options.host, self.options.port),
            redis=f"{redis_server.redact_url(stack.redis_url)} ({stack.redis_origin})",
            simulator_url=stack.simulator_url,
            worker_pids=[w.pid for w in stack.workers],
            model=self._example_model(),
            token=self.settings.api_token is not None,
        )

    # -- stopping --------------------------------------------------------------------------------------

    def _stop_all(self) -> bool:
        """Stop the stages in reverse start order; True if every process exited by itself."""
        for stage in reversed(self.stages):
            if not stage.children:
                continue
            started = time.monotonic()
            if stage.name == "workers":
                self.console.print(
                    f"Stopping the workers (they finish in-flight jobs, up to {stage.stop_timeout:.0f}s)…"
                )
            else:
                self.console.print(f"Stopping {stage.name}…")
            self.supervisor.stop(stage.children, timeout=stage.stop_timeout)
            for child in stage.children:
                if child.killed:
                    self.console.print(f"[red]{child.name} did not stop in time and was killed.[/]")
                elif not child.stopped_cleanly and child.pid not in self.reported:
                    self.console.print(f"[red]{child.name} exited with code {child.returncode}.[/]")
            self.console.print(
                f"[dim]{stage.name} stopped in {time.monotonic() - started:.1f}s[/]", highlight=False
            )
        self.supervisor.close()
        return all(c.stopped_cleanly for s in self.stages for c in s.children)


def run_up(settings: Settings, options: UpOptions, console: Console) -> int:
    return Launcher(settings, options, console).run()

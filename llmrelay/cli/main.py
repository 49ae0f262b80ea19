"""The `llmrelay` command line: start the service (all of it, or one part), try it, benchmark it.

Settings are read once here, at the edge (environment and `.env`), adjusted with the command's options
and passed down; nothing below reads the environment by itself.

Each command is a short function here, so that `--help` and the commands read in one place; what they
run lives beside them (`up`, `processes`, `client`, `batch`, `bench`), which keeps this module at about
400 lines.
"""

from __future__ import annotations

import json
import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from llmrelay.cli import client
from llmrelay.cli.base import (
    TokenOpt,
    UrlOpt,
    call_options,
    command_group,
    console,
    err_console,
    fail,
    load_settings,
)
from llmrelay.cli.batch import app as batch_app
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.simulator.config import SimulatorConfig

_HELP = (
    "A multi-provider LLM gateway: callers enqueue requests on Redis streams, workers run them with the "
    "official OpenAI, Anthropic and Gemini SDKs, and a JSON-RPC / OpenAI-compatible façade serves HTTP.\n\n"
    "Configuration comes from the environment or a .env file (OPENAI_API_KEY, REDIS_URL, ...): "
    "see the README."
)

app = command_group("llmrelay", _HELP)

_SIM = SimulatorConfig()


def _version(value: bool) -> None:
    if value:
        try:
            console.print(f"llmrelay {version('llmrelay')}")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            console.print("llmrelay (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    _: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """The llmrelay command line."""


def _exit_zero_on_stop_signals() -> None:
    """Make a stop by SIGTERM/SIGINT exit 0.

    uvicorn handles these signals itself, shuts down gracefully, then raises the signal again with the
    handlers it found installed: with these, the process reports the clean stop it made instead of
    dying by the signal (a signal before uvicorn is up also ends the process with 0).
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


# -- running the service --------------------------------------------------------------------------------


def _host_option(what: str, advice: str) -> Any:
    """--host of a command that serves the façade; not given, the settings' address is used."""
    return typer.Option(
        help=f"{what} [default: LLMRELAY_API_HOST or 127.0.0.1]. {advice}", show_default=False
    )


def _port_option(what: str, *, lowest: int) -> Any:
    """--port of a command that serves the façade; not given, the settings' port is used."""
    return typer.Option(
        help=f"{what} [default: LLMRELAY_API_PORT or 8000].", min=lowest, max=65535, show_default=False
    )


@app.command()
def up(
    host: Annotated[
        str | None,
        _host_option(
            "Address the façade listens on",
            "0.0.0.0 exposes it to the network: set LLMRELAY_API_TOKEN first.",
        ),
    ] = None,
    port: Annotated[int | None, _port_option("Port of the façade", lowest=1)] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes to start; each runs many jobs at once on its own event loop.", min=1
        ),
    ] = 2,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Point every provider at the local simulator even when API keys are set "
            "(it is used anyway when no key is set).",
        ),
    ] = False,
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for everything to be ready before giving up.", min=1)
    ] = 60.0,
    redis_probe: Annotated[
        str,
        typer.Option(
            hidden=True,
            envvar="LLMRELAY_UP_REDIS_PROBE",
            help="HOST:PORT where an already running Redis is looked for when REDIS_URL is unset.",
        ),
    ] = "127.0.0.1:6379",
) -> None:
    """Run everything on this machine: Redis, the workers, the façade (and the simulator when no key is set).

    Redis: REDIS_URL if set; else the Redis answering on 127.0.0.1:6379; else an embedded
    redis-server (from PATH, or from `pip install 'llmrelay[embedded-redis]'`) on a free port,
    kept in memory only.

    Ctrl-C or SIGTERM stops it all in order: the façade, then the workers (they drain), then the
    simulator and the embedded Redis.
    """
    from llmrelay.cli import redis_server
    from llmrelay.cli.up import UpOptions, run_up

    try:
        probe = redis_server.parse_address(redis_probe)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--redis-probe") from None
    settings = load_settings(api_host=host, api_port=port)
    options = UpOptions(
        host=settings.api_host,
        port=settings.api_port,
        workers=workers,
        simulate=simulate,
        redis_probe=probe,
        startup_timeout=startup_timeout,
    )
    raise typer.Exit(run_up(settings, options, console))


def _providers(value: str) -> list[str]:
    names = [p.strip() for p in value.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PROVIDERS))
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDERS)}"
            if unknown
            else "give at least one provider"
        )
    return names


@app.command("worker")
def worker_command(
    providers: Annotated[
        str,
        typer.Option(help="Comma-separated providers whose streams this worker consumes."),
    ] = ",".join(PROVIDERS),
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Jobs run at once per provider [default: LLMRELAY_WORKER_CONCURRENCY or 256].",
            min=1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run one worker process: consume the providers' streams and run the jobs with their SDKs.

    SIGTERM or SIGINT drains it: it stops taking jobs, finishes the running ones within
    LLMRELAY_SHUTDOWN_GRACE seconds, hands the rest back to other workers, and exits 0.
    """
    names = _providers(providers)
    settings = load_settings(worker_concurrency=concurrency)
    from llmrelay.worker.main import run_worker

    run_worker(settings, names, concurrency)


@app.command("api")
def api_command(
    host: Annotated[
        str | None,
        _host_option("Address to listen on", "Use 0.0.0.0 in a container, with LLMRELAY_API_TOKEN set."),
    ] = None,
    port: Annotated[int | None, _port_option("Port to listen on", lowest=0)] = None,
) -> None:
    """Run the façade alone: JSON-RPC on /jsonrpc, OpenAI-compatible /v1, /metrics and /health.

    It needs Redis (REDIS_URL) and at least one worker somewhere to get answers.
    """
    settings = load_settings(api_host=host, api_port=port)
    from llmrelay.producer.api.server import serve

    _exit_zero_on_stop_signals()
    serve(settings, host=settings.api_host, port=settings.api_port)


@app.command()
def simulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)
    ] = 8900,
    ttft_ms: Annotated[
        float, typer.Option(help="Time to first token, in milliseconds.", min=0)
    ] = _SIM.ttft_ms,
    tokens_per_second: Annotated[
        float, typer.Option(help="Pace of streamed tokens (0: as fast as possible).", min=0)
    ] = _SIM.tokens_per_second,
    reply_tokens: Annotated[
        int, typer.Option(help="Length of a reply, in tokens, unless the prompt asks otherwise.", min=0)
    ] = _SIM.reply_tokens,
    slow_first_byte_ms: Annotated[
        float, typer.Option(help="Delay before the response headers, in milliseconds.", min=0)
    ] = _SIM.slow_first_byte_ms,
    record: Annotated[
        bool, typer.Option(help="Keep the requests received, for tests to read at /_sim/requests.")
    ] = _SIM.record,
    record_limit: Annotated[int, typer.Option(help="How many received requests to keep.", min=1)] = (
        _SIM.record_limit
    ),
    rate_limit_requests: Annotated[
        int, typer.Option(help="Requests per minute reported in rate-limit headers (never enforced).", min=1)
    ] = _SIM.rate_limit_requests,
    rate_limit_tokens: Annotated[
        int, typer.Option(help="Tokens per minute reported in rate-limit headers (never enforced).", min=1)
    ] = _SIM.rate_limit_tokens,
    port_file: Annotated[
        str | None, typer.Option(help="Write the port actually bound to this file once listening.")
    ] = None,
    cpu: Annotated[
        int | None, typer.Option(help="Pin the process to this CPU core (benchmarks).", min=0)
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "warning",
) -> None:
    """Run the provider simulator alone: OpenAI, Anthropic and Gemini wire formats on one loopback port.

    Point the SDKs at it with OPENAI_BASE_URL=http://HOST:PORT/v1, ANTHROPIC_BASE_URL=http://HOST:PORT and
    GEMINI_BASE_URL=http://HOST:PORT. Knobs can also be changed while it runs (POST /_sim/config).
    """
    from llmrelay.simulator.server import serve

    config = SimulatorConfig(
        ttft_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        reply_tokens=reply_tokens,
        slow_first_byte_ms=slow_first_byte_ms,
        record=record,
        record_limit=record_limit,
        rate_limit_requests=rate_limit_requests,
        rate_limit_tokens=rate_limit_tokens,
    )
    _exit_zero_on_stop_signals()
    serve(host=host, port=port, config=config, log_level=log_level, cpu=cpu, port_file=port_file)


# -- trying it ------------------------------------------------------------------------------------------

Prompt = Annotated[str, typer.Argument(help="The user message. '-' reads it from standard input.")]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model to use [default: the service's LLM_DEFAULT_MODEL or --tier]."),
]
TierOpt = Annotated[
    str | None, typer.Option(help="Let the service choose a model of this tier: fast, balanced or premium.")
]
SystemOpt = Annotated[str | None, typer.Option("--system", "-s", help="A system message to send first.")]
MaxTokensOpt = Annotated[int | None, typer.Option(help="Upper bound on the reply's tokens.", min=1)]
TemperatureOpt = Annotated[float | None, typer.Option(help="Sampling temperature.", min=0)]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the answer.", min=0.1)]


def _read_prompt(prompt: str) -> str:
    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise typer.BadParameter("the prompt is empty", param_hint="PROMPT")
    return prompt


@app.command()
def complete(
    prompt: Prompt,
    model: ModelOpt = None,
    tier: TierOpt = None,
    system: SystemOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
    timeout: TimeoutOpt = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole LLMResponse as JSON.")] = False,
) -> None:
    """Send one prompt to a running service (JSON-RPC llm.complete) and print the reply."""
    params = client.build_params(
        _read_prompt(prompt),
        model=model,
        tier=tier,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    try:
        response = client.complete(params, call_options(url, token, timeout))
    except client.ClientError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(response, indent=2, ensure_ascii=False))
        return
    print(response.get("content", ""))
    err_console.print(client.summary(response), style="dim", highlight=False)


@app.command()
def stream(
    prompt: Prompt,
    model: ModelOpt = None,
    tier: TierOpt = None,
    system: SystemOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
    timeout: TimeoutOpt = 120.0,
) -> None:
    """Send one prompt to a running service (JSON-RPC llm.stream) and print the tokens as they arrive."""
    params = client.build_params(
        _read_prompt(prompt),
        model=model,
        tier=tier,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    wrote = False
    try:
        for item in client.stream(params, call_options(url, token, timeout)):
            if isinstance(item, str):
                sys.stdout.write(item)
                sys.stdout.flush()
                wrote = True
            else:
                sys.stdout.write("\n")
                sys.stdout.flush()
                err_console.print(client.summary(item), style="dim", highlight=False)
    except client.ClientError as exc:
        if wrote:
            sys.stdout.write("\n")
        raise fail(exc) from None


app.add_typer(batch_app, name="batch")


# -- the catalog --------------------------------------------------------------------------------------


@app.command("models")
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
    on: Annotated[
        str | None,
        typer.Option(help="Show each lifecycle as of this date (YYYY-MM-DD) [default: today, UTC]."),
    ] = None,
) -> None:
    """The model catalog (LLMRELAY_CATALOG_FILE merged in): provider, kind, lifecycle (live, deprecated,
    retired; dates; successor), capabilities, prices, and whether ALLOWED_MODELS allows each model."""
    from datetime import date

    from llmrelay.cli.models import catalog_rows, catalog_table
    from llmrelay.shared.catalog import utc_today

    try:
        today = date.fromisoformat(on) if on is not None else utc_today()
    except ValueError:
        err_console.print(f"[bold red]error:[/] --on must be a date (YYYY-MM-DD), not {on!r}")
        raise typer.Exit(2) from None
    settings = load_settings()
    try:
        catalog = settings.catalog
    except (OSError, ValueError) as exc:
        err_console.print(f"[bold red]Invalid catalog:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    rows = catalog_rows(settings, today)
    if as_json:
        payload = {"date": today.isoformat(), "prices_as_of": catalog.prices_as_of, "models": rows}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console.print(catalog_table(rows, today, catalog.prices_as_of))


# -- benchmarks -----------------------------------------------------------------------------------------


@app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
    },
    add_help_option=False,
)
def bench(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Benchmark to run (a module of bench/); its own options follow.")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the benchmarks and exit.")] = False,
    help_: Annotated[bool, typer.Option("--help", "-h", help="Show this message and exit.")] = False,
) -> None:
    """Run a benchmark of bench/: `llmrelay bench NAME [ARGS]...` (`llmrelay bench NAME --help` for its own).

    Each benchmark compares llmrelay against a baseline measured in the same run, prints a table and
    writes JSON. `llmrelay bench --list` shows what there is.
    """
    from llmrelay.cli import bench as benchmarks

    if help_ and name is None:
        console.print(ctx.get_help())
        raise typer.Exit()
    found = benchmarks.discover()
    if list_ or name is None:
        if not found:
            console.print("No benchmarks found in bench/.")
            raise typer.Exit(0 if list_ else 2)
        table = Table("benchmark", "what it measures", box=None)
        for bench_ in found.values():
            table.add_row(bench_.name, bench_.summary)
        console.print(table)
        raise typer.Exit(0 if list_ else 2)
    if name not in found:
        err_console.print(
            f"[red]No benchmark named {name!r}.[/] Known: {', '.join(found) or 'none'} "
            "(`llmrelay bench --list`)."
        )
        raise typer.Exit(2)
    raise typer.Exit(benchmarks.run(name, list(ctx.args)))

"""What the CLI's command modules build on: the consoles, the settings, the calls to a façade, errors."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from llmrelay.cli.client import CallOptions, ClientError
from llmrelay.shared.settings import Settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

UrlOpt = Annotated[
    str,
    typer.Option(
        help="Address of a running façade (`llmrelay up` or `llmrelay api`).", envvar="LLMRELAY_URL"
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        help="Bearer token, when the service has LLMRELAY_API_TOKEN set [default: LLMRELAY_API_TOKEN].",
        show_default=False,
    ),
]


def command_group(name: str, help: str) -> typer.Typer:
    """A group of commands, with the help conventions every group of the CLI shares."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode="markdown",
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, with the command line's overrides (None = not given)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        err_console.print(f"[bold red]Invalid configuration:[/]\n{exc}")
        raise typer.Exit(2) from None
    update = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=update) if update else settings


def call_options(url: str, token: str | None, timeout: float) -> CallOptions:
    """How to call the façade; the token defaults to the configured LLMRELAY_API_TOKEN."""
    if token is None:
        secret = load_settings().api_token
        token = secret.get_secret_value() if secret is not None else None
    return CallOptions(url=url, token=token or None, timeout=timeout)


def fail(exc: Exception) -> typer.Exit:
    """Print a failed call's error (its JSON-RPC code and data when it has them); the exit to raise."""
    if isinstance(exc, ClientError) and exc.code is not None:
        err_console.print(f"[bold red]error {exc.code}:[/] {exc}", highlight=False)
        if exc.data:
            err_console.print(json.dumps(exc.data, indent=2, default=str), highlight=False, markup=False)
    else:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(1)

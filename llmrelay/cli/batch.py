"""`llmrelay batch`: run a JSONL file of requests as one batch on a running façade, and follow it."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any, get_args

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmrelay.cli import client
from llmrelay.cli.base import TokenOpt, UrlOpt, call_options, command_group, console, err_console, fail
from llmrelay.shared.batch import MAX_BATCH_ITEMS, TERMINAL_ITEM_STATES, ItemStatus
from llmrelay.shared.keys import valid_request_id
from llmrelay.shared.models import LLMRequest

_HELP = """Bulk workloads: many requests submitted at once, run on the batch lane as the queue has room.

Interactive work is read first; batch items hold at most their share of a worker's slots
(LLMRELAY_BATCH_MAX_SHARE) and are never starved. The workers feed a batch into the queue as it has room.

`llmrelay batch submit requests.jsonl --wait`, then `llmrelay batch results ID --output out.jsonl`.
"""

app = command_group("batch", _HELP)

#: Seconds between two status calls while waiting for a batch.
POLL_INTERVAL = 0.5
#: Items an outcome counts as failed for (a cancelled item is counted apart).
FAILED_STATES = ("failed", "expired", "dead")


def _batch_id(value: str | None) -> str | None:
    if value is not None and not valid_request_id(value):
        raise typer.BadParameter("a batch id is 1-128 characters of A-Z a-z 0-9 _ . : -")
    return value


BatchIdArg = Annotated[
    str, typer.Argument(help="The batch id `llmrelay batch submit` printed.", callback=_batch_id)
]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for each call to the service.", min=0.1)]


# -- the request file -----------------------------------------------------------------------------------


class BatchFileError(ValueError):
    """A request file that cannot be submitted; ``line`` is 1-based, None for the file as a whole."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclass
class BatchFile:
    """The requests of a file as `llm.batch.submit` takes them, and the line each came from."""

    requests: list[dict[str, Any]]
    lines: list[int]

    def line_of(self, index: Any) -> int | None:
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(self.lines):
            return self.lines[index]
        return None


def parse_requests(lines: Iterable[str], *, model: str | None = None) -> BatchFile:
    """Requests from JSONL: one JSON object a line, a full LLMRequest or ``{"prompt": "...", ...}``.

    ``prompt`` stands for ``messages: [{"role": "user", "content": prompt}]``; ``model`` fills in a
    request that names none. Blank lines are skipped. Every request is checked here, so that a bad line
    is named before anything is sent; the first one raises :class:`BatchFileError`.
    """
    requests: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        requests.append(_request(line, number, model))
        numbers.append(number)
        if len(requests) > MAX_BATCH_ITEMS:
            raise BatchFileError(f"a batch holds at most {MAX_BATCH_ITEMS} requests; split the file", number)
    if not requests:
        raise BatchFileError("the file holds no requests")
    return BatchFile(requests, numbers)


def _request(line: str, number: int, model: str | None) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise BatchFileError(f"not valid JSON ({exc})", number) from None
    if not isinstance(value, dict):
        raise BatchFileError(f"expected a JSON object, got {type(value).__name__}", number)
    if "prompt" in value:
        prompt = value.pop("prompt")
        if "messages" in value:
            raise BatchFileError('give either "prompt" or "messages", not both', number)
        if not isinstance(prompt, str) or not prompt.strip():
            raise BatchFileError('"prompt" must be a non-empty string', number)
        value["messages"] = [{"role": "user", "content": prompt}]
    if model is not None and value.get("model") is None:
        value["model"] = model
    try:
        LLMRequest.model_validate(value)
    except ValidationError as exc:
        raise BatchFileError(_first_error(exc), number) from None
    return value


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def read_requests(path: str, *, model: str | None = None) -> BatchFile:
    """:func:`parse_requests` of a file, or of standard input for ``-``."""
    if path == "-":
        return parse_requests(sys.stdin, model=model)
    try:
        with open(path, encoding="utf-8") as lines:
            return parse_requests(lines, model=model)
    except UnicodeDecodeError:
        raise BatchFileError("the file is not UTF-8 text") from None
    except OSError as exc:
        raise BatchFileError(f"cannot read it: {exc.strerror or exc}") from None


def item_index(data: Any) -> Any:
    """The item a submission error is about: ``data.index`` of a service error, ``requests.<i>`` of -32602."""
    if not isinstance(data, dict):
        return None
    inner = data.get("data")
    if isinstance(inner, dict) and "index" in inner:
        return inner["index"]
    for error in data.get("errors") or ():
        loc = error.get("loc") if isinstance(error, dict) else None
        if isinstance(loc, list) and len(loc) > 1 and loc[0] == "requests":
            return loc[1]
    return None


# -- talking to the façade ------------------------------------------------------------------------------


def _failed(counts: dict[str, int]) -> int:
    return sum(counts.get(name, 0) for name in FAILED_STATES)


def wait_for(
    batch_id: str, options: client.CallOptions, *, interval: float = POLL_INTERVAL
) -> dict[str, Any]:
    """Poll `llm.batch.status` with a progress bar on standard error until the batch has finished."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} done[/] · [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("batch", total=None, done=0, failed=0)
        while True:
            status = client.call("llm.batch.status", {"batch_id": batch_id}, options)
            counts = status.get("counts") or {}
            progress.update(
                task,
                total=status["total"],
                completed=status["completed"],
                done=counts.get("done", 0),
                failed=_failed(counts),
            )
            if status["finished"]:
                return status
            time.sleep(interval)


def summary(status: dict[str, Any], seconds: float | None = None) -> str:
    """One line about a batch: its state and how many items ended which way."""
    counts = status.get("counts") or {}
    parts = [
        f"{counts.get('done', 0)} done",
        f"{_failed(counts)} failed",
        f"{counts.get('cancelled', 0)} cancelled",
    ]
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    return f"batch {status['batch_id']} {status['state']}: {' · '.join(parts)} of {status['total']}{took}"


# -- the commands ---------------------------------------------------------------------------------------


@app.command()
def submit(
    file: Annotated[
        str,
        typer.Argument(
            help='JSONL: one request per line, an LLMRequest object or {"prompt": "..."} '
            "(other LLMRequest fields may go with it). '-' reads standard input.",
            show_default=False,
        ),
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model for the requests that name none.")
    ] = None,
    batch_id: Annotated[
        str | None,
        typer.Option(
            help="Id to give the batch [default: a new one]; it must not exist yet.", callback=_batch_id
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Show a progress bar until every item has finished.")
    ] = False,
    url: UrlOpt = client.DEFAULT_URL,
    token: TokenOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Submit a JSONL file of requests as one batch (JSON-RPC llm.batch.submit); print the batch id.

    Every line is checked before anything is sent: a bad line is named and nothing is submitted. The
    items run on the batch lane, fed to the providers as the queue has room; follow them with
    `--wait`, `llmrelay batch status ID`, and collect them with `llmrelay batch results ID`.
    """
    try:
        requests = read_requests(file, model=model)
    except BatchFileError as exc:
        name = "standard input" if file == "-" else file
        err_console.print(f"[bold red]error:[/] {name}, {exc}", highlight=False)
        raise typer.Exit(2) from None
    options = call_options(url, token, timeout)
    params: dict[str, Any] = {"requests": requests.requests}
    if batch_id is not None:
        params["batch_id"] = batch_id
    started = time.monotonic()
    try:
        submitted = client.call("llm.batch.submit", params, options)
    except client.ClientError as exc:
        line = requests.line_of(item_index(exc.data))
        if line is not None:
            err_console.print(f"[bold red]refused:[/] the request on line {line}", highlight=False)
        failure = fail(exc)
        if exc.http_status == 413:
            err_console.print(
                f"{len(requests.requests)} requests are too large for one call to this service: split the "
                "file into smaller batches, or raise LLMRELAY_MAX_BODY_BYTES on the service",
                highlight=False,
            )
        raise failure from None
    new_id = str(submitted["batch_id"])
    print(new_id, flush=True)
    err_console.print(
        f"submitted {submitted['total']} requests as batch {new_id}", style="dim", highlight=False
    )
    if not wait:
        return
    try:
        status = wait_for(new_id, options)
    except client.ClientError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        err_console.print(f"stopped waiting; the batch goes on: `llmrelay batch status {new_id}`")
        raise typer.Exit(130) from None
    err_console.print(summary(status, time.monotonic() - started), highlight=False)


@app.command()
def status(
    batch_id: BatchIdArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    url: UrlOpt = client.DEFAULT_URL,
    token: TokenOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Show a batch's state and how many of its items are in each state (JSON-RPC llm.batch.status)."""
    try:
        found = client.call("llm.batch.status", {"batch_id": batch_id}, call_options(url, token, timeout))
    except client.ClientError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table(box=None, show_header=False, title=f"batch {batch_id}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("state", str(found["state"]))
    table.add_row("finished", f"{found['completed']} of {found['total']} ({found['progress']:.0%})")
    table.add_row("fed to the queue", str(found["fed"]))
    counts = found.get("counts") or {}
    for name in get_args(ItemStatus):
        if counts.get(name):
            table.add_row(f"  {name}", str(counts[name]))
    if found.get("created_at"):
        created = datetime.fromtimestamp(float(found["created_at"])).astimezone()
        table.add_row("created", created.isoformat(timespec="seconds"))
    console.print(table)


@app.command()
def results(
    batch_id: BatchIdArg,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (replaced once complete) [default: stdout]."),
    ] = None,
    page_size: Annotated[
        int, typer.Option(help="Items fetched per call (llm.batch.results).", min=1, max=1000)
    ] = 500,
    url: UrlOpt = client.DEFAULT_URL,
    token: TokenOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Write a batch's outcomes as JSONL, one item per line in submission order (JSON-RPC llm.batch.results).

    Each line is {"index", "request_id", "status", "response", "error"}: `response` is the
    LLMResponse of a done item, `error` the error of a failed one. Items that have not finished yet are
    written with their current status; run the command again later for their results.
    """
    options = call_options(url, token, timeout)
    written = unfinished = 0
    try:
        with _destination(output) as out:
            for item in _pages(batch_id, options, page_size):
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
                written += 1
                unfinished += item.get("status") not in TERMINAL_ITEM_STATES
    except client.ClientError as exc:
        raise fail(exc) from None
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): stop quietly, as the other tools of a pipe do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except OSError as exc:
        err_console.print(
            f"[bold red]error:[/] cannot write {output}: {exc.strerror or exc}", highlight=False
        )
        raise typer.Exit(1) from None
    where = f" to {output}" if output is not None else ""
    err_console.print(f"wrote {written} results{where}", style="dim", highlight=False)
    if unfinished:
        err_console.print(f"{unfinished} items have not finished yet", style="yellow", highlight=False)


def _pages(batch_id: str, options: client.CallOptions, page_size: int) -> Iterator[dict[str, Any]]:
    offset: int | None = 0
    while offset is not None:
        page = client.call(
            "llm.batch.results", {"batch_id": batch_id, "offset": offset, "limit": page_size}, options
        )
        yield from page["items"]
        offset = page["next_offset"]


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[IO[str]]:
    """Standard output, or a file that appears (or is replaced) only once everything is written."""
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    fd, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@app.command()
def cancel(
    batch_id: BatchIdArg,
    url: UrlOpt = client.DEFAULT_URL,
    token: TokenOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Cancel a batch (JSON-RPC llm.batch.cancel): stop feeding it, cancel its unfinished items.

    Items that already finished keep their results.
    """
    try:
        done = client.call("llm.batch.cancel", {"batch_id": batch_id}, call_options(url, token, timeout))
    except client.ClientError as exc:
        raise fail(exc) from None
    console.print(f"cancelled {done['cancelled']} items of batch {batch_id}", highlight=False)

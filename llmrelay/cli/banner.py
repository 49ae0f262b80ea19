"""The banner `llmrelay up` prints once everything is ready: where each part is, and how to try it."""

from __future__ import annotations

import json
import shlex

from rich.console import Console, Group
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text


def print_ready(
    console: Console,
    *,
    base: str,
    redis: str,
    simulator_url: str | None,
    worker_pids: list[int],
    model: str,
    token: bool,
) -> None:
    """The URLs of the façade, Redis, the simulator and the workers, then copy-paste examples."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("JSON-RPC", f"{base}/jsonrpc")
    table.add_row("OpenAI-compatible", f"{base}/v1")
    table.add_row("Metrics", f"{base}/metrics")
    table.add_row("Health", f"{base}/health")
    table.add_row("Redis", redis)
    if simulator_url:
        table.add_row("Simulator", f"{simulator_url}  [yellow](every provider)[/]")
    table.add_row(
        "Workers", f"{len(worker_pids)} (pids {', '.join(str(pid) for pid in worker_pids)})"
    )
    title = "[bold green]llmrelay is up[/]"
    if simulator_url:
        title += " [bold yellow](simulated providers)[/]"
    console.print(Panel(table, title=title, border_style="green", expand=False))

    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "llm.complete",
        "params": {"model": model, "messages": [{"role": "user", "content": "Say hello"}]},
    }
    curl = f"curl -s {base}/jsonrpc -H 'Content-Type: application/json'"
    if token:
        curl += ' -H "Authorization: Bearer $LLMRELAY_API_TOKEN"'
    curl += f" -d {shlex.quote(json.dumps(call, separators=(',', ':')))}"
    api_key = 'os.environ["LLMRELAY_API_TOKEN"]' if token else '"unused"'
    python = "\n".join(
        [
            *(["import os"] if token else []),
            "from openai import OpenAI",
            f'client = OpenAI(base_url="{base}/v1", api_key={api_key})',
            f'reply = client.chat.completions.create(model="{model}", '
            'messages=[{"role": "user", "content": "Say hello"}])',
            "print(reply.choices[0].message.content)",
        ]
    )
    console.print(Rule("try it", style="green"))
    console.print(Text("# JSON-RPC with curl", style="dim"))
    console.print(Text(curl), soft_wrap=True)
    console.print(Text("# or from this command line", style="dim"))
    console.print(Text(f'llmrelay stream "Say hello" --url {base}'), soft_wrap=True)
    console.print(Text("# with the openai SDK (pip install openai)", style="dim"))
    console.print(Text(python), soft_wrap=True)
    console.print(Rule(style="green"))
    console.print(Group(Text("Press Ctrl-C to stop everything.", style="bold")))

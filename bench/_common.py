"""What the benchmarks share: percentiles, core pinning, the processes under test, tables and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

KEYS = {
    "OPENAI_API_KEY": "sk-bench-000000000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-bench-0000000000000000",
    "GEMINI_API_KEY": "AIzaBench0000000000000000000000000000000",
}


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(ms: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50": round(pct(ms, 0.50), 4),
        "p95": round(pct(ms, 0.95), 4),
        "p99": round(pct(ms, 0.99), 4),
        "mean": round(statistics.fmean(ms), 4) if ms else float("nan"),
    }


def cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return []


def pin(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core})


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@contextlib.contextmanager
def worker_process(
    env: dict[str, str], *, core: int | None, providers: str, concurrency: int
) -> Iterator[subprocess.Popen[bytes]]:
    """A `python -m worker` process pinned to ``core``, stopped with SIGTERM at the end."""
    full = {**os.environ, **env, "LLMRELAY_LOG_LEVEL": "WARNING", "LLMRELAY_LOG_FORMAT": "json"}
    cmd = [sys.executable, "-m", "llmrelay.worker", "--providers", providers]
    cmd += ["--concurrency", str(concurrency)]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for_worker(redis_url: str, timeout: float = 20.0) -> None:
    import redis

    from llmrelay.shared import keys

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.zcard(keys.WORKERS_REGISTRY):
            return
        time.sleep(0.05)
    raise TimeoutError("no worker registered")


def run_benchmark(
    name: str,
    args: Any,
    run: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]],
    report: Callable[..., None],
) -> int:
    """Run one benchmark on uvloop, print its table, write its JSON with the machine's state at start."""
    at_start = machine()
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:  # pragma: no cover
        result = asyncio.run(run(args))
    result["machine"] = at_start
    report(result, args.concurrency)
    print(f"JSON: {write_json(name, result, args.json)}")
    return 0


def write_json(name: str, data: dict[str, Any], path: str | None = None) -> Path:
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data.setdefault("machine", machine())
    data["machine"]["loadavg_end"] = os.getloadavg()
    out.write_text(json.dumps(data, indent=2))
    return out


def print_table(title: str, rows: list[list[Any]], headers: list[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="right" if h != headers[0] else "left")
        for row in rows:
            table.add_row(*(f"{c:.3f}" if isinstance(c, float) else str(c) for c in row))
        Console().print(table)
    except ImportError:  # pragma: no cover
        print(title)
        for row in rows:
            print(*row, sep="\t")

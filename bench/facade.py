"""The façade end to end against a direct SDK call to the same simulator, in one run.

Subject: HTTP JSON-RPC -> façade -> Redis -> worker -> openai SDK -> simulator -> channel -> SSE/JSON.
Baseline: the openai SDK call (streamed, drained) from this process straight to the simulator.
Calls are interleaved. The simulator is pinned to one core and this client to the other; the façade
and worker processes are left to the scheduler (a 2-core machine has no third core to give them).

    llmrelay bench facade [--n 300] [--concurrency 100] [--rounds 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import orjson
import redis
from openai import AsyncOpenAI

from bench._common import (
    KEYS,
    ROOT,
    cores,
    pin,
    print_table,
    run_benchmark,
    summary,
    wait_for_worker,
    worker_process,
)
from llmrelay.simulator.server import SimulatorServer

HEADERS = {"content-type": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    full = {**os.environ, **env, "LLMRELAY_LOG_LEVEL": "WARNING", "LLMRELAY_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmrelay.producer.api", "--port", str(port)],
        cwd=ROOT,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def _until_healthy(http: httpx2.AsyncClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("the façade did not become healthy")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cpu = cores()
    sim_core, client_core = (cpu[0], cpu[1]) if len(cpu) >= 2 else (None, None)
    redis.Redis.from_url(args.redis_url).flushdb()
    port = _free_port()
    with SimulatorServer(cpu=sim_core, ttft_ms=0, reply_tokens=args.tokens) as sim:
        env = {**KEYS, "REDIS_URL": args.redis_url, "OPENAI_BASE_URL": sim.openai_base_url}
        pin(client_core)
        with (
            worker_process(env, core=None, providers="openai", concurrency=256),
            api_process(env, port),
        ):
            wait_for_worker(args.redis_url)
            limits = httpx2.Limits(max_connections=256, max_keepalive_connections=256)
            direct = AsyncOpenAI(
                api_key=KEYS["OPENAI_API_KEY"],
                base_url=sim.openai_base_url,
                max_retries=0,
                http_client=httpx2.AsyncClient(limits=limits),
            )
            async with httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
            ) as http:
                await _until_healthy(http)
                messages = [{"role": "user", "content": "benchmark prompt"}]
                params = {"model": "gpt-6.1-terra", "messages": messages}
                complete_body = orjson.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "llm.complete", "params": params}
                )
                stream_body = orjson.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "llm.stream", "params": params}
                )

                async def sdk() -> tuple[float, float]:
                    t0 = time.perf_counter()
                    first = 0.0
                    stream = await direct.chat.completions.create(
                        model="gpt-6.1-terra",
                        messages=messages,  # type: ignore[arg-type]
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    async for chunk in stream:
                        if not first and chunk.choices and chunk.choices[0].delta.content:
                            first = time.perf_counter() - t0
                    return (time.perf_counter() - t0) * 1000, first * 1000

                async def facade_complete() -> tuple[float, float]:
                    t0 = time.perf_counter()
                    reply = await http.post("/jsonrpc", content=complete_body, headers=HEADERS)
                    if b'"result"' not in reply.content:
                        raise RuntimeError(reply.text[:300])
                    elapsed = (time.perf_counter() - t0) * 1000
                    return elapsed, elapsed

                async def facade_stream() -> tuple[float, float]:
                    t0 = time.perf_counter()
                    first = 0.0
                    async with http.stream("POST", "/jsonrpc", content=stream_body, headers=HEADERS) as resp:
                        async for chunk in resp.aiter_bytes():
                            if not first and b'"token"' in chunk:
                                first = time.perf_counter() - t0
                    return (time.perf_counter() - t0) * 1000, first * 1000

                paths = {
                    "direct_sdk": sdk,
                    "facade_complete": facade_complete,
                    "facade_stream": facade_stream,
                }
                for _ in range(30):  # warm up
                    for call in paths.values():
                        await call()
                seq: dict[str, list[tuple[float, float]]] = {k: [] for k in paths}
                for _ in range(args.n):
                    for name, call in paths.items():
                        seq[name].append(await call())
                conc: dict[str, list[tuple[float, float]]] = {k: [] for k in paths}
                for _ in range(args.rounds):
                    for name, call in paths.items():
                        conc[name] += await asyncio.gather(*(call() for _ in range(args.concurrency)))
            await direct.close()

    def table(samples: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
        total = {k: summary([s[0] for s in v]) for k, v in samples.items()}
        ttft = {k: summary([s[1] for s in v]) for k, v in samples.items() if k != "facade_complete"}
        base, base_ttft = total["direct_sdk"], ttft["direct_sdk"]
        return {
            "latency_ms": total,
            "ttft_ms": ttft,
            "added_latency_ms": {
                k: {q: round(total[k][q] - base[q], 4) for q in ("p50", "p95", "p99")}
                for k in ("facade_complete", "facade_stream")
            },
            "added_ttft_ms": {
                q: round(ttft["facade_stream"][q] - base_ttft[q], 4) for q in ("p50", "p95", "p99")
            },
        }

    return {
        "benchmark": "facade",
        "params": vars(args),
        "concurrency_1": table(seq),
        f"concurrency_{args.concurrency}": table(conc),
    }


def report(result: dict[str, Any], concurrency: int) -> None:
    rows = []
    for section in ("concurrency_1", f"concurrency_{concurrency}"):
        data = result[section]
        for name, s in data["latency_ms"].items():
            rows.append([f"{section}: {name} latency", s["p50"], s["p95"], s["p99"]])
        for name, s in data["ttft_ms"].items():
            rows.append([f"{section}: {name} TTFT", s["p50"], s["p95"], s["p99"]])
        for name, d in data["added_latency_ms"].items():
            rows.append([f"{section}: {name} added latency", d["p50"], d["p95"], d["p99"]])
        d = data["added_ttft_ms"]
        rows.append([f"{section}: facade_stream added TTFT", d["p50"], d["p95"], d["p99"]])
    print_table("façade (HTTP) vs direct SDK call (ms)", rows, ["path", "p50", "p95", "p99"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmrelay bench facade", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="sequential calls per path")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--json", default=None)
    return run_benchmark("facade", parser.parse_args(argv), run, report)


if __name__ == "__main__":
    raise SystemExit(main())

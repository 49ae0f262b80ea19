"""The queue path against a direct SDK call to the same simulator, in one run.

Subject: producer -> Redis stream -> worker process -> openai SDK -> simulator -> token channel -> producer.
Baseline: the same openai SDK call (streamed, drained) from this process straight to the simulator.
Baseline and subject calls are interleaved so both see the same machine. The simulator runs on one
core; this process and the worker share the other (on a 2-core machine that is all there is).

    llmrelay bench queue [--n 300] [--concurrency 100] [--rounds 8] [--jobs 3000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import redis
from openai import AsyncOpenAI

from bench._common import (
    KEYS,
    cores,
    pin,
    print_table,
    run_benchmark,
    summary,
    wait_for_worker,
    worker_process,
)
from llmrelay.producer import LLMProducer
from llmrelay.shared import LLMRequest, Settings
from llmrelay.simulator.server import SimulatorServer

Call = Callable[[], Awaitable[Any]]


async def _timed(call: Call) -> float:
    t0 = time.perf_counter()
    await call()
    return (time.perf_counter() - t0) * 1000


async def sequential(pairs: dict[str, Call], n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(n):
        for name, call in pairs.items():
            out[name].append(await _timed(call))
    return out


async def concurrent(pairs: dict[str, Call], concurrency: int, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, call in pairs.items():
            out[name] += await asyncio.gather(*(_timed(call) for _ in range(concurrency)))
    return out


async def throughput(call: Call, jobs: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    return jobs / (time.perf_counter() - t0)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cpu = cores()
    sim_core, client_core = (cpu[0], cpu[1]) if len(cpu) >= 2 else (None, None)
    redis.Redis.from_url(args.redis_url).flushdb()
    with SimulatorServer(cpu=sim_core, ttft_ms=0, reply_tokens=args.tokens) as sim:
        env = {
            **KEYS,
            "REDIS_URL": args.redis_url,
            "OPENAI_BASE_URL": sim.openai_base_url,
            "LLMRELAY_HTTP_POOL_SIZE": str(args.pool),
        }
        settings = Settings(_env_file=None, **env)  # type: ignore[arg-type]
        pin(client_core)
        with worker_process(env, core=client_core, providers="openai", concurrency=args.worker_concurrency):
            wait_for_worker(args.redis_url)
            limits = httpx2.Limits(max_connections=args.pool, max_keepalive_connections=args.pool)
            direct = AsyncOpenAI(
                api_key=KEYS["OPENAI_API_KEY"],
                base_url=sim.openai_base_url,
                max_retries=0,
                http_client=httpx2.AsyncClient(limits=limits),
            )
            messages = [{"role": "user", "content": "benchmark prompt"}]

            async def sdk() -> None:
                stream = await direct.chat.completions.create(
                    model="gpt-6.1-terra",
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for _chunk in stream:
                    pass

            request = LLMRequest(model="gpt-6.1-terra", messages=messages)  # type: ignore[arg-type]
            wait_text = f"benchmark prompt [[sim:ttft_ms={args.provider_ttft_ms}]]"
            wait_messages = [{"role": "user", "content": wait_text}]
            wait_request = LLMRequest(model="gpt-6.1-terra", messages=wait_messages)  # type: ignore[arg-type]

            async def sdk_waiting() -> None:
                stream = await direct.chat.completions.create(
                    model="gpt-6.1-terra",
                    messages=wait_messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for _chunk in stream:
                    pass

            long_request = LLMRequest(
                model="gpt-6.1-terra",
                messages=[{"role": "user", "content": f"long [[sim:tokens={args.relay_tokens}]]"}],  # type: ignore[list-item]
            )
            async with LLMProducer(settings) as producer:

                async def queue_complete() -> None:
                    await producer.complete(request)

                async def queue_waiting() -> None:
                    await producer.complete(wait_request)

                async def queue_stream() -> None:
                    async for _text in producer.stream(request):
                        pass

                async def long_complete() -> None:
                    await producer.complete(long_request)

                async def long_stream() -> None:
                    async for _text in producer.stream(long_request):
                        pass

                pairs = {"direct_sdk": sdk, "queue_complete": queue_complete, "queue_stream": queue_stream}
                await sequential(pairs, 30)  # warm up every path
                seq = await sequential(pairs, args.n)
                # Pools grow during the burst: sequential latency after it is what a quiet period sees.
                conc = await concurrent(pairs, args.concurrency, args.rounds)
                seq_after = await sequential(pairs, max(50, args.n // 3))
                # Real providers take hundreds of ms to the first token: most requests wait, few compute.
                waiting = {
                    "direct_sdk": sdk_waiting,
                    "queue_complete": queue_waiting,
                }
                conc_waiting = await concurrent(waiting, args.concurrency, max(2, args.rounds // 2))
                relay = await sequential(
                    {"complete": long_complete, "stream": long_stream}, max(50, args.n // 3)
                )
                tput_direct = await throughput(sdk, args.jobs, args.concurrency * 2)
                tput_queue = await throughput(queue_complete, args.jobs, args.concurrency * 2)
            await direct.close()

    def added(stats: dict[str, list[float]], name: str) -> dict[str, float]:
        a, b = summary(stats[name]), summary(stats["direct_sdk"])
        return {k: round(a[k] - b[k], 4) for k in ("p50", "p95", "p99")}

    relay_s, relay_c = summary(relay["stream"]), summary(relay["complete"])
    result = {
        "benchmark": "queue",
        "params": vars(args),
        "sequential": {k: summary(v) for k, v in seq.items()},
        "sequential_added_ms": {k: added(seq, k) for k in ("queue_complete", "queue_stream")},
        "sequential_after_burst": {k: summary(v) for k, v in seq_after.items()},
        "sequential_after_burst_added_ms": {
            k: added(seq_after, k) for k in ("queue_complete", "queue_stream")
        },
        f"concurrency_{args.concurrency}": {k: summary(v) for k, v in conc.items()},
        f"concurrency_{args.concurrency}_added_ms": {
            k: added(conc, k) for k in ("queue_complete", "queue_stream")
        },
        f"concurrency_{args.concurrency}_ttft_{args.provider_ttft_ms}ms": {
            k: summary(v) for k, v in conc_waiting.items()
        },
        f"concurrency_{args.concurrency}_ttft_{args.provider_ttft_ms}ms_added_ms": {
            "queue_complete": added(conc_waiting, "queue_complete")
        },
        "throughput_jobs_per_s": {
            "direct_sdk": round(tput_direct, 1),
            "one_worker_process": round(tput_queue, 1),
            "ratio": round(tput_queue / tput_direct, 3),
        },
        "relay": {
            "tokens": args.relay_tokens,
            "complete_p50_ms": relay_c["p50"],
            "stream_p50_ms": relay_s["p50"],
            "ms_per_relayed_token": round((relay_s["p50"] - relay_c["p50"]) / args.relay_tokens, 5),
        },
    }
    return result


def report(result: dict[str, Any], concurrency: int) -> None:
    rows = []
    ttft = result["params"]["provider_ttft_ms"]
    for section, label in (
        ("sequential", "concurrency 1"),
        ("sequential_after_burst", "concurrency 1, after burst"),
        (f"concurrency_{concurrency}", f"concurrency {concurrency}"),
        (f"concurrency_{concurrency}_ttft_{ttft}ms", f"concurrency {concurrency}, provider TTFT {ttft} ms"),
    ):
        for name, s in result[section].items():
            rows.append([f"{label}: {name}", s["p50"], s["p95"], s["p99"]])
        for name, d in result[f"{section}_added_ms"].items():
            rows.append([f"{label}: {name} added", d["p50"], d["p95"], d["p99"]])
    print_table("queue path vs direct SDK call (ms)", rows, ["path", "p50", "p95", "p99"])
    t = result["throughput_jobs_per_s"]
    r = result["relay"]
    print_table(
        "throughput and relay",
        [
            ["direct SDK jobs/s", t["direct_sdk"]],
            ["one worker process jobs/s", t["one_worker_process"]],
            ["ratio", t["ratio"]],
            [f"ms per relayed token ({r['tokens']} tokens)", r["ms_per_relayed_token"]],
        ],
        ["measure", "value"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmrelay bench queue", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="sequential calls per path")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8, help="bursts of --concurrency calls per path")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs for the throughput measure")
    parser.add_argument("--tokens", type=int, default=20, help="reply tokens")
    parser.add_argument("--relay-tokens", type=int, default=200, help="reply tokens for the relay cost")
    parser.add_argument("--provider-ttft-ms", type=int, default=300, help="TTFT of the 'waiting' phase")
    parser.add_argument("--pool", type=int, default=256, help="HTTP connections per provider")
    parser.add_argument("--worker-concurrency", type=int, default=256)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument(
        "--json", default=None, help="where to write the JSON (default bench/results/queue.json)"
    )
    return run_benchmark("queue", parser.parse_args(argv), run, report)


if __name__ == "__main__":
    raise SystemExit(main())

"""Relay cost per streamed tool-call argument delta against per text token, interleaved in one run.

Subject and baseline take the same path: the worker's event writer (``JobEvents``, the RELAY script)
in a writer process -> Redis (event log and channel) -> the producer's one follower (``EventFollower``
over the shared pub/sub connection, then the ``ReplayFilter`` every text or OpenAI stream goes through)
in this process. A round writes N deltas of one kind, then the terminal event, and is timed here from
the go signal to the terminal event; a round of the terminal event alone is timed beside them, so
``(round - empty round) / N`` is the cost of one delta. Two ways of writing: ``paced``, one event per
delta (a provider slower than Redis: every delta pays its own round trip), and ``burst``, all N pushed
at once and coalesced by the writer as it does when the provider is faster than Redis. Text tokens and
tool-call argument fragments carry the same strings (slices of one JSON arguments text), so the two
differ only in their kind. All kinds of round are interleaved, their order rotated each round. The
writer runs on one core and this process on the other.

    llmrelay bench relay [--rounds 150] [--deltas 200] [--size 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bench._common import ROOT, cores, pin, print_table, run_benchmark, summary
from llmrelay.producer.follower import EventFollower, ReplayFilter
from llmrelay.producer.subscriptions import Subscriptions
from llmrelay.shared import keys
from llmrelay.shared.events import DoneEvent, TokenEvent, ToolCallEvent
from llmrelay.shared.models import LLMResponse
from llmrelay.worker.providers.base import ToolCallDelta
from llmrelay.worker.relay import JobEvents

PROVIDER = "openai"
GO = f"{keys.PREFIX}:bench:relay:go"
KINDS = ("text", "tool", "empty", "text_burst", "tool_burst")
CALL_ID, CALL_NAME = "call_bench0000000000000000", "lookup"


def fragments(count: int, size: int) -> list[str]:
    """``count`` slices of ``size`` characters of one JSON arguments text (quotes included)."""
    words = " ".join(f"w{i % 97}" for i in range(count * size))
    text = orjson.dumps({"query": words}).decode()
    return [text[i * size : (i + 1) * size] for i in range(count)]


# -- the writer process (the worker's side) -------------------------------------------------------------


async def write_rounds(redis_url: str) -> None:
    """Serve go signals (``kind request_id deltas size``) until ``stop``."""
    redis = Redis.from_url(redis_url)
    response = LLMResponse(request_id="bench", model="bench", provider=PROVIDER, content="")
    try:
        while True:
            _key, raw = await redis.blpop([GO], timeout=0)
            if raw == b"stop":
                return
            kind, request_id, count, size = raw.decode().split()
            await redis.hset(
                keys.state(PROVIDER, request_id), mapping={"deliveries": "1", "status": "running"}
            )
            writer = JobEvents(
                redis,
                PROVIDER,
                request_id,
                context={},
                stream_key=keys.work_stream(PROVIDER, "bench"),
                entry_id="0-1",
                deliveries="1",
                last_index=0,
                ttl_ms=60_000,
                namespace=keys.namespace(redis_url),
            )
            pieces = fragments(int(count), int(size)) if kind != "empty" else []
            for i, piece in enumerate(pieces):
                first = i == 0
                delta: str | ToolCallDelta = piece
                if kind.startswith("tool"):
                    delta = ToolCallDelta(0, CALL_ID if first else None, CALL_NAME if first else None, piece)
                if kind.endswith("burst"):
                    writer.push(delta)
                else:
                    await writer.push_first(delta)
            await writer.done(response)
    finally:
        await redis.aclose()


# -- this process (the producer's side) -----------------------------------------------------------------


async def one_round(
    redis: Redis, subs: Subscriptions, follower: EventFollower, kind: str, count: int, size: int
) -> tuple[float, int]:
    """Milliseconds from the go signal to the terminal event, and how many characters were relayed."""
    request_id = uuid.uuid4().hex
    replay = ReplayFilter()
    relayed = 0
    channel = keys.channel(PROVIDER, request_id, namespace=follower.namespace)
    async with subs.subscription(channel) as queue:
        t0 = time.perf_counter()
        await redis.rpush(GO, f"{kind} {request_id} {count} {size}")  # type: ignore[misc]
        async for event in follower.follow(
            PROVIDER, request_id, 0, time.monotonic() + 60, queue=queue, catch_up=False
        ):
            match event:
                case TokenEvent():
                    relayed += len(replay.token(event.text))
                case ToolCallEvent():
                    passed = replay.tool_call(event)
                    relayed += len(passed.arguments) if passed else 0
                case DoneEvent():
                    break
        elapsed = (time.perf_counter() - t0) * 1000
    await redis.delete(keys.state(PROVIDER, request_id), keys.events(PROVIDER, request_id))
    return elapsed, relayed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis = Redis.from_url(args.redis_url)
    pin(args.reader_core)
    subs = Subscriptions(redis, f"{keys.PREFIX}:bench:relay:{uuid.uuid4().hex[:8]}")
    await subs.start()
    follower = EventFollower(redis, subs, keys.namespace(args.redis_url))
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    load_mid: tuple[float, float, float] | None = None
    try:
        for r in range(args.warmup + args.rounds):
            order = KINDS[r % len(KINDS) :] + KINDS[: r % len(KINDS)]
            for kind in order:
                count = 0 if kind == "empty" else args.deltas
                ms, relayed = await one_round(redis, subs, follower, kind, count, args.size)
                if relayed != count * args.size:
                    raise RuntimeError(f"{kind} round relayed {relayed} of {count * args.size} characters")
                if r >= args.warmup:
                    times[kind].append(ms)
            if r == args.warmup + args.rounds // 2:
                load_mid = os.getloadavg()
    finally:
        await redis.rpush(GO, "stop")
        await subs.aclose()
        await redis.aclose()

    def per_delta(kind: str) -> list[float]:
        return [(t - e) / args.deltas for t, e in zip(times[kind], times["empty"], strict=True)]

    per = {
        mode: {"text_token": summary(per_delta(text)), "tool_call_delta": summary(per_delta(tool))}
        for mode, text, tool in (("paced", "text", "tool"), ("burst", "text_burst", "tool_burst"))
    }

    def ratio(mode: str) -> dict[str, float]:
        text_s, tool_s = per[mode]["text_token"], per[mode]["tool_call_delta"]
        return {q: round(tool_s[q] / text_s[q], 3) for q in ("p50", "p95", "p99", "mean")}

    return {
        "benchmark": "relay",
        "params": vars(args),
        "round_ms": {kind: summary(v) for kind, v in times.items()},
        "ms_per_delta": per,
        "ratio_tool_to_text": {mode: ratio(mode) for mode in per},
        "loadavg_mid": load_mid,
    }


@contextlib.contextmanager
def writer_process(redis_url: str, core: int | None) -> Iterator[None]:
    """The writer, pinned to ``core``; it stops at the ``stop`` signal, killed if it does not."""
    SyncRedis.from_url(redis_url).delete(GO)
    cmd = [sys.executable, "-m", "bench.relay", "--writer", "--redis-url", redis_url]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        yield
    finally:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def report(result: dict[str, Any], _concurrency: Any = None) -> None:
    rows = []
    for mode, per in result["ms_per_delta"].items():
        rows += [[f"{mode}: {name}", s["p50"], s["p95"], s["p99"]] for name, s in per.items()]
        ratio = result["ratio_tool_to_text"][mode]
        rows.append([f"{mode}: ratio tool delta / text token", ratio["p50"], ratio["p95"], ratio["p99"]])
    params = result["params"]
    shape = f"{params['deltas']} deltas of {params['size']} chars, {params['rounds']} rounds"
    title = f"relay cost per delta (ms; {shape})"
    print_table(title, rows, ["measure", "p50", "p95", "p99"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmrelay bench relay", description=__doc__)
    parser.add_argument("--rounds", type=int, default=150, help="rounds of each kind")
    parser.add_argument("--warmup", type=int, default=10, help="rounds of each kind not counted")
    parser.add_argument("--deltas", type=int, default=200, help="deltas per round")
    parser.add_argument("--size", type=int, default=8, help="characters per delta")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--json", default=None, help="where to write the JSON (default bench/results/relay.json)"
    )
    args = parser.parse_args(argv)
    if args.writer:
        try:
            import uvloop

            uvloop.run(write_rounds(args.redis_url))
        except ImportError:  # pragma: no cover
            asyncio.run(write_rounds(args.redis_url))
        return 0
    args.concurrency = None
    cpu = cores()
    args.writer_core, args.reader_core = (cpu[0], cpu[1]) if len(cpu) >= 2 else (None, None)
    with writer_process(args.redis_url, args.writer_core):
        return run_benchmark("relay", args, run, report)


if __name__ == "__main__":
    raise SystemExit(main())

"""Provider selection: the catalog lookup and the whole governance route of a request, in microseconds.

llmrelay bench selection [--n 200000] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench._common import machine, print_table, summary, write_json
from llmrelay.shared import Governance, LLMRequest, Settings

BATCH = 100


def measure(fn: Any, n: int) -> list[float]:
    """Per-call microseconds, timed in batches of 100 so the clock's own cost does not dominate."""
    out = []
    for _ in range(n // BATCH):
        t0 = time.perf_counter_ns()
        for _ in range(BATCH):
            fn()
        out.append((time.perf_counter_ns() - t0) / BATCH / 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmrelay bench selection", description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    at_start = machine()
    settings = Settings(_env_file=None)
    governance = Governance.from_settings(settings)
    catalog = governance.catalog
    by_model = LLMRequest(model="claude-sonnet-5-5", messages=[{"role": "user", "content": "hi"}])
    by_tier = LLMRequest(tier="fast", messages=[{"role": "user", "content": "hi"}])
    cases = {
        "provider_for(model)": lambda: catalog.provider_for("gemini-2.5-flash-lite"),
        "governance.check(model)": lambda: governance.check("gpt-6.1-terra"),
        "governance.route(request by model)": lambda: governance.route(by_model),
        "governance.route(request by tier)": lambda: governance.route(by_tier),
    }
    results = {name: summary(measure(fn, args.n)) for name, fn in cases.items()}
    print_table(
        "provider selection (µs per call)",
        [[name, s["p50"], s["p95"], s["p99"]] for name, s in results.items()],
        ["operation", "p50", "p95", "p99"],
    )
    out = write_json(
        "selection", {"benchmark": "selection", "us_per_call": results, "machine": at_start}, args.json
    )
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

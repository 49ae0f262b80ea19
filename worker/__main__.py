"""`python -m llmrelay.worker [--providers openai,anthropic] [--concurrency N]`: one worker process."""

from __future__ import annotations

import argparse

from llmrelay.shared.catalog import PROVIDERS
from llmrelay.worker.main import run_worker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmrelay.worker", description=__doc__)
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args(argv)
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    run_worker(providers=providers, concurrency=args.concurrency)


if __name__ == "__main__":
    main()

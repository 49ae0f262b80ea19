"""``python -m llmrelay.simulator --host 127.0.0.1 --port 8900 --ttft-ms 0 --reply-tokens 20``

Every :class:`llmrelay.simulator.SimulatorConfig` knob has a flag (``--ttft-ms``, ``--tokens-per-second``,
``--reply-tokens``, ``--slow-first-byte-ms``, ``--record/--no-record``, ``--record-limit``,
``--rate-limit-requests``, ``--rate-limit-tokens``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields

from .config import SimulatorConfig
from .server import DEFAULT_BACKLOG, serve

_KINDS = {"float": float, "int": int}
_HELP = {
    "ttft_ms": "time to first token, in ms",
    "tokens_per_second": "stream pacing (0 = no delay between chunks)",
    "reply_tokens": "reply length, in tokens",
    "slow_first_byte_ms": "delay before the response headers, in ms",
    "record": "record the requests received (GET /_sim/requests)",
    "record_limit": "how many requests to keep",
    "rate_limit_requests": "requests per minute reported in rate-limit headers",
    "rate_limit_tokens": "tokens per minute reported in rate-limit headers",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmrelay.simulator",
        description="Loopback simulator of the OpenAI, Anthropic and Gemini HTTP APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port (see --port-file)")
    parser.add_argument("--port-file", default=None, help="write the bound port to this file once listening")
    parser.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU core")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the process that started this one dies"
    )
    defaults = SimulatorConfig()
    for f in fields(SimulatorConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.type == "bool":
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=_HELP.get(f.name),
            )
        else:
            parser.add_argument(
                flag,
                dest=f.name,
                type=_KINDS[str(f.type)],
                default=default,
                metavar="N",
                help=f"{_HELP.get(f.name, f.name)} (default {default})",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = SimulatorConfig(**{f.name: getattr(args, f.name) for f in fields(SimulatorConfig)})
    serve(
        host=args.host,
        port=args.port,
        config=config,
        backlog=args.backlog,
        log_level=args.log_level,
        cpu=args.cpu,
        port_file=args.port_file,
        exit_with_parent=args.exit_with_parent,
    )


if __name__ == "__main__":
    main()

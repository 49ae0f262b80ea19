"""``python -m producer.api [--host H] [--port P]``: the façade alone, configured from the environment."""

from __future__ import annotations

import argparse

from llmrelay.producer.api.server import serve
from llmrelay.shared.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m producer.api", description="Run the llmrelay façade.")
    parser.add_argument("--host", help="address to bind (default: LLMRELAY_API_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: LLMRELAY_API_PORT or 8000)")
    args = parser.parse_args(argv)
    serve(Settings(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()

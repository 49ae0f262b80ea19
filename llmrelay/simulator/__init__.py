"""A loopback simulator of the OpenAI, Anthropic and Gemini HTTP APIs, for tests and benchmarks.

The official SDKs talk to it unchanged. Public API:

- :class:`SimulatorConfig` - the knobs (time to first token, tokens per second, reply length, ...).
- :func:`reply_for` ``(prompt, tokens) -> list[str]`` - the deterministic reply to a prompt.
- :func:`create_app` ``(config) -> SimulatorApp`` - the bare ASGI app.
- :func:`serve` ``(host, port, config, ...)`` - run it under uvicorn (blocking).
- :class:`SimulatorServer` - run it in a subprocess on a free port (a context manager for tests);
  :class:`ThreadedSimulatorServer` - the same in a thread of this process.

See :mod:`llmrelay.simulator.app` for the endpoints and the exceptions each SDK raises for each fault,
:mod:`llmrelay.simulator.reply` for prompts, replies and ``[[sim:...]]`` directives,
:mod:`llmrelay.simulator.faults` for scheduled faults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import SimulatorConfig
from .reply import clean_prompt, parse_directives, reply_for

if TYPE_CHECKING:
    from .app import SimulatorApp, create_app
    from .server import SimulatorServer, ThreadedSimulatorServer, serve

__all__ = [
    "SimulatorApp",
    "SimulatorConfig",
    "SimulatorServer",
    "ThreadedSimulatorServer",
    "clean_prompt",
    "create_app",
    "parse_directives",
    "reply_for",
    "serve",
]

_LAZY = {
    "SimulatorApp": "app",
    "create_app": "app",
    "SimulatorServer": "server",
    "ThreadedSimulatorServer": "server",
    "serve": "server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrelay.simulator' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)

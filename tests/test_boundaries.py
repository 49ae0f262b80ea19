"""The architecture's four rules, checked on the source, and the network guard that keeps tests local."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SDKS = {"openai", "anthropic", "google"}


def _imports(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("shared", {"producer", "worker", "simulator", "llmrelay_cli", *SDKS}),
        ("producer", {"worker", "simulator", "llmrelay_cli", *SDKS}),
        ("worker", {"producer", "simulator", "llmrelay_cli"}),
        ("simulator", {"shared", "producer", "worker", "llmrelay_cli"}),
    ],
)
def test_package_imports_stay_within_their_boundary(package: str, forbidden: set[str]) -> None:
    offences = {path: names & forbidden for path, names in _imports(package).items() if names & forbidden}
    assert offences == {}


def test_provider_sdks_are_imported_only_by_the_adapters() -> None:
    offences = {
        path: names & SDKS
        for path, names in _imports("worker").items()
        if names & SDKS and not path.startswith("worker/providers/")
    }
    assert offences == {}


def test_the_network_guard_refuses_non_loopback_addresses() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match="reach the network"):
        sock.connect(("203.0.113.7", 443))  # TEST-NET-3: refused by the guard before any packet


def test_the_network_guard_lets_loopback_through() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass

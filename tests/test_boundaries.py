"""The architecture's four rules, checked on the source, and the network guard that keeps tests local."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SDKS = {"openai", "anthropic", "google"}
#: The parts of the product, by the import name each has inside the one distinctive package.
PARTS = {
    "shared": "llmrelay.shared",
    "producer": "llmrelay.producer",
    "worker": "llmrelay.worker",
    "simulator": "llmrelay.simulator",
    "cli": "llmrelay.cli",
}
#: Folders that are importable from a checkout but never under their bare names.
BARE = {"shared", "producer", "worker", "simulator", "llmrelay_cli"}


def _part(module: str) -> str:
    """The product part (or the third-party root) an absolute import names."""
    for part, prefix in PARTS.items():
        if module == prefix or module.startswith(prefix + "."):
            return part
    return module.split(".")[0]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "llmrelay":
                names.update(f"llmrelay.{alias.name}" for alias in node.names)
    return names


def _imports(folder: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(ROOT)): {_part(name) for name in _imported(path)}
        for path in (ROOT / folder).rglob("*.py")
    }


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("shared", {"producer", "worker", "simulator", "cli", *SDKS}),
        ("producer", {"worker", "simulator", "cli", *SDKS}),
        ("worker", {"producer", "simulator", "cli"}),
        ("llmrelay/simulator", {"shared", "producer", "worker", "cli"}),
    ],
)
def test_package_imports_stay_within_their_boundary(folder: str, forbidden: set[str]) -> None:
    offences = {path: names & forbidden for path, names in _imports(folder).items() if names & forbidden}
    assert offences == {}


def test_provider_sdks_are_imported_only_by_the_adapters() -> None:
    offences = {
        path: names & SDKS
        for path, names in _imports("worker").items()
        if names & SDKS and not path.startswith("worker/providers/")
    }
    assert offences == {}


@pytest.mark.parametrize("folder", ["shared", "producer", "worker", "llmrelay", "tests", "bench"])
def test_nothing_imports_a_folder_by_its_bare_name(folder: str) -> None:
    """Only `llmrelay.*` is installed: a bare `import shared` would load a second copy, or someone else's."""
    offences = {
        str(path.relative_to(ROOT)): roots
        for path in (ROOT / folder).rglob("*.py")
        if (roots := {name.split(".")[0] for name in _imported(path)} & BARE)
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

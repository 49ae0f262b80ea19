"""The contract's boundaries: shared imports no product side, no provider SDK, and exports what it names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llmrelay import shared

SHARED_DIR = Path(shared.__file__).parent
FORBIDDEN = {
    "llmrelay.producer", "llmrelay.worker", "llmrelay.simulator", "llmrelay.cli", "bench",
    "openai", "anthropic", "google",
}
MODULES = sorted(SHARED_DIR.glob("*.py"))


def _root(module: str) -> str:
    """`llmrelay.worker.runner` -> `llmrelay.worker`; `openai.types` -> `openai`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "llmrelay" else parts[0]


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(_root(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(_root(node.module))
    return roots


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_shared_imports_neither_product_side_nor_provider_sdk(path: Path) -> None:
    assert imported_roots(path) & FORBIDDEN == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_module_starts_with_a_docstring(path: Path) -> None:
    assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))


def test_everything_in_all_is_importable() -> None:
    missing = [name for name in shared.__all__ if not hasattr(shared, name)]
    assert missing == []


def test_package_is_typed_and_ships_its_catalog() -> None:
    assert (SHARED_DIR / "py.typed").is_file()
    assert (SHARED_DIR / "catalog.toml").is_file()

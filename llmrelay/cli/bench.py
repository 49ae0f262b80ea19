"""`llmrelay bench`: find the benchmark modules in `bench/` and run one of them.

A benchmark is a module ``bench/<name>.py`` (not ``_``-prefixed) with a top-level ``main(argv) -> int``.
Modules are found by reading their source, so listing them imports nothing. The benchmarks are not part
of the wheel: they run from a source checkout (the one an editable install points at, or the current
directory).
"""

from __future__ import annotations

import ast
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Benchmark:
    name: str
    path: Path
    summary: str


def checkout_root() -> Path | None:
    """The source checkout holding ``bench/``: the one this package runs from, else the current directory."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / "bench" / "__init__.py").is_file():
            return root
    return None


def bench_dirs() -> list[Path]:
    root = checkout_root()
    return [root / "bench"] if root else []


def _describe(path: Path) -> str | None:
    """The module's first docstring line if it defines a top-level ``main``; None otherwise."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    has_main = any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main" for node in tree.body
    )
    if not has_main:
        return None
    doc = ast.get_docstring(tree) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def discover(directories: list[Path] | None = None) -> dict[str, Benchmark]:
    found: dict[str, Benchmark] = {}
    for directory in bench_dirs() if directories is None else directories:
        for path in sorted(directory.glob("*.py")):
            name = path.stem
            if name.startswith("_") or name in found:
                continue
            summary = _describe(path)
            if summary is not None:
                found[name] = Benchmark(name, path, summary)
    return found


def run(name: str, argv: list[str]) -> int:
    root = checkout_root()
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(f"bench.{name}")
    result = module.main(list(argv))
    return int(result or 0)

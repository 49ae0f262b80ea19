"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clitools import Spawned, clean_env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    started: list[Spawned] = []

    def start(args: list[str], env: dict[str, str] | None = None, name: str = "cmd") -> Spawned:
        spawned = Spawned(args, env if env is not None else clean_env(), tmp_path, tmp_path / f"{name}.log")
        started.append(spawned)
        return spawned

    yield start
    for spawned in started:
        spawned.kill_all()

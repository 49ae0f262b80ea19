"""Fixtures of the compatibility suite: one ``llmrelay up --simulate`` for the whole package, with a Redis
of its own; the skips of the tests that need an OpenAI route the façade does not serve yet; and
instructor's own venv, built in the background from the end of collection (it takes the registry's time)
while the other libraries' tests run, instructor's last.

The libraries are told before they are imported never to reach the internet: litellm fetches its model
cost map at import unless told to use the copy it ships, and has an offline mode for what else it would
fetch by itself (``litellm/litellm_core_utils/get_model_cost_map.py`` and ``offline_mode.py``, 1.110.2);
the Agents SDK exports traces unless disabled (``agents/tracing/provider.py``, 0.24.0); LangSmith traces
only when asked to. The test-wide socket guard (``tests/conftest.py``) fails any test that tries anyway.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_OFFLINE_MODE"] = "true"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

from tests.cli.clitools import Spawned, clean_env, free_port
from tests.compat.compat_support import Stack
from tests.compat.instructor_env import Build, python_of
from tests.support import wait_for

STARTUP_TIMEOUT = 120.0
HERE = Path(__file__).parent
INSTRUCTOR_TESTS = "test_instructor.py"
INSTRUCTOR_BUILD_TIMEOUT = 900.0

_instructor_build: list[Build] = []  # the one build of this session, once instructor's tests are collected


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Once the tests to run are known (after deselection): bounds that cover the shared fixtures' set-up
    (a test may be the one that starts the stack, or waits for instructor's venv); instructor's tests
    after the others, and its venv's build started."""
    mine = [item for item in items if item.path.parent == HERE and item.path.name == INSTRUCTOR_TESTS]
    for item in items:
        if item.path.parent == HERE:
            bound = STARTUP_TIMEOUT + 180 + (INSTRUCTOR_BUILD_TIMEOUT if item in mine else 0)
            item.add_marker(pytest.mark.timeout(bound))
    if not mine or _instructor_build or config.option.collectonly:
        return
    others = [i for i, item in enumerate(items) if item.path.parent == HERE and item not in mine]
    if others and others[-1] > items.index(mine[0]):
        for item in mine:
            items.remove(item)
        last = max(i for i, item in enumerate(items) if item.path.parent == HERE)
        items[last + 1 : last + 1] = mine
    _instructor_build.append(Build())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for build in _instructor_build:
        build.discard()


@pytest.fixture(scope="package")
def instructor_python() -> Path:
    """The python of instructor's own venv, once built; a skip saying why when it could not be."""
    assert _instructor_build, "the build starts when instructor's tests are collected"
    build = _instructor_build[0]
    failure = build.wait(INSTRUCTOR_BUILD_TIMEOUT)
    if failure is not None:
        pytest.skip(f"instructor needs a venv of its own (it pins an older openai), which failed: {failure}")
    return python_of(build.venv)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``llmrelay up --simulate`` on free ports; the Redis probe points where nothing listens, so the
    stack starts a Redis of its own (no other test's DB is touched, nor can its worker take their jobs)."""
    cwd = tmp_path_factory.mktemp("compat-up")
    port = free_port()
    env = clean_env(LLMRELAY_UP_REDIS_PROBE=f"127.0.0.1:{free_port()}")
    args = [
        "up",
        "--simulate",
        "--port",
        str(port),
        "--workers",
        "1",
        "--startup-timeout",
        str(STARTUP_TIMEOUT),
    ]
    spawned = Spawned(args, env, cwd, cwd / "up.log")
    try:
        wait_for(
            lambda: "Press Ctrl-C" in spawned.output(),
            timeout=STARTUP_TIMEOUT + 10,
            what="llmrelay up ready",
            proc=spawned.proc,
            log=spawned.log,
        )
        base = f"http://127.0.0.1:{port}"
        yield Stack(base)
    finally:
        spawned.kill_all()


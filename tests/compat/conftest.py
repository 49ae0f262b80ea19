"""Fixtures of the compatibility suite: one ``llmrelay up --simulate`` for the whole package, with a Redis
of its own; the skips of the tests that need an OpenAI route the façade does not serve yet; and
instructor's own venv, built in the background from the end of collection (it takes the registry's time,
not ours) while the other libraries' tests run first.

The libraries are told before they are imported never to reach the internet (litellm fetches its model
cost map at import unless told to use the copy it ships; LangSmith traces only when asked to); the
test-wide socket guard (``tests/conftest.py``) fails any test that tries anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_TELEMETRY"] = "False"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

from tests.cli.clitools import Spawned, clean_env, free_port  # noqa: E402
from tests.compat.compat_support import Stack  # noqa: E402
from tests.compat.instructor_env import PACKAGE, python_of  # noqa: E402
from tests.support import ROOT, wait_for  # noqa: E402

STARTUP_TIMEOUT = 120.0
#: The OpenAI routes some tests need, by the marker that says so.
ROUTE_OF_MARKER = {"needs_responses": "/v1/responses", "needs_embeddings": "/v1/embeddings"}


def _missing_routes(base: str) -> frozenset[str]:
    """The routes of ``ROUTE_OF_MARKER`` the façade answers 404 (an empty body gets a 400 where served)."""
    with httpx2.Client(timeout=30, trust_env=False) as client:
        return frozenset(r for r in ROUTE_OF_MARKER.values() if client.post(base + r, json={}).status_code == 404)


INSTRUCTOR_TESTS = "test_instructor.py"
INSTRUCTOR_BUILD_TIMEOUT = 900.0


@dataclass
class InstructorBuild:
    venv: Path
    proc: subprocess.Popen[bytes]
    log: Path


_instructor_build: InstructorBuild | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    global _instructor_build
    here = Path(__file__).parent
    mine = [item for item in items if item.path.parent == here and item.path.name == INSTRUCTOR_TESTS]
    if not mine or _instructor_build is not None:
        return
    # instructor's tests after the other libraries', so that its venv builds while those run
    others = [i for i, item in enumerate(items) if item.path.parent == here and item not in mine]
    if others and others[-1] > items.index(mine[0]):
        for item in mine:
            items.remove(item)
        last = max(i for i, item in enumerate(items) if item.path.parent == here)
        items[last + 1 : last + 1] = mine
    root = Path(tempfile.mkdtemp(prefix="llmrelay-instructor-"))
    log = root / "build.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.compat.instructor_env", str(root / "venv")],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _instructor_build = InstructorBuild(root / "venv", proc, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    build = _instructor_build
    if build is None:
        return
    if build.proc.poll() is None:
        build.proc.kill()
        build.proc.wait(30)
    shutil.rmtree(build.venv.parent, ignore_errors=True)


@pytest.fixture(scope="package")
def instructor_python() -> Path:
    """The python of instructor's own venv, once its build has ended; a skip saying why if it failed."""
    build = _instructor_build
    assert build is not None, "instructor's venv is started at collection"
    try:
        code = build.proc.wait(INSTRUCTOR_BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        build.proc.kill()
        pytest.fail(f"building instructor's venv took over {INSTRUCTOR_BUILD_TIMEOUT}s")
    if code != 0:
        tail = build.log.read_text(errors="replace")[-1500:]
        pytest.skip(f"instructor's own venv could not be built (pip install {PACKAGE} exited {code}): {tail}")
    return python_of(build.venv)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``llmrelay up --simulate`` on free ports; the Redis probe points where nothing listens, so the
    stack starts a Redis of its own (no other test's DB is touched, nor can its worker take their jobs)."""
    cwd = tmp_path_factory.mktemp("compat-up")
    port = free_port()
    env = clean_env(LLMRELAY_UP_REDIS_PROBE=f"127.0.0.1:{free_port()}")
    args = ["up", "--simulate", "--port", str(port), "--workers", "1", "--startup-timeout", str(STARTUP_TIMEOUT)]
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
        yield Stack(base, _missing_routes(base))
    finally:
        spawned.kill_all()


@pytest.fixture(autouse=True)
def _route_served(request: pytest.FixtureRequest, stack: Stack) -> None:
    for marker, route in ROUTE_OF_MARKER.items():
        if request.node.get_closest_marker(marker) and route in stack.missing_routes:
            pytest.skip(f"the façade answers 404 on POST {route}: that route is not served by this build")

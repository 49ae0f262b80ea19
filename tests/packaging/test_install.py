"""The wheel beside the PyPI distributions named like our folders: neither side breaks the other.

`shared`, `worker`, `producer`, `simulator` and `bench` are names of published distributions. The wheel
installs one import name, `llmrelay`, so a throwaway virtualenv holding it together with those
distributions keeps both sides whole: our catalog loads, `llmrelay up` serves, their modules stay theirs,
and uninstalling either side leaves the other alone. An app folder holding its own `shared/` or
`worker.py` shadows nothing of ours either.

The PyPI `simulator` cannot be installed at all (every release fails to build: its setup imports a
module it does not declare), so a stand-in top-level `simulator` package of the app takes its place.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tests.cli.clitools import clean_env, free_port, http_ok
from tests.support import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: Distributions on PyPI whose top-level import names are folders of this repository.
NAMESAKES = {"shared": "shared", "worker": "worker", "producer": "producer", "bench": "bench"}
PIP_TIMEOUT = 600


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=PIP_TIMEOUT, cwd=cwd, env=env
    )
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The llmrelay wheel, built from a copy of this checkout (so the build leaves nothing in it)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv"),
    )
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work, source)
    return next(work.glob("llmrelay-*.whl"))


def _pip(venv: Path, *args: str | Path) -> str:
    return _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", *args)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A virtualenv with the llmrelay wheel and the namesake distributions, nothing of ours else.

    Our third-party dependencies come from this test run's environment (one path line), so that the
    test installs only what it is about: the wheel and the namesakes (with what they need).
    """
    env_dir = tmp_path_factory.mktemp("packaging") / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # Every site directory this run imports from (a virtualenv may itself extend another by a .pth line).
    sites = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (site / "_deps.pth").write_text("\n".join(sites) + "\n")
    _pip(env_dir, "install", "-q", "--no-deps", wheel)
    _pip(env_dir, "install", "-q", *NAMESAKES)  # with their own dependencies, so that they work
    return env_dir


def _python(venv: Path, code: str, cwd: Path) -> dict[str, object]:
    env = clean_env()
    env.pop("PYTHONPATH", None)
    out = _run(venv / "bin" / "python", "-c", textwrap.dedent(code), cwd=cwd, env=env)
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """An application's folder with modules named like ours, first on its sys.path."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "__init__.py").write_text("ORIGIN = 'the app'\n")
    (tmp_path / "simulator").mkdir()
    (tmp_path / "simulator" / "__init__.py").write_text("ORIGIN = 'the app'\n")
    (tmp_path / "worker.py").write_text("ORIGIN = 'the app'\n")
    return tmp_path


CHECK = """
    import json, pathlib
    import llmrelay.shared, llmrelay.worker, llmrelay.producer, llmrelay.simulator
    from llmrelay.shared.catalog import Catalog
    import shared, worker, simulator
    print(json.dumps({
        "models": len(Catalog.load().models),
        "ours": [pathlib.Path(m.__file__).parts[-3:] for m in (llmrelay.shared, llmrelay.worker)],
        "shared": shared.ORIGIN, "worker": worker.ORIGIN, "simulator": simulator.ORIGIN,
    }))
"""


def test_the_wheel_installs_one_import_name_with_every_file(venv: Path, tmp_path: Path) -> None:
    code = """
        import importlib.metadata as md, json
        files = [f for f in md.distribution("llmrelay").files or [] if f.suffix in (".py", ".toml", ".typed")]
        print(json.dumps({"files": sorted(str(f) for f in files if f.parts[0] != ".."),
                          "bin": [str(f) for f in files if f.parts[0] == ".."]}))
    """
    seen = _python(venv, code, tmp_path)
    # Every source file of the package, links followed (llmrelay/shared -> shared/), and nothing else.
    source = sorted(
        str(Path(dirpath, name).relative_to(ROOT))
        for dirpath, _dirs, names in os.walk(ROOT / "llmrelay", followlinks=True)
        for name in names
        if name.endswith((".py", ".toml", ".typed")) and "__pycache__" not in dirpath
    )
    assert "llmrelay/shared/catalog.toml" in source
    assert "llmrelay/simulator/providers/openai.py" in source
    assert seen == {"files": source, "bin": []}


def test_the_namesakes_and_an_app_shadow_nothing_of_ours(venv: Path, app_dir: Path) -> None:
    seen = _python(venv, CHECK, app_dir)
    assert isinstance(seen["models"], int) and seen["models"] >= 5
    assert seen["ours"] == [["llmrelay", "shared", "__init__.py"], ["llmrelay", "worker", "__init__.py"]]
    assert (seen["shared"], seen["worker"], seen["simulator"]) == ("the app",) * 3


def test_the_namesakes_keep_their_own_files(venv: Path, tmp_path: Path) -> None:
    code = """
        import json, shared, worker, producer
        print(json.dumps({m.__name__: m.__file__ for m in (shared, worker, producer)}))
    """
    seen = _python(venv, code, tmp_path)
    for name, path in seen.items():
        assert f"site-packages/{name}" in str(path), (name, path)
        assert "llmrelay" not in str(path)


def test_llmrelay_up_serves_beside_the_namesakes(venv: Path, redis_base_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(REDIS_URL=redis_base_url)
    env.pop("PYTHONPATH", None)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [venv / "bin" / "llmrelay", "up", "--simulate", "--port", str(port), "--workers", "1"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=120, what="the façade",
                     proc=proc, log=log)  # fmt: skip
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0, log.read_text(errors="replace")[-4000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_uninstalling_either_side_leaves_the_other_whole(venv: Path, wheel: Path, tmp_path: Path) -> None:
    _pip(venv, "uninstall", "-y", "-q", "shared")
    try:
        seen = _python(venv, "import json; from llmrelay.shared.catalog import Catalog; "
                             "print(json.dumps({'models': len(Catalog.load().models)}))", tmp_path)  # fmt: skip
        assert isinstance(seen["models"], int) and seen["models"] >= 5
        _pip(venv, "uninstall", "-y", "-q", "llmrelay")
        seen = _python(venv, "import json, worker, producer; print(json.dumps({'ok': 1}))", tmp_path)
        assert seen == {"ok": 1}
    finally:
        _pip(venv, "install", "-q", "--no-deps", wheel)
        _pip(venv, "install", "-q", "shared")

"""A throwaway virtualenv for instructor, which pins an older ``openai`` than llmrelay needs.

``python -m tests.compat.instructor_env DIR`` makes DIR a venv whose own site-packages (instructor and
the ``openai`` it wants) come before this interpreter's (pydantic and the rest are reused, so only a few
packages are installed), with pip run from outside. It needs the package registry, as CI has.
:class:`Build` runs that in the background.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from tests.support import ROOT

PACKAGE = "instructor>=1.17"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def build(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    own = subprocess.run(
        [str(python_of(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Plain path lines: they go after the venv's own site-packages, so its openai shadows ours.
    outer = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (Path(own) / "outer-site-packages.pth").write_text("\n".join(outer) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python_of(venv)), "install", "--quiet", PACKAGE],
        check=True,
    )


class Build:
    """:func:`build` in a subprocess, in a temporary directory removed by :meth:`discard`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="llmrelay-instructor-"))
        self.venv = self.root / "venv"
        self.log = self.root / "build.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.compat.instructor_env", str(self.venv)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float) -> str | None:
        """None once the venv is ready; else why it is not (the build's exit code and output)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            return f"building it took over {timeout}s"
        if code == 0:
            return None
        return f"pip install {PACKAGE} exited {code}: {self.log.read_text(errors='replace')[-1500:]}"

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    build(Path(sys.argv[1]))

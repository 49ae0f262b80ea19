"""A throwaway virtualenv for instructor, which pins an older ``openai`` than llmrelay needs.

``python -m tests.compat.instructor_env DIR`` makes DIR a venv whose own site-packages (instructor and
the ``openai`` it wants) come before this interpreter's (pydantic and the rest are reused, so only a few
packages are installed), with pip run from outside. It needs the package registry, as CI has.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

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


if __name__ == "__main__":
    build(Path(sys.argv[1]))

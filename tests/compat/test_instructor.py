"""instructor against ``llmrelay up --simulate``, for a model of each provider: ``response_model`` in its
default tool mode (whole and streamed as partials), in JSON-schema mode, and parallel tools
(``Iterable[A | B]``). instructor 1.17 pins an older ``openai`` than llmrelay, so it runs in a venv of its
own (see ``instructor_env``), as ``instructor_probe`` in a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.compat.compat_support import MODELS, City, Stack, ToolBox, by_provider, expected_city

PROBE = Path(__file__).with_name("instructor_probe.py")
CASES = ("tools", "json_schema", "tools_streamed")


@pytest.fixture(scope="module")
def report(instructor_python: Path, stack: Stack) -> dict[str, Any]:
    """One run of the probe for every model and case (each case's failure is reported on its own)."""
    done = subprocess.run(
        [str(instructor_python), str(PROBE), stack.v1, *MODELS.values()],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    found: dict[str, Any] = json.loads(done.stdout)
    assert found["schema"] == City.model_json_schema(), "the probe's City is not the suite's"
    return found


@by_provider()
@pytest.mark.parametrize("case", CASES)
def test_response_model(report: dict[str, Any], model: str, case: str) -> None:
    assert report[f"{model}:{case}"] == {"ok": expected_city().model_dump()}


@by_provider()
def test_parallel_tools(report: dict[str, Any], model: str) -> None:
    expected = [[{"get_weather": "Weather", "get_time": "Time"}[name], args] for name, args in ToolBox.BOTH]
    assert report[f"{model}:parallel_tools"] == {"ok": expected}

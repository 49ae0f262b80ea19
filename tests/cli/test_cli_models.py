"""`llmrelay models`: the catalog with lifecycle, capabilities and prices, as a table or as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrelay.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no .env of the working directory, no catalog or allow-list of the shell."""
    monkeypatch.chdir(tmp_path)
    for name in ("ALLOWED_MODELS", "LLMRELAY_CATALOG_FILE", "LLM_DEFAULT_MODEL"):
        monkeypatch.delenv(name, raising=False)


def _json(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    result = runner.invoke(app, ["models", "--json", *args], env=env)
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


def test_json_lists_every_model_with_lifecycle_capabilities_and_prices() -> None:
    payload = _json("--on", "2026-12-01")
    assert payload["date"] == "2026-12-01" and payload["prices_as_of"] == "2026-12-01"
    models = {m["id"]: m for m in payload["models"]}  # type: ignore[attr-defined]
    sonnet = models["claude-3-5-sonnet"]
    assert (sonnet["lifecycle"], sonnet["retires_on"], sonnet["successor"], sonnet["allowed"]) == (
        "retired", "2025-10-22", "claude-sonnet-5-5", False,
    )  # fmt: skip
    sol = models["gpt-6.2-sol"]
    assert (sol["lifecycle"], sol["allowed"], sol["cached_input_per_mtok"], sol["input_per_mtok"]) == (
        "live", True, 0.1, 2.0,
    )  # fmt: skip
    assert sol["capabilities"]["reasoning"] is True
    assert models["gpt-4.1"]["capabilities"]["reasoning"] is False
    assert (models["gemini-embedding-001"]["kind"], models["gemini-embedding-001"]["dimensions"]) == (
        "embedding", 3072,
    )  # fmt: skip


def test_the_date_moves_a_model_through_its_lifecycle() -> None:
    before = {m["id"]: m for m in _json("--on", "2026-06-10")["models"]}  # type: ignore[attr-defined]
    during = {m["id"]: m for m in _json("--on", "2026-12-10")["models"]}  # type: ignore[attr-defined]
    after = {m["id"]: m for m in _json("--on", "2026-12-11")["models"]}  # type: ignore[attr-defined]
    assert [d["gpt-5"]["lifecycle"] for d in (before, during, after)] == ["live", "deprecated", "retired"]


def test_an_operator_catalog_and_allow_list_are_shown(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[models."gemini-2.0-flash"]\nserved = true\ninput_per_mtok = 0.05\n', encoding="utf-8")
    env = {"LLMRELAY_CATALOG_FILE": str(catalog), "ALLOWED_MODELS": "gemini-2.0-flash-001,gpt-6-luna"}
    models = {m["id"]: m for m in _json("--on", "2026-12-01", env=env)["models"]}  # type: ignore[attr-defined]
    flash = models["gemini-2.0-flash"]
    assert (flash["served"], flash["lifecycle"], flash["input_per_mtok"], flash["allowed"]) == (
        True, "retired", 0.05, True,
    )  # fmt: skip
    assert [name for name, m in models.items() if m["allowed"]] == ["gpt-6-luna", "gemini-2.0-flash"]


def test_the_table_names_each_model_with_its_lifecycle() -> None:
    result = runner.invoke(app, ["models", "--on", "2026-12-01"], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 5}
    assert "retired on 2025-10-22 -> claude-sonnet-5-5" in lines["claude-3-5-sonnet"]
    assert "deprecated until 2026-12-11 -> gpt-6.1-sol" in lines["gpt-5"]
    assert "1536 dims" in lines["text-embedding-3-small"]
    assert "tools vision pdf schema reason" in lines["claude-sonnet-5-5"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--on", "tomorrow"], {}, "--on must be a date"),
        ([], {"LLMRELAY_CATALOG_FILE": "/nonexistent/catalog.toml"}, "Invalid catalog"),
    ],
)
def test_bad_input_is_refused_clearly(args: list[str], env: dict[str, str], message: str) -> None:
    result = runner.invoke(app, ["models", *args], env=env)
    assert result.exit_code == 2
    assert message in result.output

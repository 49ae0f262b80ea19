"""The command line's surface: every command has a --help, options reach the code, errors are clear."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from clitools import flat, free_port
from typer.testing import CliRunner

import bench
from llmrelay.cli import bench as benchmarks
from llmrelay.cli import redis_server
from llmrelay.cli.main import app
from llmrelay.simulator.config import SimulatorConfig

runner = CliRunner()

COMMANDS = ["up", "worker", "api", "simulator", "complete", "stream", "bench", "batch", "models"]


def _commands() -> dict[str, Any]:
    # typer carries its own copy of click: look at the objects, not at their classes
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _command(name: str) -> Any:
    return _commands()[name]


def _options(name: str) -> list[Any]:
    return [p for p in _command(name).params if p.param_type_name == "option"]


def test_top_level_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_the_commands_are_those_of_the_interface() -> None:
    assert sorted(_commands()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = _command(name)
    assert command.help, f"{name} has no description"
    for param in _options(name):
        if not param.hidden:
            assert param.help, f"{name} {param.opts} has no help text"
            assert param.opts[0] in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("llmrelay ")


def test_simulator_command_has_an_option_for_every_knob() -> None:
    options = {p.name for p in _command("simulator").params}
    knobs = {f.name for f in dataclasses.fields(SimulatorConfig)}
    assert knobs <= options
    defaults = SimulatorConfig()
    for param in _command("simulator").params:
        if param.name in knobs:
            assert param.default == getattr(defaults, param.name)


def test_up_hides_its_redis_probe_option() -> None:
    probe = next(p for p in _options("up") if p.name == "redis_probe")
    assert probe.hidden
    assert probe.envvar == "LLMRELAY_UP_REDIS_PROBE"


def test_worker_refuses_an_unknown_provider() -> None:
    result = runner.invoke(app, ["worker", "--providers", "openai,mistral"])
    assert result.exit_code == 2
    assert "mistral" in result.output


def test_up_rejects_a_malformed_probe_address() -> None:
    result = runner.invoke(app, ["up", "--redis-probe", "nonsense"])
    assert result.exit_code == 2


def test_up_explains_an_unreachable_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:secretpw@127.0.0.1:{free_port()}/0")
    result = runner.invoke(app, ["up", "--port", str(free_port())])
    assert result.exit_code == 1
    assert "REDIS_URL" in result.output
    assert "does not answer" in flat(result.output)
    assert "secretpw" not in result.output


def test_up_explains_a_missing_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(redis_server, "find_redis_server", lambda: None)
    args = ["up", "--port", str(free_port()), "--redis-probe", f"127.0.0.1:{free_port()}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "llmrelay[embedded-redis]" in flat(result.output)


def test_up_refuses_a_port_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["up", "--port", str(port)])
    assert result.exit_code == 1
    assert "already in use" in flat(result.output)


# -- complete / stream without a service ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["complete", "stream"])
def test_client_commands_say_when_nothing_is_listening(command: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, [command, "hello", "--url", url])
    assert result.exit_code == 1
    assert "is `llmrelay up`" in flat(result.output)
    assert "Traceback" not in result.output


def test_client_commands_refuse_an_empty_prompt() -> None:
    result = runner.invoke(app, ["complete", "   "])
    assert result.exit_code == 2


# -- bench ----------------------------------------------------------------------------------------------


def _write_benchmarks(directory: Path) -> None:
    (directory / "echo_args.py").write_text(
        '"""Echoes its arguments."""\n\nimport sys\n\n\ndef main(argv):\n'
        "    print('ARGS', argv)\n    return 3 if argv == ['--fail'] else 0\n"
    )
    (directory / "_private.py").write_text("def main(argv):\n    return 0\n")
    (directory / "helpers.py").write_text("def other():\n    return 0\n")
    (directory / "broken.py").write_text("def main(:\n")


def test_bench_discovers_modules_with_main(tmp_path: Path) -> None:
    _write_benchmarks(tmp_path)
    found = benchmarks.discover([tmp_path])
    assert list(found) == ["echo_args"]
    assert found["echo_args"].summary == "Echoes its arguments."


def test_bench_list_and_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_benchmarks(tmp_path)
    monkeypatch.setattr(bench, "__path__", [*bench.__path__, str(tmp_path)])
    checkout = benchmarks.bench_dirs()
    monkeypatch.setattr(benchmarks, "bench_dirs", lambda: [*checkout, tmp_path])
    monkeypatch.delitem(sys.modules, "bench.echo_args", raising=False)
    try:
        listed = runner.invoke(app, ["bench", "--list"])
        assert listed.exit_code == 0
        assert "echo_args" in listed.output
        assert "_private" not in listed.output
        assert "helpers" not in listed.output

        ran = runner.invoke(app, ["bench", "echo_args", "--n", "3", "--help"])
        assert ran.exit_code == 0, ran.output
        assert "ARGS ['--n', '3', '--help']" in ran.output

        failed = runner.invoke(app, ["bench", "echo_args", "--fail"])
        assert failed.exit_code == 3
    finally:
        sys.modules.pop("bench.echo_args", None)


def test_bench_names_an_unknown_benchmark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmarks, "bench_dirs", lambda: [tmp_path])
    result = runner.invoke(app, ["bench", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_bench_list_is_empty_without_benchmarks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmarks, "bench_dirs", lambda: [tmp_path])
    result = runner.invoke(app, ["bench", "--list"])
    assert result.exit_code == 0
    assert "No benchmarks" in result.output

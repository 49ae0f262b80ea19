"""`llmrelay batch`: the request file, each subcommand's help, and a batch run through a live façade."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import typer
import uvicorn
from clitools import LLMRELAY, clean_env, flat, free_port
from typer.testing import CliRunner

from llmrelay.cli.batch import BatchFileError, item_index, parse_requests
from llmrelay.cli.main import app
from llmrelay.producer.api import create_app
from llmrelay.shared import Settings
from llmrelay.shared.keys import valid_request_id
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker

runner = CliRunner()

SUBCOMMANDS = ["submit", "status", "results", "cancel"]

KEYS = {
    "OPENAI_API_KEY": "sk-test-cli-batch-000000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-cli-000000000000000000",
    "GEMINI_API_KEY": "AIzaTestCli00000000000000000000000000000",
}


def _subcommand(name: str) -> Any:
    group = typer.main.get_command(app).commands["batch"]  # type: ignore[attr-defined]
    return group.commands[name]


# -- help -----------------------------------------------------------------------------------------------


def test_batch_is_listed_with_its_subcommands() -> None:
    result = runner.invoke(app, ["batch", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in SUBCOMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_batch_subcommand_explains_itself(name: str) -> None:
    result = runner.invoke(app, ["batch", name, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = _subcommand(name)
    assert command.help, f"batch {name} has no description"
    for param in command.params:
        assert param.help, f"batch {name} {param.name} has no help text"
        if param.param_type_name == "option":
            assert param.opts[0] in result.output


# -- the request file -----------------------------------------------------------------------------------


def test_prompt_lines_become_user_messages_and_blank_lines_are_skipped() -> None:
    lines = [
        '{"prompt": "first", "max_tokens": 5}',
        "",
        '{"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "second"}]}',
        "   ",
        '{"prompt": "third", "model": "gemini-3.8-flash"}',
    ]
    parsed = parse_requests(lines, model="gpt-6.1-terra")
    assert parsed.requests == [
        {"max_tokens": 5, "messages": [{"role": "user", "content": "first"}], "model": "gpt-6.1-terra"},
        {"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "second"}]},
        {"model": "gemini-3.8-flash", "messages": [{"role": "user", "content": "third"}]},
    ]
    assert parsed.lines == [1, 3, 5]
    assert parsed.line_of(2) == 5
    assert parsed.line_of(3) is None


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ('{"prompt": "unterminated', "not valid JSON"),
        ('["prompt", "x"]', "expected a JSON object, got list"),
        ('"just a string"', "expected a JSON object, got str"),
        ('{"prompt": "x", "messages": []}', 'either "prompt" or "messages"'),
        ('{"prompt": ""}', '"prompt" must be a non-empty string'),
        ('{"prompt": 42}', '"prompt" must be a non-empty string'),
        ('{"prompt": "x", "colour": "red"}', "colour: Extra inputs are not permitted"),
        ('{"prompt": "x", "max_tokens": 0}', "max_tokens: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_line_is_named_by_its_number(bad: str, says: str) -> None:
    lines = ['{"prompt": "fine"}', "", bad, '{"prompt": "also fine"}']
    with pytest.raises(BatchFileError) as caught:
        parse_requests(lines)
    assert caught.value.line == 3
    assert str(caught.value).startswith("line 3: ")
    assert says in str(caught.value)


def test_a_file_without_requests_is_refused() -> None:
    with pytest.raises(BatchFileError, match="no requests") as caught:
        parse_requests(["", "  "])
    assert caught.value.line is None


def test_the_refused_item_is_found_in_either_kind_of_error() -> None:
    service = {"type": "ModelNotAllowedError", "code": -32002, "data": {"model": "gpt-6.1-sol", "index": 3}}
    invalid = {"errors": [{"loc": ["requests", 4, "model"], "msg": "too long", "type": "string_too_long"}]}
    assert item_index(service) == 3
    assert item_index(invalid) == 4
    assert item_index({"errors": [{"loc": ["batch_id"], "msg": "bad"}]}) is None
    assert item_index(None) is None


def test_submit_names_the_bad_line_and_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text('{"prompt": "fine"}\n{"prompt": "broken"\n')
    # Nothing listens at this address: had the command sent anything, it would say it cannot connect.
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["batch", "submit", str(path), "--url", url])
    assert result.exit_code == 2
    assert f"{path}, line 2: not valid JSON" in flat(result.output)
    assert "connect" not in result.output


def test_submit_reads_standard_input_and_names_it_in_errors() -> None:
    result = runner.invoke(app, ["batch", "submit", "-"], input="[1, 2]\n")
    assert result.exit_code == 2
    assert "standard input, line 1: expected a JSON object" in flat(result.output)


def test_a_malformed_batch_id_is_refused_before_any_call() -> None:
    result = runner.invoke(app, ["batch", "status", "no spaces/allowed"])
    assert result.exit_code == 2
    assert "a batch id is" in flat(result.output)


def test_an_unreadable_file_is_explained(tmp_path: Path) -> None:
    result = runner.invoke(app, ["batch", "submit", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2
    assert "cannot read it" in flat(result.output)


# -- against a live façade ------------------------------------------------------------------------------


@pytest.fixture
async def facade(redis_url: str) -> AsyncIterator[str]:
    """The façade served by uvicorn on a free port, with one in-process worker and the simulator."""
    with SimulatorServer() as sim:
        settings = Settings(
            _env_file=None,
            **KEYS,
            REDIS_URL=redis_url,
            OPENAI_BASE_URL=sim.openai_base_url,
            ANTHROPIC_BASE_URL=sim.anthropic_base_url,
            GEMINI_BASE_URL=sim.gemini_base_url,
            LLM_MAX_RETRIES=0,
            LLMRELAY_LOG_FORMAT="json",
        )
        worker = Worker(settings, concurrency=16)
        await worker.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(create_app(settings), lifespan="on", log_config=None, access_log=False)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert not task.done() and time.monotonic() < deadline, "the façade did not start"
                await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            await worker.stop(grace=2)


async def llmrelay(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command line in a subprocess without blocking the loop that serves the façade."""
    return await asyncio.to_thread(
        subprocess.run,
        [*LLMRELAY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(COLUMNS="200"),
        cwd=cwd,
        timeout=60,
    )


async def test_submit_wait_then_results_through_a_live_facade(facade: str, tmp_path: Path) -> None:
    prompts = [f"batch line {n} [[sim:tokens=6]]" for n in range(5)]
    lines = [json.dumps({"prompt": p}) for p in prompts[:4]]
    lines.insert(2, "")  # a blank line: skipped, and the items keep their order
    lines.append(
        json.dumps({"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": prompts[4]}]})
    )
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(lines) + "\n")

    submitted = await llmrelay(
        "batch", "submit", str(source), "--model", "gpt-6.1-terra", "--batch-id", "cli-e2e", "--wait",
        "--url", facade, cwd=tmp_path,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "cli-e2e"
    assert "batch cli-e2e done: 5 done · 0 failed · 0 cancelled of 5" in flat(submitted.stderr)

    status = await llmrelay("batch", "status", "cli-e2e", "--json", "--url", facade, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    found = json.loads(status.stdout)
    assert (found["state"], found["finished"], found["counts"]) == ("done", True, {"done": 5})

    out = tmp_path / "results.jsonl"
    fetched = await llmrelay(
        "batch", "results", "cli-e2e", "--output", str(out), "--page-size", "2", "--url", facade, cwd=tmp_path
    )
    assert fetched.returncode == 0, fetched.stderr
    assert f"wrote 5 results to {out}" in flat(fetched.stderr)
    items = [json.loads(line) for line in out.read_text().splitlines()]
    assert [item["index"] for item in items] == [0, 1, 2, 3, 4]
    assert [item["request_id"] for item in items] == [f"cli-e2e-{n:06d}" for n in range(5)]
    assert {item["status"] for item in items} == {"done"}
    assert [item["response"]["content"] for item in items] == ["".join(reply_for(p, 6)) for p in prompts]
    assert [item["response"]["model"] for item in items] == ["gpt-6.1-terra"] * 4 + ["claude-haiku-5-5"]

    table = await llmrelay("batch", "status", "cli-e2e", "--url", facade, cwd=tmp_path)
    assert "state done" in flat(table.stdout)
    assert "5 of 5 (100%)" in flat(table.stdout)


async def test_refused_item_is_traced_to_its_line_and_unknown_batches_are_reported(
    facade: str, tmp_path: Path
) -> None:
    source = tmp_path / "requests.jsonl"
    source.write_text('{"prompt": "a"}\n\n{"prompt": "b", "model": "no-such-model"}\n')
    refused = await llmrelay(
        "batch", "submit", str(source), "-m", "gpt-6.1-terra", "--url", facade, cwd=tmp_path
    )
    assert refused.returncode == 1
    assert "the request on line 3" in flat(refused.stderr)
    assert refused.stdout == ""

    for command in ("status", "results", "cancel"):
        missing = await llmrelay("batch", command, "never-submitted", "--url", facade, cwd=tmp_path)
        assert missing.returncode == 1, command
        assert "error -32033" in flat(missing.stderr), command

    line = json.dumps({"prompt": "via stdin [[sim:tokens=3]]"}) + "\n"
    piped = await llmrelay(
        "batch", "submit", "-", "-m", "gemini-3.8-flash", "--url", facade, cwd=tmp_path, stdin=line
    )
    assert piped.returncode == 0, piped.stderr
    batch_id = piped.stdout.strip()
    assert valid_request_id(batch_id)
    cancelled = await llmrelay("batch", "cancel", batch_id, "--url", facade, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert re.fullmatch(rf"cancelled [01] items of batch {re.escape(batch_id)}", cancelled.stdout.strip())

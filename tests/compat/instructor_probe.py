"""Run inside instructor's own venv: instructor against the façade at ``argv[1]`` for the models that follow.

Prints one JSON object: instructor's version, the schema of ``City`` (so the test can tell it is its
own), and for each ``model:case`` either ``{"ok": <result>}`` or ``{"error": <repr>}``. Only loopback
addresses may be reached, as in the test process.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Iterable
from typing import Any

_connect = socket.socket.connect


def _loopback_only(sock: socket.socket, address: Any) -> Any:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = str(address[0])
        if host != "localhost" and not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            raise RuntimeError(f"tried to reach the network: {address!r}")
    return _connect(sock, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]

import instructor  # noqa: E402
import openai  # noqa: E402
from pydantic import BaseModel  # noqa: E402


class City(BaseModel):
    """The structured output every library is asked for."""

    name: str
    population: int


class Weather(BaseModel):
    """The weather in a city."""

    city: str


class Time(BaseModel):
    """The time in a time zone."""

    zone: str


def run(client: openai.OpenAI, model: str, case: str) -> Any:
    ask = [{"role": "user", "content": "A city, please."}]
    if case == "tools":
        ic = instructor.from_openai(client, mode=instructor.Mode.TOOLS)
        return ic.chat.completions.create(model=model, response_model=City, messages=ask).model_dump()
    if case == "json_schema":
        ic = instructor.from_openai(client, mode=instructor.Mode.JSON_SCHEMA)
        return ic.chat.completions.create(model=model, response_model=City, messages=ask).model_dump()
    if case == "tools_streamed":
        ic = instructor.from_openai(client, mode=instructor.Mode.TOOLS)
        partials = list(ic.chat.completions.create_partial(model=model, response_model=City, messages=ask))
        return partials[-1].model_dump()
    if case == "parallel_tools":
        ic = instructor.from_openai(client, mode=instructor.Mode.PARALLEL_TOOLS)
        prompt = [{"role": "user", "content": "The weather and the time in Oslo. [[sim:calls=2]]"}]
        found = ic.chat.completions.create(
            model=model,
            response_model=Iterable[Weather | Time],  # type: ignore[arg-type]
            messages=prompt,
        )
        return [[type(item).__name__, item.model_dump()] for item in found]
    raise ValueError(case)


def main() -> None:
    base, models = sys.argv[1], sys.argv[2:]
    client = openai.OpenAI(base_url=base, api_key="sk-compat-unused", max_retries=0, timeout=60)
    report: dict[str, Any] = {"instructor": instructor.__version__, "openai": openai.__version__}
    report["schema"] = City.model_json_schema()
    for model in models:
        for case in ("tools", "json_schema", "tools_streamed", "parallel_tools"):
            try:
                report[f"{model}:{case}"] = {"ok": run(client, model, case)}
            except Exception as exc:
                report[f"{model}:{case}"] = {"error": repr(exc)[:2000]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()

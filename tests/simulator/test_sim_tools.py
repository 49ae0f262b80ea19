"""The simulator's tool-call plan and schema-shaped values, shared by the three wire formats."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from llmrelay.simulator.reply import parse_directives
from llmrelay.simulator.tools import call_id, instance_of, json_tokens, plan_calls

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}}},
    {"type": "object", "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["unit"]},
    {"type": "array", "items": {"type": "number"}, "minItems": 2},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}, "ok": {"type": "boolean"}}},
    {"anyOf": [{"type": "string", "minLength": 12}, {"type": "null"}]},
    {"type": ["null", "integer"], "exclusiveMinimum": 4},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}, "n": {"const": 7}}},
    {"type": "object", "properties": {"inner": {"type": "object", "properties": {"x": {"type": "number"}}}}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_instance_of_validates_against_its_schema(schema: dict[str, Any]) -> None:
    value = instance_of(schema)
    jsonschema.validate(value, schema)
    assert instance_of(schema) == value  # deterministic


TOOLS = [("get_weather", SCHEMAS[0]), ("get_time", SCHEMAS[3]), ("lookup", SCHEMAS[1])]


def test_auto_calls_the_first_tool_until_a_result_comes_back() -> None:
    [call] = plan_calls(TOOLS, "auto", answered=False, calls=None)
    assert call.name == "get_weather"
    jsonschema.validate(call.arguments, SCHEMAS[0])
    assert plan_calls(TOOLS, "auto", answered=True, calls=None) == []
    assert plan_calls(TOOLS, None, answered=True, calls=None) == []


def test_none_never_calls_and_required_or_a_name_always_does() -> None:
    assert plan_calls(TOOLS, "none", answered=False, calls=3) == []
    assert [c.name for c in plan_calls(TOOLS, "required", answered=True, calls=None)] == ["get_weather"]
    assert [c.name for c in plan_calls(TOOLS, "lookup", answered=True, calls=3)] == ["lookup"]
    assert plan_calls([], "auto", answered=False, calls=2) == []


def test_calls_directive_makes_parallel_calls_unless_they_are_off() -> None:
    directives = parse_directives("weather and time please [[sim:calls=2]]")
    assert directives.calls == 2
    names = [c.name for c in plan_calls(TOOLS, "auto", answered=False, calls=directives.calls)]
    assert names == ["get_weather", "get_time"]
    assert len(plan_calls(TOOLS, "auto", answered=False, calls=9)) == len(TOOLS)
    assert len(plan_calls(TOOLS, "auto", answered=False, calls=2, parallel=False)) == 1


def test_call_ids_are_stable_per_response_and_distinct_per_call() -> None:
    assert call_id("call_", "r1", 0) == call_id("call_", "r1", 0)
    assert len({call_id("call_", "r1", 0), call_id("call_", "r1", 1), call_id("call_", "r2", 0)}) == 3
    assert call_id("toolu_", "r1", 0).startswith("toolu_")


def test_json_tokens_join_into_a_value_of_the_schema() -> None:
    import orjson

    pieces = json_tokens(SCHEMAS[0], "weather in oslo", 5)
    assert len(pieces) > 1
    value = orjson.loads("".join(pieces))
    jsonschema.validate(value, SCHEMAS[0])
    loose = orjson.loads("".join(json_tokens({}, "weather in oslo", 5)))
    assert set(loose) == {"reply"} and len(loose["reply"].split()) == 5

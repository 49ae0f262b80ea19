"""What the compatibility tests share: the running stack, the providers' models, the Python tools the
libraries call, the structured-output model, a tiny image, and the values the simulator answers with.

The simulator is deterministic (see ``llmrelay.simulator.tools``): it calls the declared tools with
arguments built from their JSON Schemas (a string is ``"alpha"``), ``[[sim:calls=2]]`` in the prompt
makes it call two tools at once, it answers in text once the last turn is a tool result, and a JSON reply
is a value of the requested schema. So every expected value below is computed from a schema, not typed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from llmrelay.simulator.providers._format import MEDIA_TOKENS
from llmrelay.simulator.tools import instance_of
from tests.support import GEMINI_EMBEDDING_MODEL, MODEL_OF, OPENAI_EMBEDDING_MODEL

__all__ = [
    "API_KEY",
    "EMBEDDING_MODELS",
    "MEDIA_TOKENS",
    "MODELS",
    "PARALLEL_PROMPT",
    "PNG_B64",
    "PNG_BYTES",
    "PNG_DATA_URL",
    "City",
    "Stack",
    "ToolBox",
    "by_embedding_model",
    "by_provider",
    "expected_city",
]

#: Any bearer token: the stack runs without LLMRELAY_API_TOKEN.
API_KEY = "sk-compat-unused"

MODELS = MODEL_OF
EMBEDDING_MODELS = {"openai": OPENAI_EMBEDDING_MODEL, "gemini": GEMINI_EMBEDDING_MODEL}

#: A prompt that makes the simulator call both declared tools in one turn.
PARALLEL_PROMPT = "What is the weather and the time in Oslo? [[sim:calls=2]]"

#: A 1x1 PNG.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PNG_BYTES = base64.b64decode(PNG_B64)
PNG_DATA_URL = f"data:image/png;base64,{PNG_B64}"


def by_provider(*providers: str) -> pytest.MarkDecorator:
    """Parametrize a test over the model of each named provider (all three by default)."""
    names = providers or tuple(MODELS)
    return pytest.mark.parametrize("model", [pytest.param(MODELS[p], id=p) for p in names])


def by_embedding_model() -> pytest.MarkDecorator:
    """Parametrize a test over the embedding model of each provider that has one."""
    return pytest.mark.parametrize("model", [pytest.param(m, id=p) for p, m in EMBEDDING_MODELS.items()])


#: The OpenAI routes some tests need, by the marker that says so.
@dataclass(frozen=True)
class Stack:
    """A running ``llmrelay up --simulate``: where its façade is."""

    base: str

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"


class City(BaseModel):
    """The structured output every library is asked for."""

    name: str
    population: int


def expected_city() -> City:
    """What the simulator answers for ``City``'s schema."""
    return City.model_validate(instance_of(City.model_json_schema()))


@dataclass
class ToolBox:
    """Two Python tools that record how they were called, as a library's tool loop calls them."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def get_weather(self, city: str) -> str:
        """The weather in a city."""
        self.calls.append(("get_weather", {"city": city}))
        return f"sunny in {city}"

    def get_time(self, zone: str) -> str:
        """The time in a time zone."""
        self.calls.append(("get_time", {"zone": zone}))
        return f"noon in {zone}"

    def run(self, name: str, arguments: dict[str, Any]) -> str:
        """Call one tool by name (for the libraries whose loop the caller writes)."""
        tool = {"get_weather": self.get_weather, "get_time": self.get_time}[name]
        return tool(**arguments)

    @staticmethod
    def schemas() -> list[dict[str, Any]]:
        """The two tools in OpenAI's chat-completions shape."""
        return [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": description,
                    "parameters": {
                        "type": "object",
                        "properties": {arg: {"type": "string"}},
                        "required": [arg],
                        "additionalProperties": False,
                    },
                },
            }
            for name, description, arg in (
                ("get_weather", "The weather in a city.", "city"),
                ("get_time", "The time in a time zone.", "zone"),
            )
        ]

    #: What the simulator calls them with (a string argument is "alpha").
    BOTH: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("get_weather", {"city": "alpha"}),
        ("get_time", {"zone": "alpha"}),
    ]
    WEATHER: ClassVar[list[tuple[str, dict[str, Any]]]] = BOTH[:1]

"""The models each simulated provider lists (any model name is served; these are only listed)."""

from __future__ import annotations

from typing import Any

from .asgi import Scope

OPENAI_MODELS = (
    "gpt-6.2-astra",
    "gpt-6.2-sol",
    "gpt-6.1-sol",
    "gpt-6.1-sol-2026-09-29",
    "gpt-6.1-terra",
    "gpt-6-luna",
    "gpt-5",
    "gpt-5-2025-08-07",
    "gpt-5-mini",
    "gpt-5-mini-2025-08-07",
    "gpt-4.1",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini",
    "gpt-4.1-mini-2025-04-14",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
ANTHROPIC_MODELS = (
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-haiku-4-5-20251001",
)
GEMINI_MODELS = (
    "gemini-3.8-flash",
    "gemini-3.5-flash-lite",
    "gemini-2.5-flash-lite",
    "gemini-embedding-001",
)


def listing(scope: Scope, path: str, created: int) -> Any:
    """The body of ``GET /v1/models`` (OpenAI's, or Anthropic's given ``anthropic-version``) or of
    Gemini's ``GET /v1beta/models``."""
    if path == "/v1beta/models":
        data: Any = {
            "models": [
                {
                    "name": f"models/{m}",
                    "displayName": m,
                    "supportedGenerationMethods": [_gemini_method(m)],
                }
                for m in GEMINI_MODELS
            ]
        }
    elif any(name == b"anthropic-version" for name, _ in scope["headers"]):
        items = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2024-10-22T00:00:00Z"}
            for m in ANTHROPIC_MODELS
        ]
        data = {"data": items, "has_more": False, "first_id": items[0]["id"], "last_id": items[-1]["id"]}
    else:
        data = {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "openai"} for m in OPENAI_MODELS
            ],
        }
    return data


def _gemini_method(model: str) -> str:
    return "embedContent" if "embedding" in model else "generateContent"

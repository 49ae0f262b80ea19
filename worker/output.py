"""Structured output: a reply asked for as JSON is parsed (and checked against its schema) before it is
handed over, so that ``LLMResponse.parsed`` is never a value the request did not ask for."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

from llmrelay.shared.errors import OutputValidationError
from llmrelay.shared.models import JSONObjectFormat, JSONSchemaFormat, LLMRequest
from llmrelay.shared.redaction import redact

#: How much of a reply that failed validation the error carries (it travels in the job's error event).
MAX_RAW_CHARS = 65_536


def parsed_output(request: LLMRequest, text: str, *, called_tools: bool, provider: str) -> Any:
    """The reply's JSON value when the request asked for JSON, else None.

    A reply that called tools instead of answering carries no JSON yet: it is not checked. Anything
    else that does not parse (or, for ``json_schema``, validate) is an ``OutputValidationError`` with
    the raw text, never a value handed over as valid.
    """
    fmt = request.response_format
    if not isinstance(fmt, JSONObjectFormat | JSONSchemaFormat):
        return None
    if called_tools and not text.strip():
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"the reply is not JSON: {exc}", text, provider) from None
    if isinstance(fmt, JSONObjectFormat):
        if not isinstance(value, dict):
            raise _invalid("the reply is JSON but not a JSON object", text, provider)
        return value
    validator = jsonschema.Draft202012Validator(fmt.schema_)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise _invalid(
            f"the reply does not match schema {fmt.name!r} at {where}: {error.message}", text, provider
        )
    return value


def _invalid(reason: str, text: str, provider: str) -> OutputValidationError:
    raw = redact(text)
    data: dict[str, Any] = {"field": "response_format", "provider": provider, "raw": raw[:MAX_RAW_CHARS]}
    if len(raw) > MAX_RAW_CHARS:
        data["raw_truncated"] = True
    return OutputValidationError(redact(reason)[:2000], data=data)

"""OpenAI's embeddings format (``POST /v1/embeddings``), read into an EmbeddingRequest and written back.

Honoured: ``input`` (a string or a list of strings; token arrays are refused), ``model``,
``encoding_format`` (``float``, or ``base64``: little-endian float32, which the openai SDK asks for by
default and decodes), ``dimensions``, and ``user`` (kept in the request's metadata, as for chat). Also
read are llmrelay's own fields (``request_id``, ``timeout``, ``priority``, ``trace_id``, ``source_agent``,
``session_id``, ``metadata``: the openai SDK's ``extra_body``). Any other parameter is refused with a 400
naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmrelay.producer.api.openai_compat import ChatRequestError, add_caller_fields, validated
from llmrelay.shared.embeddings import EmbeddingRequest, EmbeddingResponse, encode_vector

EXTENSIONS = ("request_id", "timeout", "priority", "trace_id", "source_agent", "session_id")
KNOWN = frozenset({"input", "model", "encoding_format", "dimensions", "user", "metadata", *EXTENSIONS})
ENCODINGS = ("float", "base64")


@dataclass(slots=True)
class EmbeddingsCall:
    request: EmbeddingRequest
    encoding_format: str


def parse_embeddings(body: Any, a2a: Mapping[str, str]) -> EmbeddingsCall:
    """The EmbeddingRequest of an embeddings body; ChatRequestError (a 400 naming the parameter) for
    anything we cannot honour."""
    if not isinstance(body, dict):
        raise ChatRequestError("the request body must be a JSON object")
    for name in body:
        if name not in KNOWN:
            raise ChatRequestError(
                f"{name} is not supported by this gateway's embeddings", name, "unsupported_parameter"
            )
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise ChatRequestError("input must be a string or a non-empty list of strings", "input")
    if not all(isinstance(text, str) for text in texts):
        raise ChatRequestError(
            "input must be text: token arrays are not supported by this gateway",
            "input",
            "unsupported_parameter",
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ENCODINGS:
        raise ChatRequestError("encoding_format must be float or base64", "encoding_format")
    values: dict[str, Any] = {"input": texts}
    add_caller_fields(values, body, a2a, ("model", "dimensions", *EXTENSIONS))
    request = validated(EmbeddingRequest, values, lambda loc: ".".join(str(part) for part in loc) or None)
    return EmbeddingsCall(request, encoding)


def embeddings_body(response: EmbeddingResponse, encoding_format: str) -> bytes:
    """The response in OpenAI's shape: a list of ``embedding`` objects and the usage."""
    encode = encode_vector if encoding_format == "base64" else None
    data = [
        {"object": "embedding", "index": i, "embedding": encode(vector) if encode else vector}
        for i, vector in enumerate(response.vectors)
    ]
    usage = {"prompt_tokens": response.usage.prompt_tokens, "total_tokens": response.usage.total_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": response.model, "usage": usage})


__all__ = ["EmbeddingsCall", "embeddings_body", "parse_embeddings"]

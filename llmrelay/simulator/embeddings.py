"""The simulator's embedding endpoints: OpenAI ``/v1/embeddings`` and Gemini ``:embedContent`` /
``:batchEmbedContents``, in their wire formats, with deterministic vectors.

A vector is derived from its text alone (SHA-256 seeds a generator): the same text gives the same
vector, at any request. It has the model's dimension (``MODEL_DIMENSIONS``, else the provider's default)
or the requested ``dimensions`` / ``outputDimensionality``: the first that many values of the full
vector, renormalised, as Matryoshka-trained models shorten theirs. Every vector is unit length and its
values are float32, so the base64 encoding (little-endian float32, OpenAI's) loses nothing.

Usage: OpenAI reports ``prompt_tokens`` = ``total_tokens`` = the whitespace-separated words of every
input (at least 1 each). Gemini's ``batchEmbedContents`` reply has no usage (its documented response is
``embeddings`` alone).

Rules the real APIs enforce, answered 400 here too: OpenAI refuses an empty input, more than 2048
inputs, token arrays it cannot read, ``dimensions`` on a model without them, an unknown
``encoding_format``; Gemini refuses more than 100 requests in one batch, a request whose ``model`` is
not the URL's, and a content without text.
"""

from __future__ import annotations

import array
import base64
import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

import orjson

from .providers import Call, WireError

MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "gemini-embedding-001": 3072,
}
DEFAULT_DIMENSIONS = {"openai": 1536, "gemini": 3072}
#: OpenAI models that take no ``dimensions`` (only text-embedding-3 and later do).
FIXED_DIMENSIONS = frozenset({"text-embedding-ada-002"})
OPENAI_MAX_INPUTS = 2048
GEMINI_MAX_BATCH = 100


@dataclass(slots=True)
class EmbedCall:
    """One embedding request as read from its body."""

    provider: str
    api: str  # "embeddings" | "embedContent" | "batchEmbedContents"
    model: str
    texts: list[str]
    dimensions: list[int]  # per text
    encoding: str = "float"

    @property
    def tokens(self) -> int:
        return sum(max(1, len(text.split())) for text in self.texts)

    def as_call(self) -> Call:
        """The chat-shaped view the fault book and directives read (the last input is the prompt)."""
        last = self.texts[-1] if self.texts else ""
        return Call(self.provider, self.api, self.model, False, last, last, self.tokens, None)


def vector(text: str, dimensions: int, full: int) -> list[float]:
    """The unit vector of ``text``: the first ``dimensions`` of its ``full``-sized vector, renormalised."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(min(dimensions, full))]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array.array("f", (v / norm for v in values)).tolist()


def _dimension(provider: str, model: str, asked: Any, field: str) -> int:
    full = MODEL_DIMENSIONS.get(model, DEFAULT_DIMENSIONS[provider])
    if asked is None:
        return full
    if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
        raise WireError(f"{field} must be a positive integer")
    if provider == "openai" and model in FIXED_DIMENSIONS:
        raise WireError("This model does not support specifying dimensions.")
    return min(asked, full)


def read_openai(body: dict[str, Any]) -> EmbedCall:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("you must provide a model parameter")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise WireError("'input' is a required property and must not be empty")
    if len(texts) > OPENAI_MAX_INPUTS:
        raise WireError(f"'input' must have at most {OPENAI_MAX_INPUTS} items")
    if all(isinstance(t, int) for t in texts) or all(isinstance(t, list) for t in texts):
        # Token arrays: the simulator has no tokenizer; each token id stands for one word.
        texts = [" ".join(map(str, t)) if isinstance(t, list) else str(t) for t in texts]
    if not all(isinstance(t, str) and t for t in texts):
        raise WireError("'input' must be a non-empty string or an array of non-empty strings")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise WireError("'encoding_format' must be 'float' or 'base64'")
    dims = _dimension("openai", model, body.get("dimensions"), "dimensions")
    return EmbedCall("openai", "embeddings", model, texts, [dims] * len(texts), encoding)


def _gemini_text(content: Any, field: str) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    texts = [p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
    if not texts:
        raise WireError(f"* {field}: a content with text is required")
    return "\n".join(texts)


def read_gemini(api: str, body: dict[str, Any], model: str) -> EmbedCall:
    if api == "embedContent":
        text = _gemini_text(body.get("content"), "content")
        dims = _dimension("gemini", model, body.get("outputDimensionality"), "outputDimensionality")
        return EmbedCall("gemini", api, model, [text], [dims])
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise WireError("* BatchEmbedContentsRequest.requests: at least one request is required")
    if len(requests) > GEMINI_MAX_BATCH:
        raise WireError(
            f"* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_BATCH} requests can be in one batch"
        )
    texts: list[str] = []
    sizes: list[int] = []
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise WireError(f"* BatchEmbedContentsRequest.requests[{i}]: must be an object")
        named = item.get("model")
        if named is not None and str(named).removeprefix("models/") != model:
            raise WireError(
                f"* BatchEmbedContentsRequest.requests[{i}].model: must be the batch's model models/{model}"
            )
        texts.append(_gemini_text(item.get("content"), f"BatchEmbedContentsRequest.requests[{i}].content"))
        sizes.append(_dimension("gemini", model, item.get("outputDimensionality"), "outputDimensionality"))
    return EmbedCall("gemini", api, model, texts, sizes)


def render(call: EmbedCall) -> bytes:
    full = MODEL_DIMENSIONS.get(call.model, DEFAULT_DIMENSIONS[call.provider])
    vectors = [vector(text, d, full) for text, d in zip(call.texts, call.dimensions, strict=True)]
    if call.api == "embedContent":
        return orjson.dumps({"embedding": {"values": vectors[0]}})
    if call.api == "batchEmbedContents":
        return orjson.dumps({"embeddings": [{"values": v} for v in vectors]})
    data = [
        {"object": "embedding", "index": i, "embedding": _base64(v) if call.encoding == "base64" else v}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": call.tokens, "total_tokens": call.tokens}
    return orjson.dumps({"object": "list", "data": data, "model": call.model, "usage": usage})


def _base64(values: list[float]) -> str:
    return base64.b64encode(array.array("f", values).tobytes()).decode("ascii")

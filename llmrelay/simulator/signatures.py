"""The opaque tokens the simulated providers hand out and require back: Gemini thought signatures,
Anthropic thinking signatures, OpenAI encrypted reasoning.

Each token is base64 of the response id it was issued in and an HMAC of what it vouches for (a call's
name and arguments, a thinking block's text, a reasoning item's id), so the same reply always gets the
same token, and a token moved to another call, edited or made up does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

_KEY = b"llmrelay-simulator-signatures"


def sign(kind: str, rid: str, subject: Any) -> str:
    return base64.b64encode(f"{rid}:{_mac(kind, rid, subject)}".encode()).decode()


def verify(kind: str, token: Any, subject: Any) -> bool:
    if not isinstance(token, str):
        return False
    try:
        rid, _, mac = base64.b64decode(token, validate=True).decode().rpartition(":")
    except (binascii.Error, ValueError):
        return False
    return bool(rid) and hmac.compare_digest(mac, _mac(kind, rid, subject))


def _mac(kind: str, rid: str, subject: Any) -> str:
    payload = orjson.dumps([kind, rid, subject], option=orjson.OPT_SORT_KEYS)
    return hmac.new(_KEY, payload, hashlib.sha256).hexdigest()[:32]

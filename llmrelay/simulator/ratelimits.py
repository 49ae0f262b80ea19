"""The rate-limit headers OpenAI and Anthropic send, from a fixed one-minute window per provider.

Reported, never enforced: a 429 comes from a fault, and then reports 0 requests remaining.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .asgi import Headers
from .config import SimulatorConfig

WINDOW_SECONDS = 60.0


class Window:
    """A fixed one-minute window per provider, for the rate-limit headers (reported, never enforced)."""

    __slots__ = ("requests", "reset_rfc3339", "start", "tokens")

    def __init__(self) -> None:
        self.start = 0.0
        self.requests = 0
        self.tokens = 0
        self.reset_rfc3339 = b""

    def hit(self, now: float, tokens: int) -> float:
        if now - self.start >= WINDOW_SECONDS:
            self.start = now
            self.requests = 0
            self.tokens = 0
            reset = datetime.fromtimestamp(now + WINDOW_SECONDS, tz=UTC)
            self.reset_rfc3339 = reset.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        self.requests += 1
        self.tokens += tokens
        return self.start + WINDOW_SECONDS - now


def duration(seconds: float) -> bytes:
    """OpenAI's reset format: ``"6ms"``, ``"1.5s"``, ``"1m0s"``."""
    if seconds < 1:
        return b"%dms" % max(1, round(seconds * 1000))
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return (f"{int(minutes)}m" + text).encode() if minutes else text.encode()


class RateLimitHeaders:
    """Each provider's window and the headers a response of that provider carries."""

    def __init__(self, providers: tuple[str, ...] | list[str]) -> None:
        self._windows = {p: Window() for p in providers}

    def headers(
        self,
        config: SimulatorConfig,
        provider: str,
        rid: str,
        content_type: bytes,
        tokens: int,
        limited: bool = False,
    ) -> Headers:
        request_id = b"req_" + rid.encode()
        headers: Headers = [
            (b"content-type", content_type),
            (b"request-id", request_id),
            (b"x-request-id", request_id),
        ]
        if provider == "gemini":
            return headers
        cfg = config
        window = self._windows[provider]
        reset = window.hit(time.time(), tokens)
        remaining_requests = 0 if limited else max(0, cfg.rate_limit_requests - window.requests)
        remaining_tokens = max(0, cfg.rate_limit_tokens - window.tokens)
        if provider == "openai":
            reset_text = duration(reset)
            headers += [
                (b"x-ratelimit-limit-requests", b"%d" % cfg.rate_limit_requests),
                (b"x-ratelimit-limit-tokens", b"%d" % cfg.rate_limit_tokens),
                (b"x-ratelimit-remaining-requests", b"%d" % remaining_requests),
                (b"x-ratelimit-remaining-tokens", b"%d" % remaining_tokens),
                (b"x-ratelimit-reset-requests", reset_text),
                (b"x-ratelimit-reset-tokens", reset_text),
                (b"openai-processing-ms", b"1"),
            ]
        else:
            headers += [
                (b"anthropic-ratelimit-requests-limit", b"%d" % cfg.rate_limit_requests),
                (b"anthropic-ratelimit-requests-remaining", b"%d" % remaining_requests),
                (b"anthropic-ratelimit-requests-reset", window.reset_rfc3339),
                (b"anthropic-ratelimit-tokens-limit", b"%d" % cfg.rate_limit_tokens),
                (b"anthropic-ratelimit-tokens-remaining", b"%d" % remaining_tokens),
                (b"anthropic-ratelimit-tokens-reset", window.reset_rfc3339),
            ]
        return headers

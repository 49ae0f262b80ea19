"""Runtime knobs of the simulator.

A :class:`SimulatorConfig` is given to :func:`simulator.app.create_app` (or :func:`simulator.server.serve`)
at start, and can be changed while the server runs with ``POST /_sim/config`` (a JSON object holding any
subset of the fields below) or, from the same process, with :meth:`SimulatorConfig.update`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["SimulatorConfig"]


@dataclass
class SimulatorConfig:
    """Knobs of the simulator; every field can be changed at runtime.

    - ``ttft_ms``: time to first token. Streams send their headers at once and the first body bytes
      (preamble events and the first token) after this delay; non-streaming replies wait this long
      (plus the generation time below) before answering.
    - ``tokens_per_second``: pacing between stream chunks (0 = no delay; the whole body is then written
      at once, still one SSE event per token). A non-streaming reply waits as long as the stream would.
    - ``reply_tokens``: length of the reply, in tokens, when the prompt does not say otherwise.
    - ``slow_first_byte_ms``: delay before the response headers are sent at all (slow server).
    - ``record``: keep the requests received in a ring buffer of ``record_limit`` entries.
    - ``rate_limit_requests`` / ``rate_limit_tokens``: the per-minute limits reported in the
      rate-limit response headers (they are reported, never enforced).
    """

    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    reply_tokens: int = 20
    slow_first_byte_ms: float = 0.0
    record: bool = True
    record_limit: int = 10_000
    rate_limit_requests: int = 10_000
    rate_limit_tokens: int = 10_000_000

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f.name, f.type, value))
        if self.ttft_ms < 0 or self.tokens_per_second < 0 or self.slow_first_byte_ms < 0:
            raise ValueError("ttft_ms, tokens_per_second and slow_first_byte_ms must be >= 0")
        if self.reply_tokens < 0:
            raise ValueError("reply_tokens must be >= 0")
        if self.record_limit < 1:
            raise ValueError("record_limit must be >= 1")

    def update(self, **changes: Any) -> SimulatorConfig:
        """Change some knobs in place (validated: nothing changes if one value is invalid)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown simulator knob(s): {', '.join(sorted(unknown))}")
        candidate = dataclasses.replace(self, **changes)  # validates
        for name in changes:
            setattr(self, name, getattr(candidate, name))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulatorConfig:
        config = cls()
        config.update(**data)
        return config

    def copy(self) -> SimulatorConfig:
        return dataclasses.replace(self)


_TYPES = {"float": float, "int": int, "bool": bool}


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    kind = _TYPES[type_name if isinstance(type_name, str) else type_name.__name__]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{name} must be a boolean, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        if kind is int:
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a{'n integer' if kind is int else ' number'}, got {value!r}"
        ) from None

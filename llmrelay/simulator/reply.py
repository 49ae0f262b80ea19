"""Deterministic replies and the ``[[sim:...]]`` directives carried inside prompts.

The prompt
    The *prompt* of a request is the text of its LAST user message (see
    :mod:`llmrelay.simulator.providers` for where that is in each provider's body), after
    :func:`clean_prompt`: every ``[[sim:...]]`` directive is removed
    and runs of whitespace are collapsed to one space, with none at either end. So
    ``"Hello [[sim:tokens=5]]  world"`` has the prompt ``"Hello world"``.

The reply
    :func:`reply_for` ``(prompt, n)`` returns ``n`` tokens picked from :data:`WORDS` by a generator seeded
    with a hash of the cleaned prompt: the first token is a bare word, each later one is a space and a
    word. The full reply text is ``"".join(reply_for(prompt, n))``. ``reply_for`` cleans the prompt
    itself, so passing the raw message text (directives included) gives the same reply. A reply of
    ``k < n`` tokens (truncated by a max-tokens parameter) is the first ``k`` tokens of the ``n``-token
    reply.

Directives
    ``[[sim:key=value key=value ...]]`` anywhere in the last user message (several blocks merge, later
    keys win). Keys: ``fault`` (``429``, ``500``, ``503``, ``529``, ``401``, ``400``, any other HTTP
    status 400-599, ``cut``, ``overloaded_in_stream``, ``hang``), ``retry_after`` (seconds, for 429/503/529),
    ``after`` (chunks sent before ``cut`` / ``overloaded_in_stream``), ``times`` (the fault hits only
    the first N requests carrying this exact message text), ``provider`` / ``model`` (the fault only hits
    that provider / model), ``tokens`` (reply length), ``ttft_ms``, ``tps`` (tokens per second),
    ``slow_first_byte_ms``, ``calls`` (how many of the declared tools to call at once; see
    :mod:`llmrelay.simulator.tools`). Unknown keys and unparsable values are ignored.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "WORDS",
    "Directives",
    "clean_prompt",
    "count_words",
    "parse_directives",
    "reply_for",
]

#: The vocabulary replies are drawn from (plain ASCII words: no JSON escaping, one token each).
WORDS: tuple[str, ...] = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
    "yankee", "zulu", "amber", "basalt", "cedar", "dune", "ember", "fjord",
    "granite", "harbor", "island", "jasper", "kelp", "lagoon", "meadow", "nectar",
    "orchid", "pebble", "quartz", "river", "summit", "tundra", "umber", "valley",
    "willow", "yarrow", "zephyr", "atlas", "beacon", "comet", "drift", "falcon",
    "glacier", "horizon", "ion", "lantern", "nova", "orbit", "prism", "signal",
)  # fmt: skip

DIRECTIVE_RE = re.compile(r"\[\[sim:(.*?)\]\]", re.DOTALL)
_MARKER = "[[sim:"


def clean_prompt(text: str) -> str:
    """Remove ``[[sim:...]]`` directives and collapse whitespace (idempotent)."""
    if _MARKER in text:
        text = DIRECTIVE_RE.sub(" ", text)
    return " ".join(text.split())


def count_words(text: str) -> int:
    """Whitespace-separated words of ``text``, directives excluded."""
    if _MARKER in text:
        text = DIRECTIVE_RE.sub(" ", text)
    return len(text.split())


@lru_cache(maxsize=8192)
def _reply_tuple(prompt: str, tokens: int) -> tuple[str, ...]:
    seed = int.from_bytes(hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).digest(), "big")
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(tokens)]
    return tuple(w if i == 0 else " " + w for i, w in enumerate(words))


def reply_for(prompt: str, tokens: int) -> list[str]:
    """The deterministic reply to ``prompt``: a list of ``tokens`` token strings (one stream chunk each)."""
    if tokens <= 0:
        return []
    return list(_reply_tuple(clean_prompt(prompt), int(tokens)))


@dataclass(frozen=True)
class Directives:
    """The ``[[sim:...]]`` directives of one message (``None`` = not given)."""

    fault: str | None = None
    retry_after: float | None = None
    after: int | None = None
    times: int | None = None
    provider: str | None = None
    model: str | None = None
    tokens: int | None = None
    ttft_ms: float | None = None
    tps: float | None = None
    slow_first_byte_ms: float | None = None
    calls: int | None = None


NO_DIRECTIVES = Directives()

_INT_KEYS = {"after", "times", "tokens", "calls"}
_FLOAT_KEYS = {"retry_after", "ttft_ms", "tps", "slow_first_byte_ms"}
_STR_KEYS = {"fault", "provider", "model"}
_ALIASES = {"tokens_per_second": "tps", "retry-after": "retry_after", "ttft": "ttft_ms"}


def parse_directives(text: str) -> Directives:
    """Parse every ``[[sim:...]]`` block of ``text`` (see the module docstring)."""
    if _MARKER not in text:
        return NO_DIRECTIVES
    values: dict[str, object] = {}
    for block in DIRECTIVE_RE.findall(text):
        for item in block.replace(",", " ").split():
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            key = _ALIASES.get(key, key)
            if not sep:
                # a bare word is a fault name: [[sim:cut]]
                key, raw = "fault", item
            raw = raw.strip()
            try:
                if key in _INT_KEYS:
                    number = float(raw)
                    if not number.is_integer() or number < 0:
                        continue
                    values[key] = int(number)
                elif key in _FLOAT_KEYS:
                    number = float(raw)
                    if number < 0 or number != number:
                        continue
                    values[key] = number
                elif key in _STR_KEYS and raw:
                    values[key] = raw.lower() if key != "model" else raw
            except ValueError:
                continue
    return Directives(**values)  # type: ignore[arg-type]

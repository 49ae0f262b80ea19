"""An adapter that plays scripts of stream items: text, tool-call deltas and the end, as a provider would."""

from __future__ import annotations

from collections.abc import AsyncIterator

from llmrelay.shared import Settings
from llmrelay.shared.catalog import Provider
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import LLMRequest
from llmrelay.worker.providers import ProviderCall, _common
from llmrelay.worker.providers.base import SDKAdapter, StreamItem


class ScriptedAdapter(SDKAdapter[None]):
    """Plays one script of stream items per call, in order (the last one again); an exception in a
    script is raised at that point. Keeps the requests it was called with."""

    name: Provider = "openai"

    def __init__(self, *scripts: list[StreamItem | LLMRelayError], name: Provider = "openai") -> None:
        self.name = name
        self._has_key = True
        self._scripts = list(scripts)
        self.calls = 0
        self.requests: list[LLMRequest] = []

    def _build_client(self, settings: Settings, key: str) -> None:
        return None  # the script needs no SDK client

    @staticmethod
    def _translate(exc: BaseException) -> LLMRelayError:
        return _common.unexpected_error("openai", exc)

    async def _stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        script = self._scripts[min(self.calls, len(self._scripts) - 1)]
        self.calls += 1
        self.requests.append(call.request)
        for item in script:
            if isinstance(item, LLMRelayError):
                raise item
            yield item

    async def _list_models(self) -> set[str]:
        return set()  # a script serves whatever it is asked for; it lists nothing

    async def aclose(self) -> None:
        pass

"""The public API comes from one name: everything the contract exports, and the producer SDK."""

from __future__ import annotations

import llmrelay
from llmrelay import shared


def test_the_package_exports_the_contract_and_the_producer() -> None:
    assert set(llmrelay.__all__) == {"LLMProducer", *shared.__all__}
    missing = [name for name in llmrelay.__all__ if not hasattr(llmrelay, name)]
    assert missing == []
    assert llmrelay.LLMRequest is shared.LLMRequest
    assert llmrelay.LLMProducer.__module__ == "llmrelay.producer.sdk"

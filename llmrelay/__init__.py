"""llmrelay: a multi-provider LLM gateway on a durable Redis Streams worker pool.

The public API, from one name::

    from llmrelay import LLMProducer, LLMRequest, Message

    async with LLMProducer.from_env() as llm:
        request = LLMRequest(model="gpt-6-luna", messages=[Message(role="user", content="Hi")])
        response = await llm.complete(request)

The parts, each a subpackage: :mod:`llmrelay.shared` (the contract both sides speak),
:mod:`llmrelay.producer` (the producer SDK and the façade), :mod:`llmrelay.worker` (the worker pool),
:mod:`llmrelay.simulator` (a loopback provider simulator) and :mod:`llmrelay.cli` (the command line).
"""

from __future__ import annotations

from llmrelay import shared
from llmrelay.producer import LLMProducer
from llmrelay.shared import *  # noqa: F403 - the contract is the public API, as shared/__init__.py lists it

__all__ = ["LLMProducer", *shared.__all__]

"""The callers' side of llmrelay: the producer SDK and the HTTP façade built on it."""

from llmrelay.producer.sdk import LLMProducer, StreamRestartedError

__all__ = ["LLMProducer", "StreamRestartedError"]

"""The HTTP façade: JSON-RPC 2.0 with SSE streaming, OpenAI-compatible endpoints, /metrics and /health."""

from llmrelay.producer.api.app import create_app
from llmrelay.producer.api.methods import METHODS, Context, EventFeed
from llmrelay.producer.api.server import serve

__all__ = ["METHODS", "Context", "EventFeed", "create_app", "serve"]

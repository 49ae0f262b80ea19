"""structlog set-up: bound request context, redaction on every logger, JSON or console output."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from llmrelay.shared.redaction import redact, redaction_processor, register_secrets
from llmrelay.shared.settings import Settings


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    """Configure structlog and the standard library once per process, at the edge."""
    register_secrets(settings.secret_values())
    out = stream or sys.stderr
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if getattr(out, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redaction_processor,
        _redacted(renderer),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Library loggers (httpx2, redis, uvicorn) go through the same redaction before they print.
    handler = logging.StreamHandler(out)
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))


def _redacted(renderer: Any) -> Any:
    """Mask secrets once more in the rendered line: objects (exceptions) are only turned to text there."""

    def render(logger: Any, method: str, event_dict: dict[str, Any]) -> str:
        return redact(str(renderer(logger, method, event_dict)))

    return render


class _RedactingFilter(logging.Filter):
    """Masks secrets in standard-library log records: the message, the traceback and the stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def get_logger(name: str | None = None, **bound: Any) -> Any:
    return structlog.get_logger(name).bind(**bound) if bound else structlog.get_logger(name)

"""Serving the façade with uvicorn (httptools, uvloop, no access log), on 127.0.0.1:8000 by default."""

from __future__ import annotations

from typing import Any

from llmrelay.shared.logging import configure_logging, get_logger
from llmrelay.shared.settings import Settings


def build_server(settings: Settings, host: str | None = None, port: int | None = None, **options: Any) -> Any:
    """A ``uvicorn.Server`` for the façade, for callers that run it on their own event loop."""
    import uvicorn

    from llmrelay.producer.api.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=options.pop("timeout_graceful_shutdown", 10),
        **options,
    )
    return uvicorn.Server(config)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the façade until SIGINT or SIGTERM (blocking)."""
    configure_logging(settings)
    server = build_server(settings, host, port)
    log = get_logger("llmrelay.api")
    log.info(
        "façade listening",
        url=f"http://{server.config.host}:{server.config.port}",
        auth="bearer token" if settings.api_token is not None else "off",
    )
    server.run()

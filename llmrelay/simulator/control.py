"""A client of the simulator's ``/_sim/`` control endpoints (requests seen, knobs, faults, reset).

Both server kinds of :mod:`llmrelay.simulator.server` are one; the standard library's urllib keeps it
usable from any test or benchmark without an event loop.
"""

from __future__ import annotations

import time
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest

import orjson

__all__ = ["SimulatorControls"]


class SimulatorControls:
    """Sync helpers over the ``/_sim/`` control endpoints of the simulator at ``host:port``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)`` (ends in ``/v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``AsyncAnthropic(base_url=...)`` (the bare host; the SDK appends ``/v1/messages``)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """For ``HttpOptions(base_url=..., api_version="v1beta")``."""
        return self.url

    def _call(self, method: str, path: str, payload: Any = None, timeout: float = 10.0) -> Any:
        data = None if payload is None else orjson.dumps(payload)
        req = urlrequest.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        opener = urlrequest.build_opener(urlrequest.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                return orjson.loads(resp.read())
        except urlerror.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ValueError(f"simulator refused {method} {path}: {exc.code} {detail}") from None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/health")  # type: ignore[no-any-return]

    def requests(self, provider: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The recorded requests, oldest first (``provider``: only that provider's)."""
        params = []
        if provider is not None:
            params.append(f"provider={provider}")
        if limit is not None:
            params.append(f"limit={int(limit)}")
        query = ("?" + "&".join(params)) if params else ""
        return self._call("GET", "/_sim/requests" + query)  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Forget the recorded requests."""
        self._call("DELETE", "/_sim/requests")

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/config")  # type: ignore[no-any-return]

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs (see :class:`SimulatorConfig`); returns the whole configuration."""
        return self._call("POST", "/_sim/config", knobs)  # type: ignore[no-any-return]

    def add_fault(
        self,
        fault: str | int,
        *,
        retry_after: float | None = None,
        times: int | None = 1,
        provider: str | None = None,
        model: str | None = None,
        after: int | None = None,
    ) -> dict[str, Any]:
        """Schedule a fault for the next ``times`` matching requests (``None`` = until cleared)."""
        spec = {
            "fault": str(fault),
            "retry_after": retry_after,
            "times": times,
            "provider": provider,
            "model": model,
            "after": after,
        }
        return self._call("POST", "/_sim/faults", spec)  # type: ignore[no-any-return]

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/faults")  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        """Drop scheduled faults and the ``times=N`` counters of prompt directives."""
        self._call("DELETE", "/_sim/faults")

    def reset(self) -> None:
        """Forget requests, faults and counters, and restore the configuration given at start."""
        self._call("POST", "/_sim/reset", {})

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                self._call("GET", "/_sim/health", timeout=1.0)
                return
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simulator at {self.url} did not answer within {timeout}s") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

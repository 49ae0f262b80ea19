"""Redis key and channel names: the one place both sides of the queue agree on them.

Every key of a provider carries the hash tag ``{llmrelay:<provider>}`` so that, on Redis Cluster, a
provider's streams, request states, event logs and limiter keys share one slot and each Lua script
touches a single slot.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qs, urlsplit

from llmrelay.shared.catalog import Provider
from llmrelay.shared.models import Priority

PREFIX: Final = "llmrelay"
GROUP: Final = "workers"
LANES: Final[tuple[Priority, ...]] = ("interactive", "batch")
WORKERS_REGISTRY: Final = f"{PREFIX}:workers"


def tag(provider: str) -> str:
    return "{" + PREFIX + ":" + provider + "}"


def work_stream(provider: Provider | str, lane: Priority | str) -> str:
    return f"{tag(provider)}:jobs:{lane}"


def dead_letter(provider: Provider | str) -> str:
    return f"{tag(provider)}:dead"


def state(provider: Provider | str, request_id: str) -> str:
    """Hash: status, owner, attempt counters, last error, result; expires result_ttl after the end."""
    return f"{tag(provider)}:req:{request_id}"


def events(provider: Provider | str, request_id: str) -> str:
    """Stream of the request's events with ids ``0-<seq>``, kept for resumption after a disconnect."""
    return f"{tag(provider)}:ev:{request_id}"


def namespace(redis_url: str) -> str:
    """What sets a deployment's pub/sub channels apart from another's on the same Redis server.

    Keys live in the URL's DB, but pub/sub ignores SELECT: two deployments in DBs 0 and 1 of one server
    would hear each other's events and cancellations of a request id both use. The namespace is ``""``
    for DB 0 (the channel names every deployment had before) and ``db<n>`` for DB n.
    """
    parts = urlsplit(redis_url)
    db = (parse_qs(parts.query).get("db") or [""])[0] or parts.path.strip("/")
    return f"db{int(db)}" if db.isdigit() and int(db) else ""


def _scoped(kind: str, namespace: str) -> str:
    return f"{PREFIX}:{kind}:{namespace}:" if namespace else f"{PREFIX}:{kind}:"


def channel(provider: Provider | str, request_id: str, *, namespace: str) -> str:
    """Pub/sub channel on which a request's events are published live (``namespace``: see there)."""
    return f"{_scoped('ch', namespace)}{provider}:{request_id}"


def control_channel(provider: Provider | str, *, namespace: str) -> str:
    """Pub/sub channel on which cancellations of running jobs reach the workers."""
    return f"{_scoped('ctl', namespace)}{provider}"


def pause(provider: Provider | str) -> str:
    """Set with a TTL when a provider asked every worker to wait (429 with retry-after)."""
    return f"{tag(provider)}:pause"


def rate(provider: Provider | str, scope: str, kind: str) -> str:
    """GCRA state of one limit: scope is '*' for the provider or a model name; kind 'rpm' or 'tpm'."""
    return f"{tag(provider)}:rl:{scope}:{kind}"


def tool_artifacts(provider: Provider | str, digest: str) -> str:
    """String: what the provider attached to one tool call and wants back (``shared.artifacts``), for
    the result TTL; ``digest`` hashes the call id with its caller, model and conversation."""
    return f"{tag(provider)}:art:{digest}"


def stream_reader(request_id: str) -> str:
    """Token of the façade stream that last started relaying a request: a resume on any replica
    replaces it, which tells the replica the client left that its pending cancel is void."""
    return f"{PREFIX}:reader:{request_id}"


def stored_response(response_id: str) -> str:
    """A Responses-API response its caller asked to store, with its conversation; expires result_ttl
    after it was written (``shared.conversations``)."""
    return f"{PREFIX}:resp:{response_id}"


def worker_heartbeat(worker_id: str) -> str:
    return f"{PREFIX}:worker:{worker_id}"


def worker_metrics(worker_id: str) -> str:
    return f"{PREFIX}:metrics:{worker_id}"


_VALID_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def valid_request_id(request_id: str) -> bool:
    """Request ids end up in key names: the same alphabet LLMRequest.request_id accepts."""
    return _VALID_ID.fullmatch(request_id) is not None

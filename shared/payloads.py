"""What a worker publishes about itself: its heartbeat and its metrics snapshot, each with one codec.

A worker writes both every few seconds (``keys.worker_heartbeat``, ``keys.worker_metrics``), with TTLs
so that a dead worker's disappear; the façade, the CLI's ``up`` and the tests read them through the
decoders here, which refuse (``PayloadError``) what is not such a payload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic validates typing.TypedDict only from Python 3.12

T = TypeVar("T")


class PayloadError(ValueError):
    """What was read from Redis is not the payload the contract defines."""


def load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """The JSON object in ``raw``; PayloadError naming ``what`` it should be when it is not one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise PayloadError(f"{what} is a JSON object")
    return data


class WorkerHeartbeat(TypedDict):
    """A live worker: who and where it is, what it serves, how busy it is; ``ts`` is when it beat."""

    worker_id: str
    pid: int
    host: str
    providers: list[str]
    concurrency: int
    inflight: dict[str, int]
    jobs_done: int
    ts: float


_HEARTBEAT = TypeAdapter(WorkerHeartbeat)


def encode_heartbeat(beat: WorkerHeartbeat) -> bytes:
    return orjson.dumps(beat)


def decode_heartbeat(raw: bytes | str) -> WorkerHeartbeat:
    """The heartbeat in ``raw``; PayloadError when it is not one."""
    try:
        return _HEARTBEAT.validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(f"not a worker heartbeat ({exc.error_count()} errors)") from None


#: One sample of a metric: its labels and its value.
Sample = tuple[dict[str, str], float]
#: Every sample of a worker's registry (but the ``_created`` timestamps), by sample name.
MetricsSnapshot = dict[str, list[Sample]]


def encode_metrics_snapshot(registry: CollectorRegistry) -> bytes:
    """The registry's samples as ``{sample name: [[labels, value], ...]}``."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return orjson.dumps(samples)


def decode_metrics_snapshot(raw: bytes | str) -> MetricsSnapshot:
    """The snapshot in ``raw``; PayloadError when it is not a JSON object.

    A sample that is not ``[labels, number]`` is left out rather than failing the whole snapshot: one
    odd series (a gauge set to NaN is written as null) must not hide a worker's other figures.
    """
    data = load_object(raw, "a metrics snapshot")
    snapshot: MetricsSnapshot = {}
    for name, series in data.items():
        if not isinstance(series, list):
            continue
        samples = snapshot.setdefault(name, [])
        for item in series:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], dict)):
                continue
            labels, value = item
            if isinstance(value, int | float) and not isinstance(value, bool):
                samples.append(({str(k): str(v) for k, v in labels.items()}, float(value)))
    return snapshot


def decode_each(decode: Callable[[bytes | str], T], raws: Iterable[bytes | str | None]) -> list[T]:
    """The payloads among the values of an MGET, in order: missing keys and garbled values are left out."""
    payloads: list[T] = []
    for raw in raws:
        if raw is None:
            continue
        try:
            payloads.append(decode(raw))
        except PayloadError:
            continue
    return payloads


__all__ = [
    "MetricsSnapshot",
    "PayloadError",
    "Sample",
    "WorkerHeartbeat",
    "decode_each",
    "decode_heartbeat",
    "decode_metrics_snapshot",
    "encode_heartbeat",
    "encode_metrics_snapshot",
    "load_object",
]

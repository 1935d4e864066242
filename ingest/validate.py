"""Validation of telemetry and state messages (pure: values in, values out).

A message becomes a :class:`Checked`: the rows to write, the dead letters to record (each with
the raw bytes and a reason code) and the batch key that makes it idempotent. Nothing here
touches a socket or the database; the registry snapshot and ``now`` are passed in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from suvnet.errors import ProtocolError
from suvnet.protocol import (
    MAX_PAYLOAD_BYTES,
    GatewayState,
    Quality,
    Topics,
    decode_state,
    decode_telemetry,
)

DEAD_LETTER_MAX_BYTES = MAX_PAYLOAD_BYTES
"""Dead letters keep at most this many bytes of a payload (the detail says when truncated)."""

# Reason codes added by ingest on top of the decoder's (ProtocolError.reason and the per-reading
# reasons of suvnet.protocol). docs/ingest.md lists them all.
UNKNOWN_GATEWAY = "unknown_gateway"
GATEWAY_NOT_ALLOWED = "gateway_not_allowed"
GATEWAY_MISMATCH = "gateway_mismatch"
UNKNOWN_DEVICE = "unknown_device"
DEVICE_NOT_ON_GATEWAY = "device_not_on_gateway"
UNKNOWN_POINT = "unknown_point"
TS_TOO_OLD = "ts_too_old"
TS_IN_FUTURE = "ts_in_future"
BAD_QUALITY = "bad_quality"
BAD_VALUE = "bad_value"
BAD_TIMESTAMP = "bad_timestamp"
UNEXPECTED_TOPIC = "unexpected_topic"


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    id: int
    allowed: bool
    period_s: float
    """Shortest poll period of the gateway's points (freshness)."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: int
    gateway_id: int | None
    period_s: float
    """Shortest poll period of the device's points (freshness)."""


@dataclass(frozen=True)
class Registry:
    """Snapshot of the registry tables, keyed by wire ids (codes)."""

    gateways: Mapping[str, GatewayInfo] = field(default_factory=dict)
    devices: Mapping[str, DeviceInfo] = field(default_factory=dict)
    points: Mapping[tuple[str, str], int] = field(default_factory=dict)
    loaded_at: float = 0.0


@dataclass(frozen=True)
class Window:
    """Accepted timestamps: ``now - max_age_s <= ts <= now + max_future_s``."""

    max_age_s: float | None
    max_future_s: float

    def check(self, ts_ms: int, now_ms: int) -> str | None:
        if ts_ms > now_ms + int(self.max_future_s * 1000):
            return TS_IN_FUTURE
        if self.max_age_s is not None and ts_ms < now_ms - int(self.max_age_s * 1000):
            return TS_TOO_OLD
        return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    detail: str
    gateway: str | None


@dataclass(frozen=True, slots=True)
class BatchKey:
    gateway_id: int
    gateway: str
    boot: str
    seq: int


BUCKET_MS = 300_000
"""Width of the finest rollup bucket (5 minutes) in milliseconds."""

Row = tuple[int, int, float | None, int]
"""(ts_ms, point_id, value, quality) as written to the staging table."""


@dataclass
class Checked:
    """Outcome of validating one message."""

    rows: list[Row] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    key: BatchKey | None = None
    sent_ms: int | None = None
    state: GatewayState | None = None
    state_gateway_id: int | None = None
    device_seen: dict[int, int] = field(default_factory=dict)
    """device id -> newest timestamp of a reading that was not comm-fail."""
    unknown_ids: bool = False
    """Set when a reject names an id the registry does not know (a reload may help)."""
    registry_at: float = 0.0
    """``loaded_at`` of the registry snapshot used for the check."""
    packed: bytes | None = None
    """``rows`` in binary COPY format, when the caller prepared them (ingest.store.pack_rows)."""
    buckets: set[tuple[int, int]] | None = None
    """The (point id, 5-minute bucket start ms) pairs of the good rows (rollup marks), filled
    while validating telemetry; None when not computed (then the writer derives them)."""


def _raw(obj: Any) -> bytes:
    try:
        return json.dumps(obj, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return repr(obj).encode()


def _whole(topic: str, payload: bytes, reason: str, detail: str, gateway: str | None) -> Checked:
    if len(payload) > DEAD_LETTER_MAX_BYTES:
        detail = f"{detail} (payload truncated from {len(payload)} bytes)"
        payload = payload[:DEAD_LETTER_MAX_BYTES]
    return Checked(
        dead=[DeadLetter(topic, payload, reason, detail, gateway)],
        unknown_ids=reason == UNKNOWN_GATEWAY,
    )


def check_telemetry(  # noqa: PLR0917 - pure function, all inputs passed in
    topic: str,
    payload: bytes,
    topics: Topics,
    registry: Registry,
    now_ms: int,
    window: Window,
) -> Checked:
    """Validate a telemetry message; good readings become rows, the rest dead letters."""
    try:
        topic_gw, kind = topics.parse(topic)
    except ProtocolError as exc:
        return _whole(topic, payload, exc.reason, exc.detail, None)
    if kind != "telemetry":
        return _whole(topic, payload, UNEXPECTED_TOPIC, f"{kind} on the telemetry path", topic_gw)
    try:
        decoded = decode_telemetry(payload)
    except ProtocolError as exc:
        return _whole(topic, payload, exc.reason, exc.detail, topic_gw)
    batch = decoded.batch
    if batch.gateway != topic_gw:
        return _whole(
            topic,
            payload,
            GATEWAY_MISMATCH,
            f"payload gateway {batch.gateway!r} published on the topic of {topic_gw!r}",
            topic_gw,
        )
    gw = registry.gateways.get(batch.gateway)
    if gw is None:
        why = f"gateway {batch.gateway!r} is not registered"
        return _whole(topic, payload, UNKNOWN_GATEWAY, why, topic_gw)
    if not gw.allowed:
        return _whole(
            topic,
            payload,
            GATEWAY_NOT_ALLOWED,
            f"gateway {batch.gateway!r} is registered but not allowed",
            topic_gw,
        )
    out = Checked(key=BatchKey(gw.id, batch.gateway, batch.boot, batch.seq), sent_ms=batch.sent_ms)
    where = f"{batch.gateway}/{batch.boot}/{batch.seq}"
    for rej in decoded.rejected:
        out.dead.append(
            DeadLetter(topic, _raw(rej.raw), rej.reason, f"{where} reading #{rej.index}", topic_gw)
        )
    devices = registry.devices
    points = registry.points
    seen = out.device_seen
    rows = out.rows
    comm_fail = Quality.COMM_FAIL
    good = Quality.GOOD
    buckets: set[tuple[int, int]] = set()
    out.buckets = buckets
    lo = None if window.max_age_s is None else now_ms - int(window.max_age_s * 1000)
    hi = now_ms + int(window.max_future_s * 1000)
    gw_id = gw.id
    for r in batch.readings:
        device, ts = r.device, r.ts_ms
        dev = devices.get(device)
        reason: str | None
        if dev is None:
            reason = UNKNOWN_DEVICE
            out.unknown_ids = True
        elif dev.gateway_id is not None and dev.gateway_id != gw_id:
            reason = DEVICE_NOT_ON_GATEWAY
        else:
            pid = points.get((device, r.point))
            if pid is None:
                reason = UNKNOWN_POINT
                out.unknown_ids = True
            elif ts > hi:
                reason = TS_IN_FUTURE
            elif lo is not None and ts < lo:
                reason = TS_TOO_OLD
            else:
                q = r.quality
                v = r.value
                rows.append((ts, pid, v, q.value))
                if q is good and v is not None:
                    buckets.add((pid, ts - ts % BUCKET_MS))
                if q is not comm_fail and ts > seen.get(dev.id, -1):
                    seen[dev.id] = ts
                continue
        out.dead.append(
            DeadLetter(
                topic,
                _raw([device, r.point, ts, r.value, int(r.quality)]),
                reason,
                f"{where} device {device!r} point {r.point!r} ts {ts}",
                topic_gw,
            )
        )
    return out


def check_state(topic: str, payload: bytes, topics: Topics, registry: Registry) -> Checked:
    """Validate a gateway state message (birth, last will or health update)."""
    try:
        topic_gw, kind = topics.parse(topic)
    except ProtocolError as exc:
        return _whole(topic, payload, exc.reason, exc.detail, None)
    if kind != "state":
        return _whole(topic, payload, UNEXPECTED_TOPIC, f"{kind} on the state path", topic_gw)
    if not payload:
        # an empty retained message clears the retained state: nothing to record
        return Checked()
    try:
        st = decode_state(payload)
    except ProtocolError as exc:
        return _whole(topic, payload, exc.reason, exc.detail, topic_gw)
    if st.gateway != topic_gw:
        return _whole(
            topic,
            payload,
            GATEWAY_MISMATCH,
            f"payload gateway {st.gateway!r} published on the topic of {topic_gw!r}",
            topic_gw,
        )
    gw = registry.gateways.get(st.gateway)
    if gw is None:
        return _whole(
            topic, payload, UNKNOWN_GATEWAY, f"gateway {st.gateway!r} is not registered", topic_gw
        )
    return Checked(state=st, state_gateway_id=gw.id)


@dataclass(frozen=True)
class CsvRecord:
    """One parsed line of a readings CSV file (see docs/readings-csv.md)."""

    line: int
    ts_ms: int
    device: str
    point: str
    value: float | None
    quality: int


def check_record(
    rec: CsvRecord, registry: Registry, now_ms: int, window: Window
) -> tuple[Row | None, str | None]:
    """Validate one imported reading with the same rules as live telemetry."""
    dev = registry.devices.get(rec.device)
    if dev is None:
        return None, UNKNOWN_DEVICE
    pid = registry.points.get((rec.device, rec.point))
    if pid is None:
        return None, UNKNOWN_POINT
    if not 0 <= rec.quality <= 3:
        return None, BAD_QUALITY
    if rec.value is None and rec.quality == Quality.GOOD:
        return None, "missing_value"
    reason = window.check(rec.ts_ms, now_ms)
    if reason is not None:
        return None, reason
    return (rec.ts_ms, pid, rec.value, rec.quality), None

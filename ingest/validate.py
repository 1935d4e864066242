"""Validation of telemetry and state messages (pure: values in, values out).

A message becomes a :class:`Checked`: the rows to write, the dead letters to record (each with
the raw bytes and a reason code) and the batch key that makes it idempotent. Nothing here
touches a socket or the database; the registry snapshot and ``now`` are passed in.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ingest.reasons import DeadLetterReason, UnlistedReason, decoder_reason
from suvnet.errors import ProtocolError
from suvnet.protocol import (
    MAX_PAYLOAD_BYTES,
    VERSION,
    GatewayState,
    Quality,
    Topics,
    decode_state,
    decode_telemetry,
    valid_id,
)

try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the install
    _fast_loads = json.loads  # type: ignore[assignment]

if TYPE_CHECKING:
    from ingest.scan import WireTable

_scan: ModuleType | None
try:
    from ingest import scan as _scan
except ImportError:  # pragma: no cover - numba is part of the server install
    _scan = None

log = logging.getLogger("ingest")

DEAD_LETTER_MAX_BYTES = MAX_PAYLOAD_BYTES
"""Dead letters keep at most this many bytes of a payload (the detail says when truncated)."""


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
    wire: Mapping[tuple[str, str], tuple[int, int, int | None]] = field(
        init=False, repr=False, compare=False
    )
    """(device, point) -> (point id, device id, gateway id of the device), only for pairs
    whose ids are valid wire ids: the lookup of the clean-message fast path."""

    def __post_init__(self) -> None:
        wire: dict[tuple[str, str], tuple[int, int, int | None]] = {}
        for (dc, pn), pid in self.points.items():
            dev = self.devices.get(dc)
            if dev is not None and valid_id(dc) and valid_id(pn):
                wire[(dc, pn)] = (pid, dev.id, dev.gateway_id)
        object.__setattr__(self, "wire", wire)

    @functools.cached_property
    def wire_table(self) -> WireTable | None:
        """``wire`` as the compiled scanner's hash table (None without numba)."""
        return None if _scan is None else _scan.build_table(dict(self.wire))


@dataclass(frozen=True)
class Window:
    """Accepted timestamps: ``now - max_age_s <= ts <= now + max_future_s``."""

    max_age_s: float | None
    max_future_s: float

    def check(self, ts_ms: int, now_ms: int) -> DeadLetterReason | None:
        if ts_ms > now_ms + int(self.max_future_s * 1000):
            return DeadLetterReason.TS_IN_FUTURE
        if self.max_age_s is not None and ts_ms < now_ms - int(self.max_age_s * 1000):
            return DeadLetterReason.TS_TOO_OLD
        return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: DeadLetterReason | UnlistedReason
    """A member of :class:`~ingest.reasons.DeadLetterReason`; a reason of the wire decoder
    that the table lacks only through :func:`~ingest.reasons.decoder_reason`."""
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

PG_EPOCH_MS = 946_684_800_000
"""2000-01-01T00:00:00Z in Unix milliseconds: the zero of PostgreSQL's binary timestamps."""
PACK_ROW = struct.Struct(">hiqiqidih").pack
"""One row (ts, point_id, value, quality) as a binary COPY tuple (no header)."""
PACK_ROW_NULL = struct.Struct(">hiqiqiih").pack
"""The same with a NULL value."""

Row = tuple[int, int, float | None, int]
"""(ts_ms, point_id, value, quality) as written to the staging table."""


class ScannedRows(Sequence[Row]):
    """The rows of a scanned message, kept as their binary COPY bytes: only their count is
    needed on the way to the database; the tuples are made when somebody asks for them."""

    __slots__ = ("_count", "_list", "_packed")

    def __init__(self, packed: bytes, count: int) -> None:
        self._packed = packed
        self._count = count
        self._list: list[Row] | None = None

    def _rows(self) -> list[Row]:
        if self._list is None:
            assert _scan is not None
            ts, pid, val, q = (c.tolist() for c in _scan.unpack(self._packed))
            self._list = list(zip(ts, pid, val, q, strict=True))
        return self._list

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Row]: ...
    def __getitem__(self, i: int | slice) -> Row | Sequence[Row]:
        return self._rows()[i]

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._rows() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ScannedRows({self._rows()!r})"


@dataclass
class Checked:
    """Outcome of validating one message."""

    rows: Sequence[Row] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    key: BatchKey | None = None
    sent_ms: int | None = None
    state: GatewayState | None = None
    state_gateway_id: int | None = None
    device_seen: dict[int, int] = field(default_factory=dict)
    """device id -> newest timestamp of a reading that was not comm-fail."""
    seen_pairs: np.ndarray[Any, Any] | None = None
    """The same from the scanner, as an int64 array of (device id, ts) rows (merged per group
    by the writer); see :meth:`seen`."""
    unknown_ids: bool = False
    """Set when a reject names an id the registry does not know (a reload may help)."""
    registry_at: float = 0.0
    """``loaded_at`` of the registry snapshot used for the check."""
    packed: bytes | None = None
    """``rows`` in binary COPY format, when the caller prepared them (ingest.store.pack_rows)."""
    buckets: set[tuple[int, int]] | np.ndarray[Any, Any] | None = None
    """The (point id, 5-minute bucket start ms) pairs of the good rows (rollup marks), filled
    while validating telemetry: a set, or an int64 array of shape (n, 2) from the scanner;
    None when not computed (then the writer derives them)."""

    def seen(self) -> dict[int, int]:
        """device id -> newest timestamp of a reading that was not comm-fail."""
        if self.seen_pairs is None:
            return self.device_seen
        return newest_per_device([self.seen_pairs], self.device_seen)


def newest_per_device(
    pairs: Sequence[np.ndarray[Any, Any]], into: Mapping[int, int] | None = None
) -> dict[int, int]:
    """Merge (device id, ts) arrays into device id -> newest ts (with ``into``'s entries)."""
    out = dict(into or {})
    if not pairs:
        return out
    a = np.concatenate(pairs) if len(pairs) > 1 else pairs[0]
    if not len(a):
        return out
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    last = np.ones(len(a), dtype=bool)
    last[:-1] = a[1:, 0] != a[:-1, 0]
    for dev, ts in a[last].tolist():
        if ts > out.get(dev, -1):
            out[dev] = ts
    return out


def _raw(obj: Any) -> bytes:
    try:
        return json.dumps(obj, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return repr(obj).encode()


def _whole(
    topic: str,
    payload: bytes,
    reason: DeadLetterReason | UnlistedReason,
    detail: str,
    gateway: str | None,
) -> Checked:
    if len(payload) > DEAD_LETTER_MAX_BYTES:
        detail = f"{detail} (payload truncated from {len(payload)} bytes)"
        payload = payload[:DEAD_LETTER_MAX_BYTES]
    return Checked(
        dead=[DeadLetter(topic, payload, reason, detail, gateway)],
        unknown_ids=reason == DeadLetterReason.UNKNOWN_GATEWAY,
    )


def check_telemetry(  # noqa: PLR0917 - pure function, all inputs passed in
    topic: str,
    payload: bytes,
    topics: Topics,
    registry: Registry,
    now_ms: int,
    window: Window,
    *,
    fast: bool = True,
) -> Checked:
    """Validate a telemetry message; good readings become rows, the rest dead letters.

    A clean message (every reading good and known, the usual case) is taken by
    :func:`check_clean_telemetry` in one pass; anything else, or ``fast=False``, goes through
    the full decoder, which names the reason of every reject.
    """
    try:
        topic_gw, kind = topics.parse(topic)
    except ProtocolError as exc:
        return _whole(topic, payload, decoder_reason(exc.reason), exc.detail, None)
    if kind != "telemetry":
        return _whole(
            topic,
            payload,
            DeadLetterReason.UNEXPECTED_TOPIC,
            f"{kind} on the telemetry path",
            topic_gw,
        )
    if fast:
        try:
            clean = check_scanned_telemetry(payload, topic_gw, registry, now_ms, window)
        except Exception:  # a defect of the scanner must not stop ingest: Python decides
            log.exception("compiled scanner failed on a message from %s", topic_gw)
            clean = None
        if clean is None:
            clean = check_clean_telemetry(payload, topic_gw, registry, now_ms, window)
        if clean is not None:
            return clean
    try:
        decoded = decode_telemetry(payload)
    except ProtocolError as exc:
        return _whole(topic, payload, decoder_reason(exc.reason), exc.detail, topic_gw)
    batch = decoded.batch
    if batch.gateway != topic_gw:
        return _whole(
            topic,
            payload,
            DeadLetterReason.GATEWAY_MISMATCH,
            f"payload gateway {batch.gateway!r} published on the topic of {topic_gw!r}",
            topic_gw,
        )
    gw = registry.gateways.get(batch.gateway)
    if gw is None:
        why = f"gateway {batch.gateway!r} is not registered"
        return _whole(topic, payload, DeadLetterReason.UNKNOWN_GATEWAY, why, topic_gw)
    if not gw.allowed:
        return _whole(
            topic,
            payload,
            DeadLetterReason.GATEWAY_NOT_ALLOWED,
            f"gateway {batch.gateway!r} is registered but not allowed",
            topic_gw,
        )
    out = Checked(key=BatchKey(gw.id, batch.gateway, batch.boot, batch.seq), sent_ms=batch.sent_ms)
    where = f"{batch.gateway}/{batch.boot}/{batch.seq}"
    for rej in decoded.rejected:
        out.dead.append(
            DeadLetter(
                topic,
                _raw(rej.raw),
                decoder_reason(rej.reason),
                f"{where} reading #{rej.index}",
                topic_gw,
            )
        )
    devices = registry.devices
    points = registry.points
    seen = out.device_seen
    rows: list[Row] = []
    out.rows = rows
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
        reason: DeadLetterReason | None
        if dev is None:
            reason = DeadLetterReason.UNKNOWN_DEVICE
            out.unknown_ids = True
        elif dev.gateway_id is not None and dev.gateway_id != gw_id:
            reason = DeadLetterReason.DEVICE_NOT_ON_GATEWAY
        else:
            pid = points.get((device, r.point))
            if pid is None:
                reason = DeadLetterReason.UNKNOWN_POINT
                out.unknown_ids = True
            elif ts > hi:
                reason = DeadLetterReason.TS_IN_FUTURE
            elif lo is not None and ts < lo:
                reason = DeadLetterReason.TS_TOO_OLD
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


_TS_LIMIT = 2**53


def warm_up_scanner() -> None:
    """Load the compiled scanner (compiled once on first use, then cached on disk). Should it
    fail to compile here, the Python paths take every message (slower, same result)."""
    global _scan
    if _scan is None:
        return
    try:
        _scan.warm_up()
    except Exception:
        log.exception("the compiled scanner is not usable here; using the Python decoder")
        _scan = None


def check_scanned_telemetry(
    payload: bytes,
    topic_gw: str,
    registry: Registry,
    now_ms: int,
    window: Window,
) -> Checked | None:
    """The compiled fast path (ingest.scan): the same result as
    :func:`check_clean_telemetry`, or None where that one or the full decoder must decide."""
    table = registry.wire_table
    if table is None or _scan is None or len(payload) > MAX_PAYLOAD_BYTES:
        return None
    info = registry.gateways.get(topic_gw)
    if info is None or not info.allowed or not valid_id(topic_gw):
        return None
    # timestamps beyond +-2**53 ms (285,000 years) are left to the Python paths
    lo = -_TS_LIMIT if window.max_age_s is None else now_ms - int(window.max_age_s * 1000)
    hi = now_ms + int(window.max_future_s * 1000)
    lo, hi = max(lo, -_TS_LIMIT), min(hi, _TS_LIMIT)
    got = _scan.read(payload, info.id, lo, hi, table, BUCKET_MS)
    if got is None or got.version != VERSION or got.seq < 0 or got.gw != topic_gw.encode():
        return None
    try:
        boot = got.boot.decode()
    except UnicodeDecodeError:
        return None
    if not 0 < len(boot) <= 64:
        return None
    return Checked(
        rows=ScannedRows(got.packed, got.count),
        key=BatchKey(info.id, topic_gw, boot, got.seq),
        sent_ms=got.sent,
        seen_pairs=got.seen,
        packed=got.packed,
        buckets=got.buckets,
    )


def check_clean_telemetry(
    payload: bytes,
    topic_gw: str,
    registry: Registry,
    now_ms: int,
    window: Window,
) -> Checked | None:
    """The fast path of :func:`check_telemetry` for a message with nothing to reject.

    One pass over the raw JSON rows makes the rows, their binary COPY bytes, the dirty rollup
    buckets and the device last-seen times, without building a reading object per row. It
    accepts only what the full path would accept without a single dead letter (the checks are
    the same or stricter); on the first thing it does not like it returns None, and the caller
    runs the full path, which then names the reason.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        doc = _fast_loads(payload)
    except ValueError:
        return None
    if type(doc) is not dict or doc.get("v") != VERSION:
        return None
    gw = doc.get("gw")
    boot = doc.get("boot")
    seq = doc.get("seq")
    sent = doc.get("sent")
    rs = doc.get("r")
    if (
        type(gw) is not str
        or gw != topic_gw
        or not valid_id(gw)
        or type(boot) is not str
        or not 0 < len(boot) <= 64
        or type(seq) is not int
        or seq < 0
        or type(sent) is not int
        or type(rs) is not list
    ):
        return None
    info = registry.gateways.get(gw)
    if info is None or not info.allowed:
        return None
    gw_id = info.id
    wire = registry.wire
    lo = None if window.max_age_s is None else now_ms - int(window.max_age_s * 1000)
    hi = now_ms + int(window.max_future_s * 1000)
    rows: list[Row] = []
    packed: list[bytes] = []
    buckets: set[tuple[int, int]] = set()
    seen: dict[int, int] = {}
    add_row, add_bytes, add_bucket = rows.append, packed.append, buckets.add
    full, null, isfinite = PACK_ROW, PACK_ROW_NULL, math.isfinite
    epoch, width, comm_fail = PG_EPOCH_MS, BUCKET_MS, int(Quality.COMM_FAIL)
    for row in rs:
        if type(row) is not list:
            return None
        n = len(row)
        if n == 5:
            device, point, ts, value, q = row
        elif n == 4:
            device, point, ts, value = row
            q = 0
        else:
            return None
        if type(device) is not str or type(point) is not str:
            return None
        e = wire.get((device, point))
        if e is None:
            return None
        pid, did, dgw = e
        if dgw is not None and dgw != gw_id:
            return None
        if type(ts) is not int or ts > hi or (lo is not None and ts < lo):
            return None
        if type(q) is not int or not 0 <= q <= 3:
            return None
        vt = type(value)
        if vt is float:
            if not isfinite(value):
                return None
        elif vt is int:
            value = float(value)
        elif value is not None or q == 0:
            return None
        add_row((ts, pid, value, q))
        if value is None:
            add_bytes(null(4, 8, (ts - epoch) * 1000, 8, pid, -1, 2, q))
        else:
            add_bytes(full(4, 8, (ts - epoch) * 1000, 8, pid, 8, value, 2, q))
            if q == 0:
                add_bucket((pid, ts - ts % width))
        if q != comm_fail and ts > seen.get(did, -1):
            seen[did] = ts
    return Checked(
        rows=rows,
        key=BatchKey(gw_id, gw, boot, seq),
        sent_ms=sent,
        device_seen=seen,
        packed=b"".join(packed),
        buckets=buckets,
    )


def check_state(topic: str, payload: bytes, topics: Topics, registry: Registry) -> Checked:
    """Validate a gateway state message (birth, last will or health update)."""
    try:
        topic_gw, kind = topics.parse(topic)
    except ProtocolError as exc:
        return _whole(topic, payload, decoder_reason(exc.reason), exc.detail, None)
    if kind != "state":
        return _whole(
            topic, payload, DeadLetterReason.UNEXPECTED_TOPIC, f"{kind} on the state path", topic_gw
        )
    if not payload:
        # an empty retained message clears the retained state: nothing to record
        return Checked()
    try:
        st = decode_state(payload)
    except ProtocolError as exc:
        return _whole(topic, payload, decoder_reason(exc.reason), exc.detail, topic_gw)
    if st.gateway != topic_gw:
        return _whole(
            topic,
            payload,
            DeadLetterReason.GATEWAY_MISMATCH,
            f"payload gateway {st.gateway!r} published on the topic of {topic_gw!r}",
            topic_gw,
        )
    gw = registry.gateways.get(st.gateway)
    if gw is None:
        return _whole(
            topic,
            payload,
            DeadLetterReason.UNKNOWN_GATEWAY,
            f"gateway {st.gateway!r} is not registered",
            topic_gw,
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
) -> tuple[Row | None, DeadLetterReason | None]:
    """Validate one imported reading with the same rules as live telemetry."""
    dev = registry.devices.get(rec.device)
    if dev is None:
        return None, DeadLetterReason.UNKNOWN_DEVICE
    pid = registry.points.get((rec.device, rec.point))
    if pid is None:
        return None, DeadLetterReason.UNKNOWN_POINT
    if not 0 <= rec.quality <= 3:
        return None, DeadLetterReason.BAD_QUALITY
    if rec.value is None and rec.quality == Quality.GOOD:
        return None, DeadLetterReason.MISSING_VALUE
    reason = window.check(rec.ts_ms, now_ms)
    if reason is not None:
        return None, reason
    return (rec.ts_ms, pid, rec.value, rec.quality), None

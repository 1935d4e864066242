"""The suvnet MQTT wire protocol, version 1 (pure: bytes in, values out).

Topics (``root`` is ``suvnet`` unless configured otherwise)::

    {root}/v1/{gateway}/telemetry     gateway -> office   batch of readings, QoS 1
    {root}/v1/{gateway}/state         gateway -> office   retained birth / last will / health
    {root}/v1/{gateway}/ack           office -> gateway   batches committed in the database
    {root}/v1/{gateway}/cmd           office -> gateway   command (setpoint, schedule, coil)
    {root}/v1/{gateway}/cmd/result    gateway -> office   result of a command
    {root}/v1/{source}/value/{device}/{point}
                                      source -> gateways  latest value of one point, retained
                                                          (a critical-point pressure for the
                                                          PRV controller of another gateway)

Ingest workers subscribe to ``$share/ingest/{root}/v1/+/telemetry`` so that several of them
split the load. Every payload is a UTF-8 JSON object with ``"v": 1``. Timestamps are integer
milliseconds since the Unix epoch (UTC). See docs/protocol.md for the full description.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from typing import Any, Literal

from suvnet.errors import DecodeReason, ProtocolError

VERSION = 1
MAX_PAYLOAD_BYTES = 1_048_576
"""Largest payload accepted by a decoder (1 MiB); bigger messages are dead-lettered."""

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class Quality(IntEnum):
    """Quality flag carried by every reading."""

    GOOD = 0
    STALE = 1
    COMM_FAIL = 2
    OUT_OF_RANGE = 3

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@lru_cache(maxsize=65536)
def valid_id(value: str) -> bool:
    """Gateway, device and point ids: 1-64 of ``A-Z a-z 0-9 _ . -``, not starting with a sign."""
    return bool(_ID_RE.match(value))


# ---------------------------------------------------------------------------------------- topics


@dataclass(frozen=True)
class Topics:
    """Builds and parses topic names under one root."""

    root: str = "suvnet"

    def _base(self, gateway: str) -> str:
        if not valid_id(gateway):
            raise ValueError(f"invalid gateway id {gateway!r}")
        return f"{self.root}/v{VERSION}/{gateway}"

    def telemetry(self, gateway: str) -> str:
        return f"{self._base(gateway)}/telemetry"

    def state(self, gateway: str) -> str:
        return f"{self._base(gateway)}/state"

    def ack(self, gateway: str) -> str:
        return f"{self._base(gateway)}/ack"

    def command(self, gateway: str) -> str:
        return f"{self._base(gateway)}/cmd"

    def command_result(self, gateway: str) -> str:
        return f"{self._base(gateway)}/cmd/result"

    def value(self, source: str, device: str, point: str) -> str:
        """The latest value of ``device/point``, published by ``source``: the gateway that
        polls the device, or ``suvnet-office`` for values the office relays."""
        if not valid_id(device) or not valid_id(point):
            raise ValueError(f"invalid device or point id {device!r}/{point!r}")
        return f"{self._base(source)}/value/{device}/{point}"

    def parse_value(self, topic: str) -> tuple[str, str, str]:
        """``(source, device, point)`` of a value topic."""
        prefix = f"{self.root}/v{VERSION}/"
        parts = topic[len(prefix) :].split("/") if topic.startswith(prefix) else []
        if len(parts) != 4 or parts[1] != "value" or not all(valid_id(x) for x in parts[::2]):
            raise ProtocolError("bad_topic", f"{topic!r} is not a value topic")
        if not valid_id(parts[3]):
            raise ProtocolError("bad_topic", f"{topic!r} is not a value topic")
        return parts[0], parts[2], parts[3]

    def telemetry_shared(self, group: str = "ingest") -> str:
        return f"$share/{group}/{self.root}/v{VERSION}/+/telemetry"

    def all_states(self) -> str:
        return f"{self.root}/v{VERSION}/+/state"

    def all_command_results(self) -> str:
        return f"{self.root}/v{VERSION}/+/cmd/result"

    def parse(self, topic: str) -> tuple[str, str]:
        """Return ``(gateway, kind)`` for a topic, kind in telemetry/state/ack/cmd/cmd/result."""
        prefix = f"{self.root}/v{VERSION}/"
        if not topic.startswith(prefix):
            raise ProtocolError("bad_topic", f"topic {topic!r} is not under {prefix}")
        rest = topic[len(prefix) :]
        gateway, _, kind = rest.partition("/")
        if not valid_id(gateway) or kind not in {"telemetry", "state", "ack", "cmd", "cmd/result"}:
            raise ProtocolError("bad_topic", f"unknown topic {topic!r}")
        return gateway, kind


# -------------------------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one point of one device at one instant (``ts_ms``, UTC epoch ms)."""

    device: str
    point: str
    ts_ms: int
    value: float | None
    quality: Quality = Quality.GOOD


@dataclass(frozen=True)
class TelemetryBatch:
    """A batch of readings; (gateway, boot, seq) identifies it and makes it idempotent."""

    gateway: str
    boot: str
    seq: int
    sent_ms: int
    readings: tuple[Reading, ...]


@dataclass(frozen=True)
class RejectedReading:
    """A reading that could not be decoded, with its index in the batch and the reason."""

    index: int
    raw: Any
    reason: DecodeReason


@dataclass(frozen=True)
class DecodedBatch:
    """Result of decoding a telemetry payload: good readings plus per-reading rejects."""

    batch: TelemetryBatch
    rejected: tuple[RejectedReading, ...] = ()


@dataclass(frozen=True)
class GatewayState:
    """Retained state of a gateway: birth (online), last will (offline) or a health update.

    A birth also announces the gateway's configuration: ``points`` maps every device it polls
    to the point ids it publishes (bit sub-points included), so the office can check them
    against its registry. Health updates carry only ``points_hash``, the
    :func:`points_hash` of that announcement.
    """

    gateway: str
    state: Literal["online", "offline"]
    ts_ms: int
    boot: str | None = None
    health: dict[str, Any] = field(default_factory=dict)
    points: Mapping[str, tuple[str, ...]] | None = None
    points_hash: str | None = None


@dataclass(frozen=True)
class Ack:
    """End-to-end ack: the ``seq`` ranges (inclusive) of ``boot`` committed in the database."""

    boot: str
    ranges: tuple[tuple[int, int], ...]

    def contains(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self.ranges)


CommandOp = Literal["write", "schedule", "control", "share"]
COMMAND_OPS: tuple[CommandOp, ...] = ("write", "schedule", "control", "share")


@dataclass(frozen=True)
class Command:
    """A command for a gateway.

    ``op``: ``write`` (one point), ``schedule``, ``control`` (the PRV controller's
    configuration of ``device``: ``control``, a JSON object, or None to stop regulating it)
    or ``share`` (publish the latest values of ``points`` of ``device`` on their value topics;
    none: stop)."""

    id: str
    device: str
    op: CommandOp
    point: str | None = None
    value: float | bool | None = None
    schedule: tuple[tuple[str, float], ...] = ()
    ts_ms: int = 0
    expires_ms: int | None = None
    control: Mapping[str, Any] | None = None
    points: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PointValue:
    """The latest value of one point, as a value topic carries it (``ts_ms`` UTC epoch ms)."""

    device: str
    point: str
    ts_ms: int
    value: float | None
    quality: Quality = Quality.GOOD


@dataclass(frozen=True)
class CommandResult:
    """Result of a command: ``ok`` with the value read back, or a refusal with its reason."""

    id: str
    ok: bool
    ts_ms: int
    reason: str | None = None
    readback: float | bool | None = None


try:  # orjson is in the server install; a gateway falls back to the standard library
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the install
    _fast_loads = json.loads  # type: ignore[assignment]


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def _loads(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("too_large", f"payload of {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        doc = _fast_loads(payload)
    except ValueError:
        # the slow path also accepts NaN/Infinity, so such readings are refused one by one
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError("bad_json", str(exc)) from exc
    if not isinstance(doc, dict):
        raise ProtocolError("bad_shape", "payload is not a JSON object")
    v = doc.get("v")
    if v != VERSION:
        raise ProtocolError("bad_version", f"unsupported protocol version {v!r}")
    return doc


def _req(doc: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    val = doc.get(key)
    if isinstance(val, bool) and typ is not bool:
        raise ProtocolError("bad_field", f"{key!r} must be {what}")
    if not isinstance(val, typ):
        raise ProtocolError("bad_field", f"{key!r} must be {what}")
    return val


def encode_telemetry(batch: TelemetryBatch) -> bytes:
    """Encode a batch. NaN/infinite values are refused (send quality out-of-range instead)."""
    rows = [[r.device, r.point, r.ts_ms, r.value, int(r.quality)] for r in batch.readings]
    return _dumps(
        {
            "v": VERSION,
            "gw": batch.gateway,
            "boot": batch.boot,
            "seq": batch.seq,
            "sent": batch.sent_ms,
            "r": rows,
        }
    )


_QUALITIES = tuple(Quality)


def _decode_reading(row: Any) -> Reading | DecodeReason:
    """Decode one ``[device, point, ts_ms, value, quality]`` row, or return a reject reason."""
    if type(row) is not list or not 4 <= len(row) <= 5:
        return "bad_reading_shape"
    device, point, ts, value = row[0], row[1], row[2], row[3]
    q_raw = row[4] if len(row) == 5 else 0
    if type(device) is not str or not valid_id(device):
        return "bad_device_id"
    if type(point) is not str or not valid_id(point):
        return "bad_point_id"
    if type(ts) is not int:
        return "bad_timestamp"
    if type(q_raw) is not int or not 0 <= q_raw <= 3:
        return "bad_quality"
    quality = _QUALITIES[q_raw]
    vt = type(value)
    if vt is float:
        if not math.isfinite(value):
            return "non_finite_value"
        return Reading(device, point, ts, value, quality)
    if value is None:
        if quality is Quality.GOOD:
            return "missing_value"
        return Reading(device, point, ts, None, quality)
    if vt is bool:
        return Reading(device, point, ts, 1.0 if value else 0.0, quality)
    if vt is not int:
        return "bad_value_type"
    return Reading(device, point, ts, float(value), quality)


def decode_telemetry(payload: bytes) -> DecodedBatch:
    """Decode a telemetry payload.

    Raises :class:`ProtocolError` when the envelope is unusable (the whole message goes to the
    dead letters). Single bad readings are returned in ``rejected`` with their reason.
    """
    doc = _loads(payload)
    gw = _req(doc, "gw", str, "the gateway id (string)")
    if not valid_id(gw):
        raise ProtocolError("bad_field", f"invalid gateway id {gw!r}")
    boot = _req(doc, "boot", str, "the boot/session id (string)")
    if not boot or len(boot) > 64:
        raise ProtocolError("bad_field", "'boot' must be 1-64 characters")
    seq = _req(doc, "seq", int, "a non-negative integer")
    if seq < 0:
        raise ProtocolError("bad_field", "'seq' must be >= 0")
    sent = _req(doc, "sent", int, "epoch milliseconds (integer)")
    rows = _req(doc, "r", list, "a list of readings")
    good: list[Reading] = []
    rejected: list[RejectedReading] = []
    for i, row in enumerate(rows):
        res = _decode_reading(row)
        if isinstance(res, str):
            rejected.append(RejectedReading(i, row, res))
        else:
            good.append(res)
    return DecodedBatch(TelemetryBatch(gw, boot, seq, sent, tuple(good)), tuple(rejected))


MAX_ANNOUNCED_POINTS = 100_000
"""Most point ids a birth may announce (a gateway with 10,000 meters of 10 points)."""


def points_hash(points: Mapping[str, Iterable[str]]) -> str:
    """A short fingerprint of an announced configuration (independent of order)."""
    canon = json.dumps(
        {dev: sorted(set(names)) for dev, names in points.items()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def encode_state(state: GatewayState) -> bytes:
    doc: dict[str, Any] = {
        "v": VERSION,
        "gw": state.gateway,
        "state": state.state,
        "ts": state.ts_ms,
    }
    if state.boot is not None:
        doc["boot"] = state.boot
    if state.health:
        doc["health"] = state.health
    if state.points is not None:
        doc["points"] = {dev: list(names) for dev, names in state.points.items()}
    if state.points_hash is not None:
        doc["points_hash"] = state.points_hash
    return _dumps(doc)


def _decode_points(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ProtocolError("bad_field", "'points' must be an object: device -> [point, ...]")
    out: dict[str, tuple[str, ...]] = {}
    total = 0
    for dev, names in raw.items():
        if not valid_id(dev):
            raise ProtocolError("bad_field", f"'points' names an invalid device id {dev!r}")
        if not isinstance(names, list) or not all(
            isinstance(n, str) and valid_id(n) for n in names
        ):
            raise ProtocolError(
                "bad_field", f"'points' of device {dev!r} must be a list of point ids"
            )
        total += len(names)
        if total > MAX_ANNOUNCED_POINTS:
            raise ProtocolError("bad_field", f"'points' names more than {MAX_ANNOUNCED_POINTS}")
        out[dev] = tuple(names)
    return out


def decode_state(payload: bytes) -> GatewayState:
    doc = _loads(payload)
    gw = _req(doc, "gw", str, "the gateway id")
    st = doc.get("state")
    if st not in ("online", "offline"):
        raise ProtocolError("bad_field", "'state' must be 'online' or 'offline'")
    ts = _req(doc, "ts", int, "epoch milliseconds")
    boot = doc.get("boot")
    if boot is not None and not isinstance(boot, str):
        raise ProtocolError("bad_field", "'boot' must be a string")
    health = doc.get("health", {})
    if not isinstance(health, dict):
        raise ProtocolError("bad_field", "'health' must be an object")
    points = None if doc.get("points") is None else _decode_points(doc["points"])
    phash = doc.get("points_hash")
    if phash is not None and (not isinstance(phash, str) or not 1 <= len(phash) <= 64):
        raise ProtocolError("bad_field", "'points_hash' must be a string of 1-64 characters")
    return GatewayState(gw, st, ts, boot, health, points, phash)


def compress_ranges(seqs: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Turn sequence numbers into sorted inclusive ranges: [1,2,3,7] -> ((1,3),(7,7))."""
    out: list[list[int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return tuple((a, b) for a, b in out)


def encode_ack(ack: Ack) -> bytes:
    return _dumps({"v": VERSION, "boot": ack.boot, "ranges": [list(r) for r in ack.ranges]})


def decode_ack(payload: bytes) -> Ack:
    doc = _loads(payload)
    boot = _req(doc, "boot", str, "the boot id")
    ranges = _req(doc, "ranges", list, "a list of [first, last] pairs")
    out: list[tuple[int, int]] = []
    for r in ranges:
        if (
            not isinstance(r, list)
            or len(r) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in r)
            or r[0] > r[1]
        ):
            raise ProtocolError("bad_field", f"bad ack range {r!r}")
        out.append((r[0], r[1]))
    return Ack(boot, tuple(out))


def encode_command(cmd: Command) -> bytes:
    doc: dict[str, Any] = {
        "v": VERSION,
        "id": cmd.id,
        "device": cmd.device,
        "op": cmd.op,
        "ts": cmd.ts_ms,
    }
    if cmd.point is not None:
        doc["point"] = cmd.point
    if cmd.value is not None:
        doc["value"] = cmd.value
    if cmd.schedule:
        doc["schedule"] = [[t, v] for t, v in cmd.schedule]
    if cmd.expires_ms is not None:
        doc["expires"] = cmd.expires_ms
    if cmd.op == "control":
        doc["control"] = None if cmd.control is None else dict(cmd.control)
    if cmd.op == "share":
        doc["points"] = list(cmd.points)
    return _dumps(doc)


def decode_command(payload: bytes) -> Command:
    doc = _loads(payload)
    cid = _req(doc, "id", str, "the request id")
    if not cid or len(cid) > 128:
        raise ProtocolError("bad_field", "'id' must be 1-128 characters")
    device = _req(doc, "device", str, "a device id")
    op = doc.get("op")
    if op not in COMMAND_OPS:
        raise ProtocolError("bad_field", f"'op' must be one of {', '.join(COMMAND_OPS)}")
    ts = doc.get("ts", 0)
    expires = doc.get("expires")
    if op == "control":
        if "control" not in doc:
            raise ProtocolError(
                "bad_field", "a control command needs 'control' (an object or null)"
            )
        ctl = doc["control"]
        if ctl is not None and not isinstance(ctl, dict):
            raise ProtocolError("bad_field", "'control' must be an object or null")
        return Command(cid, device, "control", None, None, (), ts, expires, ctl)
    if op == "share":
        pts = _req(doc, "points", list, "a list of point ids")
        if len(pts) > 64 or not all(isinstance(x, str) and valid_id(x) for x in pts):
            raise ProtocolError("bad_field", "'points' must be a list of at most 64 point ids")
        return Command(cid, device, "share", None, None, (), ts, expires, None, tuple(pts))
    if op == "write":
        point = _req(doc, "point", str, "a point name")
        value = doc.get("value")
        if not isinstance(value, int | float | bool) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise ProtocolError("bad_field", "'value' must be a finite number or a boolean")
        return Command(cid, device, "write", point, value, (), ts, expires)
    sched_raw = _req(doc, "schedule", list, 'a list of ["HH:MM", value] pairs')
    sched: list[tuple[str, float]] = []
    for item in sched_raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", item[0])
            or isinstance(item[1], bool)
            or not isinstance(item[1], int | float)
        ):
            raise ProtocolError("bad_field", f"bad schedule entry {item!r}")
        sched.append((item[0], float(item[1])))
    return Command(cid, device, "schedule", None, None, tuple(sched), ts, expires)


def encode_command_result(res: CommandResult) -> bytes:
    doc: dict[str, Any] = {"v": VERSION, "id": res.id, "ok": res.ok, "ts": res.ts_ms}
    if res.reason is not None:
        doc["reason"] = res.reason
    if res.readback is not None:
        doc["readback"] = res.readback
    return _dumps(doc)


def decode_command_result(payload: bytes) -> CommandResult:
    doc = _loads(payload)
    cid = _req(doc, "id", str, "the request id")
    ok = _req(doc, "ok", bool, "true or false")
    ts = _req(doc, "ts", int, "epoch milliseconds")
    reason = doc.get("reason")
    readback = doc.get("readback")
    return CommandResult(cid, ok, ts, reason if isinstance(reason, str) else None, readback)


def encode_value(v: PointValue) -> bytes:
    """A value topic's payload: ``{"v": 1, "device", "point", "ts", "value", "q"}``."""
    return _dumps(
        {
            "v": VERSION,
            "device": v.device,
            "point": v.point,
            "ts": v.ts_ms,
            "value": v.value,
            "q": int(v.quality),
        }
    )


def decode_value(payload: bytes) -> PointValue:
    doc = _loads(payload)
    device = _req(doc, "device", str, "a device id")
    point = _req(doc, "point", str, "a point id")
    if not valid_id(device) or not valid_id(point):
        raise ProtocolError("bad_field", "invalid device or point id")
    ts = _req(doc, "ts", int, "epoch milliseconds")
    q = doc.get("q", 0)
    if type(q) is not int or not 0 <= q <= 3:
        raise ProtocolError("bad_field", "'q' must be a quality code 0-3")
    quality = _QUALITIES[q]
    value = doc.get("value")
    if value is None:
        if quality is Quality.GOOD:
            raise ProtocolError("bad_field", "a good value needs 'value'")
        return PointValue(device, point, ts, None, quality)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError("bad_field", "'value' must be a finite number or null")
    return PointValue(device, point, ts, float(value), quality)


def batches(readings: Sequence[Reading], max_per_batch: int) -> list[Sequence[Reading]]:
    """Split readings into chunks of at most ``max_per_batch``."""
    if max_per_batch < 1:
        raise ValueError("max_per_batch must be >= 1")
    return [readings[i : i + max_per_batch] for i in range(0, len(readings), max_per_batch)]

"""Gateway and device online/offline decisions (pure: states and times in, transitions out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ingest.reasons import StateReason
from suvnet.protocol import GatewayState


@dataclass(frozen=True, slots=True)
class SeenUpdate:
    """New last-seen time of a device or gateway, and whether it comes online by it."""

    id: int
    last_seen_ms: int
    goes_online: bool


def fresh(last_seen_ms: int, period_s: float, factor: float, now_ms: int) -> bool:
    """True while the newest data is younger than ``factor`` poll periods."""
    return last_seen_ms >= now_ms - int(factor * period_s * 1000)


def decide_seen(
    current: Mapping[int, str],
    seen: Mapping[int, int],
    periods: Mapping[int, float],
    *,
    factor: float,
    default_period_s: float,
    now_ms: int,
) -> list[SeenUpdate]:
    """Which devices (or gateways) become online through newly seen data.

    ``current`` holds the stored state of those that have one; ``seen`` the newest data time.
    Old data (e.g. an outbox replayed after an outage) updates last-seen but does not bring a
    device online unless it is fresh.
    """
    out: list[SeenUpdate] = []
    for ident in sorted(seen):
        ts = min(seen[ident], now_ms)
        is_fresh = fresh(ts, periods.get(ident, default_period_s), factor, now_ms)
        out.append(SeenUpdate(ident, ts, is_fresh and current.get(ident) != "online"))
    return out


@dataclass(frozen=True, slots=True)
class StateChange:
    """What a gateway state message does to the stored state."""

    state: str
    ts_ms: int
    transition: bool
    reason: StateReason


def decide_gateway_message(current: str | None, msg: GatewayState, now_ms: int) -> StateChange:
    """Apply a birth / last-will / health message to the stored gateway state.

    A birth's own timestamp is used (not later than now); a last will carries the time of the
    connection that set it, so the time it is received is used instead.
    """
    if msg.state == "online":
        ts = min(msg.ts_ms, now_ms)
        reason = StateReason.BIRTH if current != "online" else StateReason.HEALTH
    else:
        ts = now_ms
        reason = StateReason.LAST_WILL
    return StateChange(msg.state, ts, current != msg.state, reason)

"""What the office API reads and writes about PRV control: the regulated PRVs with their
configuration (table ``prv_controls``), the state of its last sending to the gateway, the live
values (the controller's ``ctl_*`` readings, the PRV's own and its critical points'), and the
device profile a device was registered with (``device_profiles``), which the API checks
setpoints against before a command leaves.

Async functions on an :class:`psycopg.AsyncConnection`; they never commit: the caller owns
the transaction (like :mod:`suvnet.registry_queries`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from suvnet.errors import FileFormatError
from suvnet.listing import fetch_all, fetch_one
from suvnet.profiles import (
    CONTROLLER_POINT_NAMES,
    Profile,
    default_profiles_dir,
    load_profile,
)
from suvnet.prvcontrol import ControlConfig, SignalDevice

AConn = AsyncConnection[Any]

PRV_SELECT = """
SELECT d.id, d.code, d.profile, d.enabled, g.code AS gateway, z.code AS zone,
       z.min_service_pressure_bar, c.config, c.source, c.updated_at, c.updated_by,
       c.sent_command_id, c.sent_config, c.sent_at, c.sent_status, c.sent_reason
FROM devices d
LEFT JOIN gateways g ON g.id = d.gateway_id
LEFT JOIN zones z ON z.id = d.zone_id
LEFT JOIN prv_controls c ON c.device_id = d.id
WHERE d.kind = 'prv_controller'
"""

LATEST = """
SELECT d.code AS device, p.name AS point, p.unit, lr.ts, lr.value, lr.quality
FROM devices d
JOIN points p ON p.device_id = d.id
LEFT JOIN LATERAL (
    SELECT r.ts, r.value, r.quality FROM readings r
    WHERE r.point_id = p.id ORDER BY r.ts DESC LIMIT 1
) lr ON true
WHERE (d.code, p.name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""


async def device_profile(conn: AConn, device: str) -> Profile | None:
    """The profile ``device`` was registered with: as the last site apply stored it, else the
    shipped file of that name; None when neither is known (then only the gateway checks)."""
    row = await fetch_one(
        conn,
        "SELECT d.profile, dp.body FROM devices d "
        "LEFT JOIN device_profiles dp ON dp.name = d.profile WHERE d.code = %s",
        (device,),
    )
    if row is None:
        return None
    if row["body"] is not None:
        try:
            return Profile.model_validate(row["body"])
        except ValidationError:
            return None
    path = default_profiles_dir() / f"{row['profile']}.yaml"
    if not path.is_file():
        return None
    try:
        return load_profile(path)
    except FileFormatError:
        return None


async def prv_list(conn: AConn) -> list[dict[str, Any]]:
    """Every PRV controller device with its configuration and sending state, by code."""
    return await fetch_all(conn, PRV_SELECT + " ORDER BY d.code")


async def prv(conn: AConn, device: str) -> dict[str, Any] | None:
    return await fetch_one(conn, PRV_SELECT + " AND d.code = %s", (device,))


async def latest(conn: AConn, points: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The newest reading of each ``(device, point)`` (ts, value, quality, unit)."""
    if not points:
        return {}
    rows = await fetch_all(conn, LATEST, ([d for d, _ in points], [p for _, p in points]))
    return {(r["device"], r["point"]): r for r in rows}


def live_points(device: str, profile: Profile | None, cfg: ControlConfig | None) -> list[
    tuple[str, str]
]:  # fmt: skip
    """The points a PRV's page shows: the controller's decisions, the PRV's setpoint, inlet
    and outlet, and each critical-point sensor."""
    out = [(device, name) for name in sorted(CONTROLLER_POINT_NAMES)]
    if profile is not None and profile.controller is not None:
        c = profile.controller
        out += [(device, p) for p in (c.setpoint, c.outlet, c.inlet, c.enable) if p]
    if cfg is not None:
        out += [s.key for s in cfg.signals()]
    return out


async def signal_devices(conn: AConn, devices: list[str]) -> dict[str, SignalDevice]:
    """What :func:`suvnet.prvcontrol.resolve_signals` needs to know about ``devices``."""
    rows = await fetch_all(
        conn,
        "SELECT d.code, g.code AS gateway, z.code AS zone, d.flow_sign, "
        "coalesce(array_agg(p.name) FILTER (WHERE p.name IS NOT NULL), '{}') AS points "
        "FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id "
        "LEFT JOIN zones z ON z.id = d.zone_id LEFT JOIN points p ON p.device_id = d.id "
        "WHERE d.code = ANY(%s) GROUP BY d.code, g.code, z.code, d.flow_sign",
        (devices,),
    )
    return {
        r["code"]: SignalDevice(
            r["gateway"], r["zone"], int(r["flow_sign"]), frozenset(r["points"])
        )
        for r in rows
    }


async def save_control(
    conn: AConn, device_id: int, config: dict[str, Any] | None, *, user: str, at: datetime
) -> None:
    """The configuration the office set through the API (None: the PRV is not regulated)."""
    if config is None:
        await conn.execute("DELETE FROM prv_controls WHERE device_id = %s", (device_id,))
        return
    await conn.execute(
        "INSERT INTO prv_controls (device_id, config, source, updated_at, updated_by) "
        "VALUES (%s, %s, 'api', %s, %s) ON CONFLICT (device_id) DO UPDATE SET "
        "config = EXCLUDED.config, source = 'api', updated_at = EXCLUDED.updated_at, "
        "updated_by = EXCLUDED.updated_by",
        (device_id, Jsonb(config), at, user),
    )


async def mark_sent(
    conn: AConn,
    device_id: int,
    *,
    command_id: str,
    config: dict[str, Any] | None,
    status: str,
    reason: str | None,
    at: datetime,
) -> None:
    """What became of the last control command sent for the PRV."""
    await conn.execute(
        "UPDATE prv_controls SET sent_command_id = %s, sent_config = %s, sent_status = %s, "
        "sent_reason = %s, sent_at = %s WHERE device_id = %s",
        (command_id, None if config is None else Jsonb(config), status, reason, at, device_id),
    )


async def shared_points(conn: AConn, source: str) -> dict[str, list[str]]:
    """Every point of a device polled by gateway ``source`` that a controller elsewhere
    reads (the ``share`` command ``source`` must carry out), by device."""
    rows = await fetch_all(conn, "SELECT config FROM prv_controls")
    out: dict[str, set[str]] = {}
    for r in rows:
        try:
            cfg = ControlConfig.model_validate(r["config"])
        except ValidationError:
            continue
        for sig in cfg.remote_signals():
            if sig.source == source:
                out.setdefault(sig.device, set()).add(sig.point)
    return {k: sorted(v) for k, v in sorted(out.items())}


async def gateway_of(conn: AConn, device: str) -> tuple[int, int, str] | None:
    """(gateway id, device id, gateway code) of ``device``."""
    row = await fetch_one(
        conn,
        "SELECT g.id AS gid, d.id AS did, g.code FROM devices d "
        "JOIN gateways g ON g.id = d.gateway_id WHERE d.code = %s",
        (device,),
    )
    return None if row is None else (int(row["gid"]), int(row["did"]), str(row["code"]))

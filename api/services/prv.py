"""PRV pressure control at the office (docs/pressure-management.md): a PRV's controller
configuration is checked (the same checks as the site file, a 422 with the field when it is
wrong), stored (``prv_controls``) with an audit row, and sent to the gateway as a ``control``
command with a result; the gateways that poll its remote critical-point sensors get a
``share`` command. Used by the JSON API (:mod:`api.routes.prv`) and the back-office page
(:mod:`api.web.prv_pages`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection
from pydantic import ValidationError

from api.audit import write_audit
from api.commands import new_command_id, send_command
from api.deps import AppState
from api.errors import InvalidError, NotFoundError, UnavailableError
from api.security import Principal
from suvnet import prv_queries as pq
from suvnet import registry_queries as rq
from suvnet.profiles import Profile
from suvnet.protocol import Command
from suvnet.prvcontrol import (
    OFFICE_SOURCE,
    ControlConfig,
    Problem,
    config_problems,
    resolve_signals,
)

AConn = AsyncConnection[Any]


def _where(loc: tuple[str | int, ...]) -> str:
    return str(Problem(loc, "")).rstrip(": ").strip()


def parse_control(raw: Any) -> ControlConfig:
    """A configuration from JSON; a 422 naming the field when it is not one."""
    if not isinstance(raw, dict):
        raise InvalidError("the control configuration must be a JSON object")
    try:
        return ControlConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise InvalidError(f"{_where(loc)}: {msg}" if loc else msg) from exc


async def prv_or_404(conn: AConn, device: str) -> dict[str, Any]:
    row = await pq.prv(conn, device)
    if row is None:
        raise NotFoundError(f"no PRV controller {device!r}")
    return row


async def checked(conn: AConn, row: dict[str, Any], cfg: ControlConfig) -> ControlConfig:
    """``cfg`` checked for the PRV of ``row`` and its signals resolved, or a 422."""
    device = str(row["code"])
    profile = await pq.device_profile(conn, device)
    if profile is not None and profile.controller is None:
        raise InvalidError(f"{device}'s profile {profile.profile} has no controller section")
    problems = config_problems(cfg, profile.setpoint_range if profile else None)
    if not problems:
        names = [s.device for s in cfg.signals()]
        infos = await pq.signal_devices(conn, names)
        cfg, problems = resolve_signals(cfg, device, row["gateway"] or "", row["zone"], infos)
    if problems:
        first = problems[0]
        raise InvalidError(str(first))
    return cfg


@dataclass(frozen=True)
class Caller:
    """Who acts, through which request, on which connection."""

    conn: AConn
    request: Request
    who: Principal
    st: AppState


@dataclass(frozen=True)
class Sent:
    """One command sent to a gateway and its outcome."""

    gateway: str
    device: str
    op: str
    command_id: str
    status: str
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "device": self.device,
            "op": self.op,
            "command_id": self.command_id,
            "status": self.status,
            "reason": self.reason,
        }


async def _send(c: Caller, cmd: Command, payload: dict[str, Any]) -> Sent | None:
    """One command on record (``gateway_commands``, the audit log), sent and answered."""
    conn, st = c.conn, c.st
    target = await pq.gateway_of(conn, cmd.device)
    if target is None:
        return None
    gateway_id, device_id, gateway = target
    mqtt = st.settings.mqtt_url
    if not mqtt:
        raise UnavailableError("no MQTT broker is configured (SUVNET_MQTT_URL)")
    now = st.clock()
    await rq.record_command(
        conn,
        command_id=cmd.id,
        target=rq.CommandTarget(gateway_id, device_id, None),
        op=cmd.op,
        payload=payload,
        requested_by=c.who.user_id,
        sent_at=now,
    )
    await write_audit(
        conn, c.request, c.who, action="command", entity="gateway", entity_id=gateway,
        after={"id": cmd.id, **payload},
    )  # fmt: skip
    await conn.commit()  # on record before it goes out
    reason: str | None
    try:
        res = await send_command(mqtt, st.topics, gateway, cmd, st.command_timeout_s)
    except UnavailableError as exc:  # the broker cannot be reached: on record as an error
        status, reason = "error", exc.message
    else:
        status = "timeout" if res is None else ("ok" if res.ok else "refused")
        reason = None if res is None else res.reason
    await rq.finish_command(
        conn, cmd.id, status=status, reason=reason, readback=None, finished_at=st.clock()
    )
    await conn.commit()
    return Sent(gateway, cmd.device, cmd.op, cmd.id, status, reason)


def _command(st: AppState, device: str, **kw: Any) -> Command:
    now_ms = int(st.clock().timestamp() * 1000)
    return Command(
        id=new_command_id(),
        device=device,
        ts_ms=now_ms,
        expires_ms=now_ms + int(st.command_timeout_s * 1000),
        **kw,
    )


async def push(c: Caller, device: str) -> dict[str, Any]:
    """Send the PRV's stored configuration to its gateway (``control``; none stored: stop
    regulating), then what the gateways of its remote sensors must share (``share``)."""
    conn, st = c.conn, c.st
    row = await prv_or_404(conn, device)
    config = row["config"]
    cfg = None if config is None else ControlConfig.model_validate(config)
    sent = await _send(
        c,
        _command(st, device, op="control", control=config),
        {"device": device, "op": "control", "control": config},
    )
    if sent is None:
        raise InvalidError(f"{device} is not behind any gateway")
    if row["config"] is not None:
        await pq.mark_sent(
            conn, int(row["id"]), command_id=sent.command_id, config=config,
            status=sent.status, reason=sent.reason, at=st.clock(),
        )  # fmt: skip
        await conn.commit()
    shares: list[Sent] = []
    sources = {s.source for s in (cfg.remote_signals() if cfg else ()) if s.source}
    for source in sorted(sources - {OFFICE_SOURCE}):
        for dev, points in (await pq.shared_points(conn, source)).items():
            cmd = _command(st, dev, op="share", points=tuple(points))
            done = await _send(c, cmd, {"device": dev, "op": "share", "points": points})
            if done is not None:
                shares.append(done)
    return {**sent.as_dict(), "shares": [s.as_dict() for s in shares]}


async def set_control(
    c: Caller, device: str, cfg: ControlConfig | None, *, send: bool = True
) -> dict[str, Any]:
    """Check and store the PRV's configuration (None: not regulated) with its audit row;
    then, with ``send``, push it to the gateway."""
    conn, st = c.conn, c.st
    row = await prv_or_404(conn, device)
    wire = None
    if cfg is not None:
        wire = (await checked(conn, row, cfg)).wire()
    await pq.save_control(conn, int(row["id"]), wire, user=c.who.username, at=st.clock())
    await write_audit(
        conn, c.request, c.who, action="prv_control", entity="device", entity_id=device,
        before=row["config"], after=wire,
    )  # fmt: skip
    await conn.commit()
    out: dict[str, Any] = {"device": device, "control": wire, "stored": True}
    if send:
        try:
            out["push"] = await push(c, device)
        except UnavailableError as exc:  # stored all the same; sent once a broker is set up
            out["push"] = {"status": "error", "reason": exc.message}
    return out


async def set_auto(c: Caller, device: str, *, auto: bool) -> dict[str, Any]:
    """Hand (``auto`` false: the controller only watches) or automatic, sent at once."""
    row = await prv_or_404(c.conn, device)
    if row["config"] is None:
        raise InvalidError(f"{device} has no controller configuration to switch")
    cfg = ControlConfig.model_validate(row["config"]).model_copy(update={"auto": auto})
    return await set_control(c, device, cfg)


async def view(conn: AConn, device: str, now: datetime) -> dict[str, Any]:
    """A PRV for people and programs: its configuration, limits, profile, sending state and
    live values (the controller's decision, the PRV's pressures, each critical point)."""
    row = await prv_or_404(conn, device)
    cfg = None if row["config"] is None else ControlConfig.model_validate(row["config"])
    profile: Profile | None = await pq.device_profile(conn, device)
    live = await pq.latest(conn, pq.live_points(device, profile, cfg))

    def value(dev: str, point: str) -> dict[str, Any] | None:
        r = live.get((dev, point))
        if r is None or r["ts"] is None:
            return None
        age = (now - r["ts"]).total_seconds()
        return {"value": r["value"], "ts": r["ts"], "age_s": age, "quality": r["quality"]}

    ctl = profile.controller if profile else None
    sensors = [
        {"device": s.device, "point": s.point, "source": s.source,
         "reading": value(s.device, s.point)}
        for s in (cfg.signals() if cfg else ())
    ]  # fmt: skip
    return {
        "device": device,
        "gateway": row["gateway"],
        "zone": row["zone"],
        "min_service_pressure_bar": row["min_service_pressure_bar"],
        "profile": row["profile"],
        "device_range_bar": profile.setpoint_range if profile else None,
        "control": row["config"],
        "source": row["source"],
        "updated_at": row["updated_at"],
        "updated_by": row["updated_by"],
        "sent": {
            "command_id": row["sent_command_id"],
            "at": row["sent_at"],
            "status": row["sent_status"],
            "reason": row["sent_reason"],
            "current": row["sent_config"] == row["config"] if row["config"] else None,
        },
        "live": {
            "setpoint_bar": value(device, ctl.setpoint) if ctl else None,
            "outlet_bar": value(device, ctl.outlet) if ctl and ctl.outlet else None,
            "inlet_bar": value(device, ctl.inlet) if ctl and ctl.inlet else None,
            "critical_point_bar": value(device, "ctl_cp_bar"),
            "target_bar": value(device, "ctl_target_bar"),
            "chosen_setpoint_bar": value(device, "ctl_setpoint_bar"),
            "reason": value(device, "ctl_reason"),
            "auto": value(device, "ctl_auto"),
        },
        "sensors": sensors,
    }

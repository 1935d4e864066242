"""Gateway commands: a PRV setpoint or a schedule, sent over MQTT and answered or timed out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field, field_validator

from api.commands import command_problem, new_command_id, send_command
from api.deps import Conn, Paging, State, require, write_audit
from api.errors import GatewayTimeoutError, InvalidError, NotFoundError, UnavailableError
from api.security import READ_REGISTRY, SEND_COMMANDS, Principal
from api.sql import Where, fetch_one, fetch_page
from suvnet.protocol import Command

router = APIRouter(prefix="/api/v1", tags=["commands"])
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Code = Annotated[str, Path(pattern=ID_PATTERN)]


class CommandIn(BaseModel):
    device: str = Field(pattern=ID_PATTERN)
    op: Literal["write", "schedule"]
    point: str | None = Field(None, pattern=ID_PATTERN)
    value: float | bool | None = Field(None, allow_inf_nan=False)
    schedule: list[tuple[str, float]] = Field(default_factory=list, max_length=48)
    timeout_s: float = Field(10.0, gt=0, le=60, description="how long to wait for the answer")

    @field_validator("schedule")
    @classmethod
    def _steps(cls, v: list[tuple[str, float]]) -> list[tuple[str, float]]:
        import math
        import re

        for hhmm, val in v:
            if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", hhmm):
                raise ValueError(f"bad time {hhmm!r}: use HH:MM")
            if not math.isfinite(val):
                raise ValueError("schedule values must be finite numbers")
        return v


@router.post(
    "/gateways/{code}/commands",
    summary="Send a setpoint or a schedule to a device behind a gateway",
)
async def post_command(
    *,
    request: Request,
    code: Code,
    body: CommandIn,
    who: Annotated[Principal, Depends(require(SEND_COMMANDS))],
    conn: Conn,
    st: State,
) -> dict[str, Any]:
    """Answers 200 with ``status`` ``ok`` or ``refused`` (the gateway's reason) when the
    gateway answered, 504 when it did not answer within ``timeout_s``. Every command is
    logged in ``gateway_commands`` and in the audit log."""
    row = await fetch_one(
        conn,
        "SELECT g.id AS gateway_id, d.id AS device_id FROM gateways g "
        "JOIN devices d ON d.gateway_id = g.id WHERE g.code = %s AND d.code = %s",
        (code, body.device),
    )
    if row is None:
        raise NotFoundError(f"no device {body.device!r} behind gateway {code!r}")
    point_kind = None
    if body.point is not None:
        pk = await fetch_one(
            conn,
            "SELECT kind FROM points WHERE device_id = %s AND name = %s",
            (row["device_id"], body.point),
        )
        point_kind = pk["kind"] if pk else None
    problem = command_problem(body.op, point_kind, body.value, body.schedule)
    if problem:
        raise InvalidError(problem)
    if not st.settings.mqtt_url:
        raise UnavailableError("no MQTT broker is configured (SUVNET_MQTT_URL)")
    now = st.clock()
    now_ms = int(now.timestamp() * 1000)
    cmd = Command(
        id=new_command_id(),
        device=body.device,
        op=body.op,
        point=body.point if body.op == "write" else None,
        value=body.value if body.op == "write" else None,
        schedule=tuple((t, float(v)) for t, v in body.schedule) if body.op == "schedule" else (),
        ts_ms=now_ms,
        expires_ms=now_ms + int(body.timeout_s * 1000),
    )
    payload = body.model_dump(exclude={"timeout_s"})
    await conn.execute(
        "INSERT INTO gateway_commands (id, gateway_id, device_id, op, payload, requested_by, "
        "sent_at, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'sent')",
        (cmd.id, row["gateway_id"], row["device_id"], body.op, Jsonb(payload), who.user_id, now),
    )
    await write_audit(
        conn,
        request,
        who,
        action="command",
        entity="gateway",
        entity_id=code,
        before=None,
        after={"id": cmd.id, **payload},
    )
    await conn.commit()  # the command is on record before it goes out
    result = await send_command(
        st.settings.mqtt_url, st.topics, code, cmd, min(body.timeout_s, st.command_timeout_s)
    )
    status = "timeout" if result is None else ("ok" if result.ok else "refused")
    await conn.execute(
        "UPDATE gateway_commands SET status = %s, reason = %s, readback = %s, finished_at = %s "
        "WHERE id = %s",
        (
            status,
            None if result is None else result.reason,
            None if result is None or result.readback is None else Jsonb(result.readback),
            st.clock(),
            cmd.id,
        ),
    )
    await conn.commit()
    if result is None:
        raise GatewayTimeoutError(
            f"gateway {code!r} did not answer command {cmd.id} within {body.timeout_s:g} s; "
            "it may still carry it out when it reconnects (until the command expires)"
        )
    return {
        "id": cmd.id,
        "status": status,
        "reason": result.reason,
        "readback": result.readback,
    }


@router.get("/gateways/{code}/commands", summary="Commands sent to a gateway")
async def list_commands(
    *,
    _: Annotated[Principal, Depends(require(READ_REGISTRY))],
    conn: Conn,
    pg: Paging,
    code: Code,
    status: Literal["sent", "ok", "refused", "timeout", "error"] | None = None,
) -> dict[str, Any]:
    w = Where().add("g.code = %s", code).eq("c.status", status)
    return await fetch_page(
        conn,
        "SELECT c.id, d.code AS device, c.op, c.payload, u.username AS requested_by, c.sent_at, "
        "c.status, c.reason, c.readback, c.finished_at FROM gateway_commands c "
        "JOIN gateways g ON g.id = c.gateway_id JOIN devices d ON d.id = c.device_id "
        "LEFT JOIN api_users u ON u.id = c.requested_by",
        w,
        "c.sent_at DESC",
        pg,
    )

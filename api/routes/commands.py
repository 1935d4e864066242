"""Gateway commands: a PRV setpoint or a schedule, sent over MQTT and answered or timed out.
The commands are kept by :mod:`suvnet.registry_queries`; the sending is :mod:`api.commands`."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, field_validator

from api.audit import write_audit
from api.commands import command_problem, new_command_id, send_command
from api.deps import Conn, Paging, State, require
from api.errors import GatewayTimeoutError, InvalidError, NotFoundError, UnavailableError
from api.security import READ_REGISTRY, SEND_COMMANDS, Principal
from api.setpoint_check import out_of_range
from suvnet import registry_queries as rq
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
        for hhmm, val in v:
            if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", hhmm):
                raise ValueError(f"bad time {hhmm!r}: use HH:MM")
            if not math.isfinite(val):
                raise ValueError("schedule values must be finite numbers")
        return v


def _command(body: CommandIn, now: datetime) -> Command:
    """The wire command of a request, valid for ``timeout_s`` from ``now`` (pure but for
    its new id)."""
    now_ms = int(now.timestamp() * 1000)
    return Command(
        id=new_command_id(),
        device=body.device,
        op=body.op,
        point=body.point if body.op == "write" else None,
        value=body.value if body.op == "write" else None,
        schedule=tuple((t, float(v)) for t, v in body.schedule) if body.op == "schedule" else (),
        ts_ms=now_ms,
        expires_ms=now_ms + int(body.timeout_s * 1000),
    )


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
    target = await rq.command_target(conn, code, body.device, body.point)
    if target is None:
        raise NotFoundError(f"no device {body.device!r} behind gateway {code!r}")
    problem = command_problem(body.op, target.point_kind, body.value, body.schedule)
    problem = problem or await out_of_range(
        conn, body.device, body.op, body.point, body.value, body.schedule
    )
    if problem:
        raise InvalidError(problem)
    if not st.settings.mqtt_url:
        raise UnavailableError("no MQTT broker is configured (SUVNET_MQTT_URL)")
    now = st.clock()
    cmd = _command(body, now)
    payload = body.model_dump(exclude={"timeout_s"})
    await rq.record_command(
        conn,
        command_id=cmd.id,
        target=target,
        op=body.op,
        payload=payload,
        requested_by=who.user_id,
        sent_at=now,
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
    await rq.finish_command(
        conn,
        cmd.id,
        status=status,
        reason=None if result is None else result.reason,
        readback=None if result is None else result.readback,
        finished_at=st.clock(),
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
    return await rq.list_commands(conn, pg, code, status=status)

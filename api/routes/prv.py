"""PRV pressure control over the JSON API (docs/pressure-management.md, docs/api.md): read a
PRV's controller, its limits and its live values; set its configuration (checked like the
site file: a 422 names the field); switch hand/auto; send the stored configuration to the
gateway. Reading needs a staff role; configuring needs the registry writers (administrator,
technician); switching and sending need the command senders (administrator, dispatcher,
technician). Every change is audited; every command is on record with its result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel

from api.deps import Conn, State, require
from api.security import READ_REGISTRY, SEND_COMMANDS, WRITE_REGISTRY, Principal
from api.services import prv as svc
from suvnet import prv_queries as pq

router = APIRouter(prefix="/api/v1/prv", tags=["pressure control"])
Device = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
Configurer = Annotated[Principal, Depends(require(WRITE_REGISTRY))]
Operator = Annotated[Principal, Depends(require(SEND_COMMANDS))]


class AutoIn(BaseModel):
    auto: bool


@router.get("", summary="PRV controllers with their mode and sending state")
async def list_prvs(*, _: Reader, conn: Conn) -> dict[str, Any]:
    rows = await pq.prv_list(conn)
    items = [
        {
            "device": r["code"],
            "gateway": r["gateway"],
            "zone": r["zone"],
            "enabled": r["enabled"],
            "mode": (r["config"] or {}).get("mode"),
            "auto": (r["config"] or {}).get("auto", True) if r["config"] else None,
            "source": r["source"],
            "sent_status": r["sent_status"],
            "sent_at": r["sent_at"],
        }
        for r in rows
    ]
    return {"items": items, "total": len(items)}


@router.get("/{device}", summary="One PRV: configuration, limits, live values")
async def get_prv(*, _: Reader, conn: Conn, st: State, device: Device) -> dict[str, Any]:
    return await svc.view(conn, device, st.clock())


@router.put("/{device}/control", summary="Set a PRV's controller configuration")
async def put_control(
    *,
    request: Request,
    who: Configurer,
    conn: Conn,
    st: State,
    device: Device,
    body: Annotated[dict[str, Any] | None, Body(description="a configuration, or null")],
    send: Annotated[bool, Query(description="send it to the gateway at once")] = True,
) -> dict[str, Any]:
    """The body is the configuration (modes, limits, safety: docs/pressure-management.md),
    or ``null`` to stop regulating. A bad configuration is refused with 422 naming the field
    (``min_bar: the limits cross ...``), before anything is stored or sent. With ``send``
    (default) the answer has ``push``: the gateway's result (``ok``, ``refused`` with its
    reason, or ``timeout``)."""
    cfg = None if body is None else svc.parse_control(body)
    return await svc.set_control(svc.Caller(conn, request, who, st), device, cfg, send=send)


@router.post("/{device}/auto", summary="Switch a PRV's controller between hand and auto")
async def post_auto(
    *, request: Request, who: Operator, conn: Conn, st: State, device: Device, body: AutoIn
) -> dict[str, Any]:
    return await svc.set_auto(svc.Caller(conn, request, who, st), device, auto=body.auto)


@router.post("/{device}/push", summary="Send a PRV's stored configuration to its gateway")
async def post_push(
    *, request: Request, who: Operator, conn: Conn, st: State, device: Device
) -> dict[str, Any]:
    """For a configuration that came from the site file, or one the gateway did not answer."""
    return await svc.push(svc.Caller(conn, request, who, st), device)

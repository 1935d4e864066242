"""The back office's alarm page: the open alarms, most urgent first, and the operator's
acknowledge and shelve buttons (the same action as the JSON API: :mod:`api.services.alarms`)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from alarms import queries as aq
from api.deps import Conn, State, require
from api.errors import ApiError
from api.security import ALARMS_HANDLE, ALARMS_READ, Principal
from api.services.alarms import OperatorAction, operator_action
from api.web.common import render

router = APIRouter(prefix="/staff", include_in_schema=False)
AlarmReader = Annotated[Principal, Depends(require(ALARMS_READ))]
AlarmHandler = Annotated[Principal, Depends(require(ALARMS_HANDLE))]


@router.get("/alarms")
async def alarms_page(
    *,
    request: Request,
    who: AlarmReader,
    conn: Conn,
    error: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    rows = await aq.open_alarms_board(conn, 500)
    return render(
        request,
        "staff_alarms.html",
        who=who,
        alarms=rows,
        can_handle=who.role in ALARMS_HANDLE,
        error=error,
    )


async def _alarm_action(
    request: Request, who: Principal, conn: Conn, st: State, op: OperatorAction
) -> Response:
    """The action, then back to the alarm page (with the reason when it was refused)."""
    target = "/staff/alarms"
    try:
        await operator_action(conn, request, who, st, op)
    except ApiError as exc:
        target += "?" + urlencode({"error": exc.message})
    return RedirectResponse(target, status_code=303)


@router.post("/alarms/{alarm_id}/ack")
async def alarm_ack(
    *,
    request: Request,
    who: AlarmHandler,
    conn: Conn,
    st: State,
    alarm_id: int,
    comment: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    op = OperatorAction.of(alarm_id, "ack", who, comment or None, now=st.clock())
    return await _alarm_action(request, who, conn, st, op)


@router.post("/alarms/{alarm_id}/shelve")
async def alarm_shelve(
    *,
    request: Request,
    who: AlarmHandler,
    conn: Conn,
    st: State,
    alarm_id: int,
    comment: Annotated[str, Form(max_length=500)] = "",
    minutes: Annotated[int, Form(ge=1, le=10080)] = 60,
) -> Response:
    op = OperatorAction.of(
        alarm_id, "shelve", who, comment or None, now=st.clock(), minutes=minutes
    )
    return await _alarm_action(request, who, conn, st, op)

"""Alarm endpoints: list, journal, acknowledge, shelve, unshelve (the lifecycle rules are the
alarms package's; a refused action answers 409 with the reason), and the alarm rules (list,
create/update, disable/enable)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from alarms import queries as aq
from alarms.errors import NotFoundError as AlarmNotFoundError
from alarms.errors import RuleConfigError
from alarms.store import PositionIn, RuleIn, save_position, save_rule, set_rule_enabled
from api.audit import write_audit
from api.deps import Conn, Paging, State, require
from api.errors import InvalidError, NotFoundError
from api.security import ALARMS_HANDLE, ALARMS_READ, Principal
from api.services.alarms import OperatorAction, alarm_or_404, operator_action
from api.syncdb import run_sync

router = APIRouter(prefix="/api/v1", tags=["alarms"])
Reader = Annotated[Principal, Depends(require(ALARMS_READ))]
Handler = Annotated[Principal, Depends(require(ALARMS_HANDLE))]
AlarmId = Annotated[int, Path(ge=1, le=2**62)]


class AckIn(BaseModel):
    comment: str | None = Field(None, max_length=500)


class ShelveIn(BaseModel):
    comment: str = Field(min_length=1, max_length=500, description="why (required)")
    minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="how long, at most the rule's limit")


@router.get("/alarms", summary="Alarms (open ones by default), newest first")
async def list_alarms(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    open_only: bool = True,
    state: Annotated[str | None, Query(max_length=32, description="lifecycle state")] = None,
    priority: Literal["low", "medium", "high", "urgent"] | None = None,
    zone: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    return await aq.list_alarms(
        conn,
        pg,
        open_only=open_only,
        state=state,
        priority=priority,
        zone=zone,
        since=since,
        until=until,
    )


@router.get("/alarms/{alarm_id}", summary="One alarm")
async def get_alarm(*, _: Reader, conn: Conn, alarm_id: AlarmId) -> dict[str, Any]:
    return await alarm_or_404(conn, alarm_id)


@router.get("/alarms/{alarm_id}/events", summary="The journal of one alarm")
async def alarm_events(*, _: Reader, conn: Conn, pg: Paging, alarm_id: AlarmId) -> dict[str, Any]:
    await alarm_or_404(conn, alarm_id)
    return await aq.alarm_events(conn, pg, alarm_id)


@router.post("/alarms/{alarm_id}/ack", summary="Acknowledge an alarm")
async def ack(
    *, request: Request, who: Handler, conn: Conn, st: State, alarm_id: AlarmId, body: AckIn
) -> dict[str, Any]:
    op = OperatorAction.of(alarm_id, "ack", who, body.comment, now=st.clock())
    return await operator_action(conn, request, who, st, op)


@router.post("/alarms/{alarm_id}/shelve", summary="Shelve an alarm for a while")
async def shelve(
    *, request: Request, who: Handler, conn: Conn, st: State, alarm_id: AlarmId, body: ShelveIn
) -> dict[str, Any]:
    op = OperatorAction.of(
        alarm_id, "shelve", who, body.comment, now=st.clock(), minutes=body.minutes
    )
    return await operator_action(conn, request, who, st, op)


@router.post("/alarms/{alarm_id}/unshelve", summary="Take an alarm off the shelf")
async def unshelve(
    *, request: Request, who: Handler, conn: Conn, st: State, alarm_id: AlarmId
) -> dict[str, Any]:
    op = OperatorAction.of(alarm_id, "unshelve", who, None, now=st.clock())
    return await operator_action(conn, request, who, st, op)


# ------------------------------------------------------------------ rules
# Rules are validated and stored by the alarms package (alarms.store.save_rule), the same
# function the rules file and the site file's alarms: section use.

RuleCodePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


@router.get("/alarm-rules", summary="Alarm rules, by code")
async def list_rules(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    kind: Annotated[str | None, Query(max_length=32, description="rule kind, e.g. low")] = None,
    zone: Annotated[str | None, Query(max_length=200)] = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    return await aq.list_rules(conn, pg, kind=kind, zone=zone, enabled=enabled)


@router.get("/alarm-rules/{code}", summary="One alarm rule")
async def get_rule(*, _: Reader, conn: Conn, code: RuleCodePath) -> dict[str, Any]:
    row = await aq.rule(conn, code)
    if row is None:
        raise NotFoundError(f"no alarm rule '{code}'")
    return row


@router.get("/alarm-positions", summary="Operator positions (the dispatcher desks of alarms)")
async def list_positions(*, _: Reader, conn: Conn, pg: Paging) -> dict[str, Any]:
    """Each rule names its position (default: ``default``); floods and the alarm KPIs are
    counted per position."""
    return await aq.list_positions(conn, pg)


@router.post(
    "/alarm-positions",
    summary="Create or rename an operator position (matched by code)",
    description="A rule is put on a position with its `position` key (`POST /alarm-rules`).",
)
async def save_position_endpoint(
    *, request: Request, who: Handler, conn: Conn, st: State, body: PositionIn
) -> dict[str, Any]:
    change = await run_sync(st, save_position, body)
    if change != "unchanged":
        await write_audit(
            conn,
            request,
            who,
            action=f"position_{change}",
            entity="alarm_position",
            entity_id=body.code,
            after=body.model_dump(mode="json"),
        )
    return {"position": body.code, "change": change}


def _save_rule(conn: Any, rule: RuleIn) -> str:
    change, _ = save_rule(conn, rule)
    return change


@router.post(
    "/alarm-rules",
    summary="Create or update an alarm rule (matched by code)",
    description="The keys are those of a rules file (docs/alarms.md). A rule that already has "
    "exactly these settings is left alone (`change` is `unchanged`).",
)
async def save_rule_endpoint(
    *, request: Request, who: Handler, conn: Conn, st: State, body: RuleIn
) -> dict[str, Any]:
    before = await aq.rule(conn, body.code)
    try:
        change = await run_sync(st, _save_rule, body)
    except RuleConfigError as exc:
        raise InvalidError(str(exc), code=f"bad_{exc.field or 'rule'}") from exc
    if change != "unchanged":
        await write_audit(
            conn,
            request,
            who,
            action=f"rule_{change}",
            entity="alarm_rule",
            entity_id=body.code,
            before=before,
            after=body.model_dump(mode="json"),
        )
    return {"rule": body.code, "change": change}


async def _enable(
    request: Request, who: Principal, conn: Conn, st: State, code: str, *, enabled: bool
) -> dict[str, Any]:
    try:
        change = await run_sync(st, set_rule_enabled, code, enabled)
    except AlarmNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    if change != "unchanged":
        await write_audit(
            conn,
            request,
            who,
            action="rule_enable" if enabled else "rule_disable",
            entity="alarm_rule",
            entity_id=code,
            before={"enabled": not enabled},
            after={"enabled": enabled},
        )
    return {"rule": code, "enabled": enabled, "change": change}


@router.post(
    "/alarm-rules/{code}/disable",
    summary="Disable an alarm rule (the worker stops evaluating it; nothing is deleted)",
)
async def disable_rule(
    *, request: Request, who: Handler, conn: Conn, st: State, code: RuleCodePath
) -> dict[str, Any]:
    return await _enable(request, who, conn, st, code, enabled=False)


@router.post("/alarm-rules/{code}/enable", summary="Enable an alarm rule again")
async def enable_rule(
    *, request: Request, who: Handler, conn: Conn, st: State, code: RuleCodePath
) -> dict[str, Any]:
    return await _enable(request, who, conn, st, code, enabled=True)

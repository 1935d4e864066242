"""Alarm actions at the office: an operator acknowledges, shelves or unshelves an alarm (the
lifecycle rules are :func:`alarms.actions.act`'s; a refused action is a 409 with the
reason), with its audit row. Used by :mod:`api.routes.alarms` and the alarm page
(:mod:`api.web.staff_alarms`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection

from alarms import queries as aq
from alarms.actions import Action, act
from alarms.errors import AlarmsError, RefusedError
from alarms.errors import NotFoundError as AlarmNotFoundError
from api.audit import write_audit
from api.deps import AppState
from api.errors import ConflictError, NotFoundError
from api.security import Principal
from api.syncdb import run_sync


@dataclass(frozen=True)
class OperatorAction:
    alarm_id: int
    action: Action
    user: str
    comment: str | None
    now: datetime
    until: datetime | None = None

    @classmethod
    def of(
        cls,
        alarm_id: int,
        action: Action,
        who: Principal,
        comment: str | None,
        *,
        now: datetime,
        minutes: int | None = None,
    ) -> OperatorAction:
        """The action of ``who`` at ``now``; a shelve lasts ``minutes``."""
        until = now + timedelta(minutes=minutes) if minutes else None
        return cls(alarm_id, action, who.username, comment, now, until)


async def alarm_or_404(conn: AsyncConnection[Any], alarm_id: int) -> dict[str, Any]:
    row = await aq.alarm(conn, alarm_id)
    if row is None:
        raise NotFoundError(f"no alarm number {alarm_id}")
    return row


def _act(conn: Any, op: OperatorAction) -> dict[str, str]:
    tr = act(
        conn,
        str(op.alarm_id),
        op.action,
        user=op.user,
        comment=op.comment,
        now=op.now,
        until=op.until,
    )
    return {"event": tr.event, "from_state": tr.from_state.value, "to_state": tr.to_state.value}


async def operator_action(
    conn: AsyncConnection[Any],
    request: Request,
    who: Principal,
    st: AppState,
    op: OperatorAction,
) -> dict[str, Any]:
    """Apply the action and audit it: ``{"alarm": id, "event", "from_state", "to_state"}``."""
    before = await alarm_or_404(conn, op.alarm_id)
    try:
        result = await run_sync(st, _act, op)
    except RefusedError as exc:
        raise ConflictError(str(exc), code=exc.reason) from exc
    except AlarmNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    except AlarmsError as exc:
        raise ConflictError(str(exc)) from exc
    await write_audit(
        conn,
        request,
        who,
        action=op.action,
        entity="alarm",
        entity_id=op.alarm_id,
        before={"state": before["state"]},
        after={**result, "comment": op.comment, "until": op.until},
    )
    return {"alarm": op.alarm_id, **result}

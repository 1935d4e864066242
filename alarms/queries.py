"""What the office API and its pages read of the alarms: alarms (the list, one alarm, the
open alarms board), the journal of an alarm, the rules and the operator positions.

Async reads on an :class:`psycopg.AsyncConnection` (the API's pool); they never write. A
missing row is ``None``. Operator actions and rule changes are written by
:mod:`alarms.actions` and :mod:`alarms.store`. The SQL text is made of the constants below
(and :data:`alarms.store.RULE_LIST_SQL`); every value travels as a parameter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from alarms.store import RULE_LIST_SQL
from suvnet.listing import Page, Where, fetch_all, fetch_one, fetch_page

AConn = AsyncConnection[Any]

ALARM_SELECT = """
SELECT a.id, r.code AS rule, r.name AS rule_name, a.kind, a.priority, a.state, a.subject,
       z.code AS zone, a.point_id, a.device_id, a.raised_at, a.cleared_at, a.acked_at,
       a.acked_by, a.ack_comment, a.closed_at, a.value, a.message, a.chattering
FROM alarms a JOIN alarm_rules r ON r.id = a.rule_id LEFT JOIN zones z ON z.id = a.zone_id"""


async def list_alarms(
    conn: AConn,
    pg: Page,
    *,
    open_only: bool = True,
    state: str | None = None,
    priority: str | None = None,
    zone: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Live alarms (not those of replays), newest first; open ones only by default."""
    w = (
        Where()
        .add("a.run_id = 0")
        .eq("a.priority", priority)
        .eq("z.code", zone)
        .eq("a.state", state)
    )
    if open_only:
        w.add("a.closed_at IS NULL")
    w.since_until("a.raised_at", since, until)
    return await fetch_page(conn, ALARM_SELECT, w, "a.raised_at DESC, a.id DESC", pg)


async def alarm(conn: AConn, alarm_id: int) -> dict[str, Any] | None:
    return await fetch_one(conn, ALARM_SELECT + " WHERE a.id = %s", (alarm_id,))


async def alarm_events(conn: AConn, pg: Page, alarm_id: int) -> dict[str, Any]:
    """The journal of one alarm, newest first."""
    return await fetch_page(
        conn,
        "SELECT ts, event, from_state, to_state, user_name, comment, value, message "
        "FROM alarm_events",
        Where().add("alarm_id = %s", alarm_id),
        "ts DESC, id DESC",
        pg,
    )


async def open_alarms_board(conn: AConn, limit: int = 500) -> list[dict[str, Any]]:
    """The open live alarms, most urgent first, then newest (the back office's alarm page)."""
    return await fetch_all(
        conn,
        "SELECT a.id, r.code AS rule, r.name AS rule_name, a.priority, a.state, z.code AS zone,"
        " a.raised_at, a.acked_by, a.value, a.message FROM alarms a "
        "JOIN alarm_rules r ON r.id = a.rule_id LEFT JOIN zones z ON z.id = a.zone_id "
        "WHERE a.closed_at IS NULL AND a.run_id = 0 "
        "ORDER BY CASE a.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 "
        "ELSE 3 END, a.raised_at DESC LIMIT %s",
        (limit,),
    )


async def list_rules(
    conn: AConn,
    pg: Page,
    *,
    kind: str | None = None,
    zone: str | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    """Alarm rules by code, with the keys of a rules file."""
    w = Where().eq("r.kind", kind).eq("z.code", zone).eq("r.enabled", enabled)
    return await fetch_page(conn, RULE_LIST_SQL, w, "r.code", pg)


async def rule(conn: AConn, code: str) -> dict[str, Any] | None:
    return await fetch_one(conn, RULE_LIST_SQL + " WHERE r.code = %s", (code,))


async def list_positions(conn: AConn, pg: Page) -> dict[str, Any]:
    """Operator positions by code, each with its number of rules."""
    return await fetch_page(
        conn,
        "SELECT ap.code, ap.name, (SELECT count(*) FROM alarm_rules r "
        "WHERE r.position_id = ap.id) AS rules FROM alarm_positions ap",
        Where(),
        "ap.code",
        pg,
    )

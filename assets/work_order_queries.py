"""What the office reads of the work orders (async, the API's pool): the list with filters,
one work order's card (valves operated, photos, journal, the alarm that started it), and the
work orders of an asset. Writes are :mod:`assets.work_order_store`'s."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from assets.work_orders import number
from suvnet.listing import Page, Where, fetch_all, fetch_one, fetch_page

AConn = AsyncConnection[Any]

LIST_SELECT = """
SELECT w.id, w.kind, w.failure, w.status, w.alarm_id, w.reported_at, w.planned_for,
       w.started_at, w.ended_at, w.crew, w.cost_tiyin, w.water_lost_m3, w.version,
       a.code AS asset, a.kind AS asset_kind, z.code AS zone
FROM work_orders w JOIN assets a ON a.id = w.asset_id LEFT JOIN zones z ON z.id = a.zone_id"""

CARD_SQL = """
SELECT w.*, a.code AS asset, a.kind AS asset_kind, a.status AS asset_status,
       a.material, a.diameter_mm, z.code AS zone,
       al.kind AS alarm_kind, al.state AS alarm_state, al.raised_at AS alarm_raised_at,
       al.message AS alarm_message, al.closed_at AS alarm_closed_at
FROM work_orders w JOIN assets a ON a.id = w.asset_id LEFT JOIN zones z ON z.id = a.zone_id
LEFT JOIN alarms al ON al.id = w.alarm_id
WHERE w.id = %s"""


def _numbered(row: dict[str, Any]) -> dict[str, Any]:
    row["number"] = number(int(row["id"]))
    return row


async def list_work_orders(
    conn: AConn,
    pg: Page,
    *,
    asset: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    alarm: int | None = None,
) -> dict[str, Any]:
    """Work orders, newest report first."""
    w = (
        Where()
        .eq("a.code", asset)
        .eq("w.status", status)
        .eq("w.kind", kind)
        .eq("w.alarm_id", alarm)
    )
    page = await fetch_page(conn, LIST_SELECT, w, "w.reported_at DESC, w.id DESC", pg)
    page["items"] = [_numbered(r) for r in page["items"]]
    return page


async def work_order(conn: AConn, wo_id: int) -> dict[str, Any] | None:
    """One work order with its valves, documents and journal (oldest first)."""
    row = await fetch_one(conn, CARD_SQL, (wo_id,))
    if row is None:
        return None
    row["valves"] = await fetch_all(
        conn,
        "SELECT a.code AS valve, a.kind, v.action, v.at, v.by_user, v.note "
        "FROM work_order_valves v JOIN assets a ON a.id = v.valve_id "
        "WHERE v.work_order_id = %s ORDER BY v.at, v.id",
        (wo_id,),
    )
    row["documents"] = await fetch_all(
        conn,
        "SELECT d.id, d.kind, d.filename, d.content_type, d.size_bytes, d.note, d.uploaded_at, "
        "d.uploaded_by FROM work_order_documents wd JOIN asset_documents d "
        "ON d.id = wd.document_id WHERE wd.work_order_id = %s ORDER BY d.id",
        (wo_id,),
    )
    row["events"] = await fetch_all(
        conn,
        "SELECT at, by_user, action, changes FROM work_order_events "
        "WHERE work_order_id = %s ORDER BY at, id",
        (wo_id,),
    )
    return _numbered(row)


async def valve_codes(conn: AConn, near_asset: str, limit: int = 200) -> list[str]:
    """The valves and hydrants of the asset's zone (the choices of the valves form)."""
    rows = await fetch_all(
        conn,
        "SELECT v.code FROM assets v WHERE v.kind IN ('valve', 'prv', 'hydrant') "
        "AND v.status = 'active' AND v.zone_id IS NOT DISTINCT FROM "
        "(SELECT zone_id FROM assets WHERE code = %s) ORDER BY v.code LIMIT %s",
        (near_asset, limit),
    )
    return [str(r["code"]) for r in rows]


async def open_alarm_choices(conn: AConn, limit: int = 50) -> list[dict[str, Any]]:
    """The open live alarms a work order may be started by (leak kinds first)."""
    return await fetch_all(
        conn,
        "SELECT a.id, a.kind, z.code AS zone, a.raised_at, a.message FROM alarms a "
        "LEFT JOIN zones z ON z.id = a.zone_id WHERE a.closed_at IS NULL AND a.run_id = 0 "
        "ORDER BY a.kind NOT IN ('leak', 'burst', 'mnf', 'water_balance'), a.raised_at DESC "
        "LIMIT %s",
        (limit,),
    )

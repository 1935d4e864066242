"""Planned outages and critical customers in the database (synchronous psycopg for the
writes, async for the API's reads), and the printed notices.

An outage keeps what was isolated, the valves to close, when, why, and the accounts it cut
off as they were when it was announced (``outage_accounts``); every notice sent to them is a
row of ``outage_notices`` (channel, language, sent/failed/skipped/to_print, the text).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from assets.errors import AssetError
from suvnet.textsafe import rl_text

Conn = psycopg.Connection[Any]
AConn = AsyncConnection[Any]
CRITICAL_KINDS = (
    "hospital",
    "clinic",
    "home_dialysis",
    "school",
    "kindergarten",
    "care_home",
    "other",
)
"""The kinds of critical customer, most urgent first (the order customer service calls)."""


class OutageError(AssetError):
    code = "outage"


class AccountNotFoundError(OutageError):
    code = "not_found"


def set_critical(
    conn: Conn, account_no: str, kind: str | None, note: str, *, by: str, at: datetime
) -> str | None:
    """Flag account ``account_no`` as a critical customer of ``kind`` (None: unflag);
    returns the kind it had before."""
    row = conn.execute("SELECT id FROM accounts WHERE number = %s", (account_no,)).fetchone()
    if row is None:
        raise AccountNotFoundError(f"there is no account {account_no}")
    if kind is not None and kind not in CRITICAL_KINDS:
        raise OutageError(f"the kind must be one of {', '.join(CRITICAL_KINDS)}, not {kind!r}")
    if len(note) > 500:
        raise OutageError("the note has at most 500 characters")
    before = conn.execute(
        "SELECT kind FROM critical_customers WHERE account_id = %s", (row[0],)
    ).fetchone()
    if kind is None:
        conn.execute("DELETE FROM critical_customers WHERE account_id = %s", (row[0],))
    else:
        conn.execute(
            "INSERT INTO critical_customers (account_id, kind, note, updated_at, updated_by) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_id) DO UPDATE SET "
            "kind = EXCLUDED.kind, note = EXCLUDED.note, updated_at = EXCLUDED.updated_at, "
            "updated_by = EXCLUDED.updated_by",
            (row[0], kind, note, at, by),
        )
    return None if before is None else str(before[0])


async def critical_customers(conn: AConn) -> list[dict[str, Any]]:
    """Every flagged account, most urgent kind first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.number, a.name, a.kind AS account_kind, c.kind, c.note, c.updated_at, "
            "c.updated_by, z.code AS zone FROM critical_customers c "
            "JOIN accounts a ON a.id = c.account_id LEFT JOIN zones z ON z.id = a.zone_id "
            "ORDER BY array_position(%s::text[], c.kind), a.number",
            (list(CRITICAL_KINDS),),
        )
        return await cur.fetchall()


def save_outage(
    conn: Conn,
    *,
    kind: str,
    target: Mapping[str, Any],
    valves: Sequence[str],
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    work_order: int | None,
    accounts: Sequence[Mapping[str, Any]],
    by: str,
    at: datetime,
) -> int:
    """Record an outage and the accounts it cuts off (``accounts``: the isolation's rows,
    with ``number``, ``critical`` and ``service``); returns its id."""
    row = conn.execute(
        "INSERT INTO outages (kind, target, valves, starts_at, ends_at, reason, work_order_id, "
        "accounts, critical, created_at, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            kind,
            Jsonb(dict(target)),
            list(valves),
            starts_at,
            ends_at,
            reason,
            work_order,
            len(accounts),
            sum(1 for a in accounts if a.get("critical")),
            at,
            by,
        ),
    ).fetchone()
    assert row is not None
    outage_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO outage_accounts (outage_id, account_id, critical_kind, "
            "service_connection) SELECT %s, id, %s, %s FROM accounts WHERE number = %s",
            [(outage_id, a.get("critical"), a.get("service") or "", a["number"]) for a in accounts],
        )
    return outage_id


OUTAGE_ACCOUNTS_SQL = """
SELECT acc.id AS account_id, acc.number, acc.name, acc.kind, acc.phone, acc.telegram_chat_id,
       acc.correspondence_language AS language, h.number AS house, ap.number AS apartment,
       st.name_uz AS street_uz, st.name_uz_cyrl AS street_uz_cyrl, st.name_ru AS street_ru,
       o.critical_kind AS critical, o.service_connection AS service
FROM outage_accounts o JOIN accounts acc ON acc.id = o.account_id
JOIN houses h ON h.id = acc.house_id LEFT JOIN apartments ap ON ap.id = acc.apartment_id
JOIN streets st ON st.id = h.street_id
WHERE o.outage_id = %s
ORDER BY array_position(%s::text[], o.critical_kind), acc.kind = 'household', acc.number"""


def outage_accounts(conn: Conn, outage_id: int) -> list[dict[str, Any]]:
    """The accounts an outage cut off, critical customers first, with their contacts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(OUTAGE_ACCOUNTS_SQL, (outage_id, list(CRITICAL_KINDS))).fetchall()


def save_notice(  # noqa: PLR0917 - one row's columns
    conn: Conn,
    outage_id: int,
    account: Mapping[str, Any],
    channel: str,
    language: str,
    status: str,
    detail: str,
    body: str,
    at: datetime,
) -> None:
    conn.execute(
        "INSERT INTO outage_notices (outage_id, account_id, channel, language, status, detail, "
        "body, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (outage_id, account["account_id"], channel, language, status, detail[:500], body, at),
    )


async def outage(conn: AConn, outage_id: int) -> dict[str, Any] | None:
    """One outage with its accounts and its notices' counts by channel and status."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT o.*, w.id AS work_order FROM outages o "
            "LEFT JOIN work_orders w ON w.id = o.work_order_id WHERE o.id = %s",
            (outage_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(OUTAGE_ACCOUNTS_SQL, (outage_id, list(CRITICAL_KINDS)))
        row["account_list"] = await cur.fetchall()
        await cur.execute(
            "SELECT channel, status, count(*) AS n FROM outage_notices WHERE outage_id = %s "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            (outage_id,),
        )
        row["notices"] = await cur.fetchall()
    for a in row["account_list"]:
        a.pop("account_id", None)
    return row


async def outage_letters(conn: AConn, outage_id: int) -> list[dict[str, Any]]:
    """The letters of an outage to print (critical customers first)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT n.body, acc.number FROM outage_notices n "
            "JOIN outage_accounts o ON o.outage_id = n.outage_id AND o.account_id = n.account_id "
            "JOIN accounts acc ON acc.id = n.account_id "
            "WHERE n.outage_id = %s AND n.channel = 'letter' "
            "ORDER BY array_position(%s::text[], o.critical_kind), acc.number",
            (outage_id, list(CRITICAL_KINDS)),
        )
        return await cur.fetchall()


async def recent_outages(conn: AConn, limit: int = 50) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, kind, target, valves, starts_at, ends_at, reason, accounts, critical, "
            "created_at, created_by FROM outages ORDER BY starts_at DESC, id DESC LIMIT %s",
            (limit,),
        )
        return await cur.fetchall()


# ---------------------------------------------------------------------- printed letters
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
FONT_BOLD_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)


def fonts() -> tuple[str, str]:
    """A TTF font with Latin and Cyrillic letters (regular, bold), registered once."""
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]

    if "SuvnetAssets" in pdfmetrics.getRegisteredFontNames():
        return "SuvnetAssets", "SuvnetAssets-Bold"
    regular = next((p for p in FONT_CANDIDATES if Path(p).is_file()), None)
    bold = next((p for p in FONT_BOLD_CANDIDATES if Path(p).is_file()), regular)
    if regular is None or bold is None:
        raise OutageError("no TTF font with Cyrillic letters: install fonts-dejavu-core")
    pdfmetrics.registerFont(TTFont("SuvnetAssets", regular))
    pdfmetrics.registerFont(TTFont("SuvnetAssets-Bold", bold))
    return "SuvnetAssets", "SuvnetAssets-Bold"


def render_letters(bodies: Sequence[str], *, utility: str) -> bytes:
    """One A4 page per letter: the utility's name, the title (the body's first line) and the
    rest of the body; every value escaped for ReportLab's markup."""
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.platypus import (  # type: ignore[import-untyped]
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
    )

    regular, bold = fonts()
    head = ParagraphStyle("head", fontName=bold, fontSize=11, leading=14)
    title = ParagraphStyle("title", fontName=bold, fontSize=14, leading=18, spaceAfter=8)
    body = ParagraphStyle("body", fontName=regular, fontSize=11, leading=15, spaceAfter=6)
    story: list[Any] = []
    for i, text in enumerate(bodies):
        if i:
            story.append(PageBreak())
        lines = text.split("\n")
        story += [Paragraph(rl_text(utility), head), Spacer(1, 10 * mm)]
        story.append(Paragraph(rl_text(lines[0]), title))
        story += [Paragraph(rl_text(line), body) for line in lines[1:] if line.strip()]
    if not story:
        story.append(Paragraph(rl_text(utility), head))
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title="",
        author="",
    )
    doc.build(story)
    return out.getvalue()

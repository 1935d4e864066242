"""Small SQL helpers shared by the routers: filtered, paginated listings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from fastapi.responses import Response
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.deps import Page, paged


class Where:
    """Collects ``AND`` conditions and their parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, cond: str, *args: Any) -> Where:
        self.parts.append(cond)
        self.args.extend(args)
        return self

    def eq(self, column: str, value: Any) -> Where:
        if value is not None:
            self.add(f"{column} = %s", value)
        return self

    def like(self, columns: list[str], text: str | None) -> Where:
        if text:
            pat = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            self.add(
                "(" + " OR ".join(f"{c} ILIKE %s" for c in columns) + ")", *[pat] * len(columns)
            )
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "true"


async def fetch_page(
    conn: AsyncConnection[Any], select_from: str, where: Where, order: str, pg: Page
) -> dict[str, Any]:
    """``select_from`` is ``SELECT ... FROM ...`` (joins allowed); adds WHERE/ORDER/LIMIT."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT count(*) AS n FROM ({select_from} WHERE {where.sql}) AS q", where.args
        )
        total = (await cur.fetchone() or {"n": 0})["n"]
        await cur.execute(
            f"{select_from} WHERE {where.sql} ORDER BY {order} LIMIT %s OFFSET %s",
            [*where.args, pg.limit, pg.offset],
        )
        rows = await cur.fetchall()
    return paged(rows, total, pg)


async def fetch_one(conn: AsyncConnection[Any], sql: str, args: Any = ()) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchone()


async def fetch_all(conn: AsyncConnection[Any], sql: str, args: Any = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(doc: Any, status_code: int = 200) -> Response:
    """A JSON response serialised by orjson (datetimes as ISO 8601), for big payloads."""
    return Response(
        orjson.dumps(doc, default=_default), status_code=status_code, media_type="application/json"
    )


def raw_json_response(head: dict[str, Any], key: str, raw: str) -> Response:
    """``head`` plus one member ``key`` whose value is JSON text made by the database."""
    start = orjson.dumps(head, default=_default)[:-1]
    sep = b"," if len(start) > 1 else b""
    body = start + sep + orjson.dumps(key) + b":" + raw.encode() + b"}"
    return Response(body, media_type="application/json")

"""Filtered, paginated listings on an async connection: the small SQL toolkit that every
package's query module (suvnet.registry_queries, billing.queries, alarms.queries) uses for
the office API's lists.

A listing answers ``{"items": [...], "total": n, "limit": .., "offset": ..}``. The filters
are collected by :class:`Where` as ``AND`` conditions with ``%s`` parameters; the column and
table names in the SQL text come from the query modules' own constants, never from a caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row


@dataclass(frozen=True)
class Page:
    """Which slice of a listing: ``limit`` rows after skipping ``offset``."""

    limit: int
    offset: int


def paged(items: list[dict[str, Any]], total: int, p: Page) -> dict[str, Any]:
    """The listing shape of the API: the rows, how many there are in all, and the slice."""
    return {"items": items, "total": total, "limit": p.limit, "offset": p.offset}


class Where:
    """Collects ``AND`` conditions and their parameters. The condition texts are written by
    the query modules (column names are constants there); values always travel as
    parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, cond: str, *args: Any) -> Where:
        self.parts.append(cond)
        self.args.extend(args)
        return self

    def eq(self, column: str, value: Any) -> Where:
        """``column = value`` when a value is given (None: no condition)."""
        if value is not None:
            self.add(f"{column} = %s", value)
        return self

    def since_until(self, column: str, since: Any, until: Any) -> Where:
        """``since <= column < until`` for whichever bounds are given."""
        if since is not None:
            self.add(f"{column} >= %s", since)
        if until is not None:
            self.add(f"{column} < %s", until)
        return self

    def like(
        self,
        columns: list[str],
        text: str | None,
        *,
        extra: str = "",
        extra_args: tuple[Any, ...] = (),
    ) -> Where:
        """Any of ``columns`` contains ``text`` (case-insensitive, wildcards escaped);
        ``extra`` is one more alternative inside the same parentheses, with ``extra_args``."""
        if text:
            pat = like_pattern(text)
            alternatives = [f"{c} ILIKE %s" for c in columns]
            args: list[Any] = [pat] * len(columns)
            if extra:
                alternatives.append(extra)
                args.extend(extra_args)
            self.add("(" + " OR ".join(alternatives) + ")", *args)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "true"


def like_pattern(text: str) -> str:
    """``%text%`` with the LIKE wildcards and the escape character in ``text`` escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def fetch_page(
    conn: AsyncConnection[Any], select_from: str, where: Where, order: str, pg: Page
) -> dict[str, Any]:
    """``select_from`` is ``SELECT ... FROM ...`` (joins allowed) and ``order`` an ORDER BY
    list, both constants of the calling query module; adds WHERE, ORDER BY, LIMIT, OFFSET."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT count(*) AS n FROM ({select_from} WHERE {where.sql}) AS q",  # noqa: S608 - select_from, where and order are the query modules' constants; values are parameters
            where.args,
        )
        total = (await cur.fetchone() or {"n": 0})["n"]
        await cur.execute(
            f"{select_from} WHERE {where.sql} ORDER BY {order} LIMIT %s OFFSET %s",
            [*where.args, pg.limit, pg.offset],
        )
        rows = await cur.fetchall()
    return paged(rows, total, pg)


async def fetch_one(conn: AsyncConnection[Any], sql: str, args: Any = ()) -> dict[str, Any] | None:
    """The first row of ``sql`` as a dict, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchone()


async def fetch_all(conn: AsyncConnection[Any], sql: str, args: Any = ()) -> list[dict[str, Any]]:
    """Every row of ``sql`` as dicts."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()

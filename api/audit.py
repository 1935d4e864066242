"""The audit log (table ``audit_log``): every change made through the API, the web pages or
the ``suvnet users`` command, with who, when, what, before and after. One row is written in
the caller's transaction, so it commits (or rolls back) with the change it describes.

The API's own tables (``audit_log`` here, the logins in :mod:`api.users`) are the only SQL
the web layer keeps; the domain tables are read and written by their packages.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from api.security import Principal
from suvnet.listing import Page, Where, fetch_page

if TYPE_CHECKING:
    from starlette.requests import Request

INSERT_SQL = (
    "INSERT INTO audit_log (ts, actor_id, actor, role, action, entity, entity_id, before, "
    "after, ip) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
CLI_INSERT_SQL = (
    "INSERT INTO audit_log (actor, role, action, entity, entity_id, before, after) "
    "VALUES ('cli', 'admin', %s, %s, %s, %s, %s)"
)
"""A change made with the ``suvnet users`` command (the time is the database's)."""


def _json(value: Any) -> Jsonb | None:
    """A JSON value for the before/after columns; dates and the like as text."""
    if value is None:
        return None
    return Jsonb(json.loads(json.dumps(value, default=str)))


def row_values(
    *,
    now: datetime,
    who: Principal | None,
    ip: str,
    action: str,
    entity: str,
    entity_id: object,
    before: Any = None,
    after: Any = None,
) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_SQL`: the one definition of an audit row."""
    return (
        now,
        who.user_id if who else None,
        who.username if who else "anonymous",
        who.role.value if who else "none",
        action,
        entity,
        None if entity_id is None else str(entity_id),
        _json(before),
        _json(after),
        ip,
    )


async def write_audit(
    conn: AsyncConnection[Any],
    request: Request,
    who: Principal | None,
    *,
    action: str,
    entity: str,
    entity_id: object,
    before: Any = None,
    after: Any = None,
) -> None:
    """One audit row for a request, in the caller's transaction (async connection).

    The clock and the address are read as :func:`api.deps.get_state` and
    :func:`api.deps.client_ip` read them, without importing FastAPI: ``suvnet users`` loads
    this module and starts faster without it."""
    await conn.execute(
        INSERT_SQL,
        row_values(
            now=request.app.state.suvnet.clock(),
            who=who,
            ip=request.client.host if request.client else "unknown",
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=before,
            after=after,
        ),
    )


def audit_sync(
    conn: Any,
    *,
    who: Principal,
    ip: str,
    now: datetime,
    action: str,
    entity: str,
    entity_id: object,
    after: Any,
) -> None:
    """One audit row on a synchronous connection (the billing, payment and alarm calls that
    run through :func:`api.syncdb.run_sync`); it commits with the change."""
    conn.execute(
        INSERT_SQL,
        row_values(
            now=now, who=who, ip=ip, action=action, entity=entity, entity_id=entity_id, after=after
        ),
    )


async def write_cli_audit(
    conn: AsyncConnection[Any], *, action: str, entity_id: object, before: Any, after: Any
) -> None:
    """One audit row for a change to a login made with ``suvnet users``."""
    await conn.execute(
        CLI_INSERT_SQL, (action, "user", str(entity_id), _json(before), _json(after))
    )


LIST_SQL = "SELECT * FROM audit_log"


async def list_audit(
    conn: AsyncConnection[Any],
    pg: Page,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The audit log, newest first, filtered by entity, entity id, actor and time."""
    w = (
        Where()
        .eq("entity", entity)
        .eq("entity_id", entity_id)
        .eq("actor", actor)
        .since_until("ts", since, until)
    )
    return await fetch_page(conn, LIST_SQL, w, "id DESC", pg)

"""Customer requests: the actions the account card, the request queue, the customer's
cabinet and the JSON API all offer. Each one runs billing's rules
(:mod:`billing.customer_requests`) on the request's own connection - scoped to the
caller's branches (:func:`api.deps.scope_connection`) and in one transaction for a change -
and writes its audit row in the same transaction, so the change and its row commit together
or not at all. A refusal raises :class:`billing.customer_requests.RequestRefusedError` before
anything is written.

Who may do what: every role that reads billing reads requests (``READ_BILLING``); the billing
clerk, who does customer service, and the administrator record and resolve them
(:data:`REQUESTS_EDIT`); a customer records their own from the cabinet."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from psycopg import AsyncConnection

from api.audit import write_audit
from api.deps import get_state
from api.errors import NotFoundError
from api.security import Principal, Role
from api.services.billing import account_or_404
from billing import customer_requests as cr

REQUESTS_EDIT = frozenset({Role.ADMIN, Role.BILLING_CLERK})
"""Record requests, move them to in progress, resolve or reject them, and set an account's
correspondence language."""


def form_key(who: Principal, key: str, origin: str = "web") -> str:
    """The stored idempotency key of a form (or an API call): one user's keys never meet
    another's."""
    return f"{origin}:{who.user_id}:{key}"


def _audit_row(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("account", "channel", "kind", "invoice", "disputed_tiyin", "subject", "status")
    return {k: row[k] for k in keep} | {"resolution": row["resolution"]}


async def record(
    request: Request,
    who: Principal,
    conn: AsyncConnection[Any],
    account_number: str,
    req: cr.NewRequest,
    *,
    key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record a request on the account (404 when the caller's branch has no such account);
    (the request, True), or (the first request, False) when ``key`` was recorded before."""
    account = await account_or_404(conn, account_number)
    row, created = await cr.create(
        conn,
        account["id"],
        req,
        now=get_state(request).clock(),
        created_by=who.username,
        request_key=key,
    )
    if created:
        await write_audit(
            conn,
            request,
            who,
            action="request",
            entity="customer_request",
            entity_id=row["id"],
            after=_audit_row(row),
        )
    return row, created


async def change(
    request: Request,
    who: Principal,
    conn: AsyncConnection[Any],
    request_id: int,
    *,
    status: str,
    resolution: str,
) -> dict[str, Any]:
    """Move a request to in progress, resolved or rejected (404: none the caller may see)."""
    try:
        before, after = await cr.change(
            conn, request_id, status, resolution, now=get_state(request).clock()
        )
    except cr.RequestNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    await write_audit(
        conn,
        request,
        who,
        action="request_status",
        entity="customer_request",
        entity_id=request_id,
        before={"status": before["status"], "resolution": before["resolution"]},
        after={
            "status": after["status"],
            "resolution": after["resolution"],
            "resolved_at": after["resolved_at"],
        },
    )
    return after


async def get_or_404(conn: AsyncConnection[Any], request_id: int) -> dict[str, Any]:
    row = await cr.get(conn, request_id)
    if row is None:
        raise NotFoundError(f"no customer request {request_id}")
    return row


async def set_language(
    request: Request,
    who: Principal,
    conn: AsyncConnection[Any],
    account_number: str,
    language: str,
) -> str | None:
    """Set the language of the account's letters ('' : the utility's default); audited
    when it changes."""
    account = await account_or_404(conn, account_number)
    before, after = await cr.set_correspondence_language(conn, account["id"], language)
    if before != after:
        await write_audit(
            conn,
            request,
            who,
            action="language",
            entity="account",
            entity_id=account["number"],
            before={"correspondence_language": before},
            after={"correspondence_language": after},
        )
    return after

"""Customer requests (issue 15): what customer service receives - questions, complaints,
disputed bills, meter problems - and how each one ended (table ``customer_requests``,
migrations 0204 and 0205), and the language of a customer's letters
(``accounts.correspondence_language``).

The one place of the rules: the account card's forms, the request queue, the customer's
cabinet and the JSON API (through :mod:`api.services.customer_requests`) all call
:func:`check_new`/:func:`create` and :func:`check_change`/:func:`change`. A refused form
raises :class:`RequestRefusedError` with each field's :class:`~billing.register.Problem` (stable
codes the pages translate) and nothing is written.

Every function takes the API's async connection: the request's own, scoped to the caller's
branches (row-level security of migration 0801: a branch user neither sees nor changes
another branch's requests). Time comes in as ``now``. The SQL text is this module's
constants; every value travels as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from billing.payments.errors import PaymentsError
from billing.payments.money import som_to_tiyin
from billing.register import Problem, RegisterError
from suvnet.listing import Page, Where, fetch_all, fetch_one, fetch_page

AConn = AsyncConnection[Any]

CHANNELS = ("office", "phone", "cabinet", "letter", "telegram", "other")
"""How a request came (the table's check)."""
STAFF_CHANNELS = ("office", "phone", "letter", "telegram", "other")
"""The channels a clerk records; ``cabinet`` is the customer's own form."""
KINDS = ("bill_dispute", "meter", "no_water", "quality", "leak", "connection", "question", "other")
"""What a request is about (the table's check)."""
STATUSES = ("open", "in_progress", "resolved", "rejected")
OPEN = ("open", "in_progress")
"""A request still being worked on (the queue)."""
CLOSED = ("resolved", "rejected")
"""A request that has ended: it has its ``resolved_at`` and cannot change again."""
LANGUAGES = ("uz", "uz_Cyrl", "ru")
"""The languages a clerk may choose for a customer's letters (empty: the utility's default)."""
SUBJECT_MAX = 2000
RESOLUTION_MAX = 2000


class RequestRefusedError(RegisterError):
    """A request form (or API call) was refused; ``problems`` says why, field by field.
    ``conflict``: the request has ended already (resolving twice), else the input is bad."""

    @property
    def conflict(self) -> bool:
        return any(p.code == "request_closed" for p in self.problems)


class RequestNotFoundError(LookupError):
    """No such request (or not one the caller's branch may see)."""


@dataclass(frozen=True)
class NewRequest:
    """A request as a form or a program gives it. ``disputed_tiyin`` is integer tiyin (a
    page parses the so'm the clerk typed with :func:`parse_som`)."""

    channel: str
    kind: str
    subject: str
    invoice_id: int | None = None
    disputed_tiyin: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "kind": self.kind,
            "subject": self.subject.strip(),
            "invoice_id": self.invoice_id,
            "disputed_tiyin": self.disputed_tiyin,
        }


def parse_som(text: str) -> tuple[int | None, list[Problem]]:
    """The disputed amount as the office writes it (``15 000,50``, ``15000.5``) in tiyin,
    by the payments' money parsing; empty is None (no amount named)."""
    t = text.strip()
    if not t:
        return None, []
    if t.lstrip().startswith("-"):
        return None, [Problem("disputed", "amount_negative", "the amount cannot be negative")]
    try:
        return som_to_tiyin(t), []
    except PaymentsError as exc:
        return None, [Problem("disputed", "money_amount", str(exc))]


async def check_new(conn: AConn, account_id: int, req: NewRequest) -> list[Problem]:
    """Every problem of a new request on the account ``account_id`` (empty: it may be
    recorded): a known channel and kind, a subject, and for a disputed bill one of the
    account's own invoices and an amount between 0 and the invoice's amount."""
    problems: list[Problem] = []
    if req.channel not in CHANNELS:
        problems.append(Problem("channel", "request_channel", f"unknown channel {req.channel!r}"))
    if req.kind not in KINDS:
        problems.append(Problem("kind", "request_kind", f"unknown kind {req.kind!r}"))
    subject = req.subject.strip()
    if not subject:
        problems.append(Problem("subject", "required", "the subject is empty"))
    elif len(subject) > SUBJECT_MAX:
        problems.append(Problem("subject", "too_long", f"at most {SUBJECT_MAX} characters"))
    if req.kind != "bill_dispute":
        if req.invoice_id is not None or req.disputed_tiyin is not None:
            problems.append(
                Problem("invoice_id", "not_dispute", "only a disputed bill names an invoice")
            )
        return problems
    if req.invoice_id is None:
        problems.append(Problem("invoice_id", "invoice_required", "choose the disputed invoice"))
        return problems
    invoice = await fetch_one(
        conn,
        "SELECT id, account_id, amount_tiyin FROM invoices WHERE id = %s",
        (req.invoice_id,),
    )
    if invoice is None or invoice["account_id"] != account_id:
        problems.append(
            Problem("invoice_id", "other_invoice", "the invoice is not one of this account's")
        )
        return problems
    if req.disputed_tiyin is not None:
        if req.disputed_tiyin < 0:
            problems.append(Problem("disputed", "amount_negative", "the amount cannot be negative"))
        elif req.disputed_tiyin > invoice["amount_tiyin"]:
            problems.append(
                Problem(
                    "disputed",
                    "amount_over_invoice",
                    "more than the invoice's amount",
                    {"amount": str(invoice["amount_tiyin"])},
                )
            )
    return problems


REQUEST_SELECT = (
    "SELECT r.id, r.account_id, a.number AS account, a.name, r.received_at, r.channel, "
    "r.kind, r.invoice_id, i.number AS invoice, i.period AS invoice_period, "
    "i.amount_tiyin AS invoice_amount_tiyin, r.disputed_tiyin, r.subject, r.status, "
    "r.resolved_at, r.resolution, r.created_by "
    "FROM customer_requests r LEFT JOIN accounts a ON a.id = r.account_id "
    "LEFT JOIN invoices i ON i.id = r.invoice_id"
)


async def get(conn: AConn, request_id: int) -> dict[str, Any] | None:
    """One request with its account and invoice (None: none the caller may see)."""
    return await fetch_one(conn, REQUEST_SELECT + " WHERE r.id = %s", (request_id,))


async def create(
    conn: AConn,
    account_id: int,
    req: NewRequest,
    *,
    now: datetime,
    created_by: str,
    request_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record a request received ``now``; returns (the request, True) or, when a request
    with ``request_key`` was recorded before (the same form sent again), (that request,
    False) and nothing new. Raises :class:`RequestRefusedError` (nothing written)."""
    if request_key is not None:
        first = await fetch_one(
            conn, "SELECT id FROM customer_requests WHERE request_key = %s", (request_key,)
        )
        if first is not None:
            row = await get(conn, first["id"])
            assert row is not None
            return row, False
    problems = await check_new(conn, account_id, req)
    if problems:
        raise RequestRefusedError(problems)
    new = await fetch_one(
        conn,
        "INSERT INTO customer_requests (account_id, received_at, channel, kind, invoice_id, "
        "disputed_tiyin, subject, created_by, request_key) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (request_key) WHERE request_key IS NOT NULL DO NOTHING RETURNING id",
        (
            account_id,
            now,
            req.channel,
            req.kind,
            req.invoice_id,
            req.disputed_tiyin,
            req.subject.strip(),
            created_by,
            request_key,
        ),
    )
    created = new is not None
    if new is None:  # the same key recorded by a form sent twice at the same moment
        new = await fetch_one(
            conn, "SELECT id FROM customer_requests WHERE request_key = %s", (request_key,)
        )
        assert new is not None
    row = await get(conn, new["id"])
    assert row is not None
    return row, created


def check_change(current: dict[str, Any], status: str, resolution: str) -> list[Problem]:
    """The problems of moving a request to ``status``: a known status; an ended request
    does not change again; resolving or rejecting says how (``resolution``)."""
    problems: list[Problem] = []
    if status not in STATUSES or status == "open":
        problems.append(Problem("status", "request_status", f"cannot move to {status!r}"))
    if current["status"] in CLOSED:
        problems.append(
            Problem("status", "request_closed", f"the request was {current['status']} already")
        )
    elif status == current["status"]:
        problems.append(Problem("status", "same_status", f"the request is {status} already"))
    text = resolution.strip()
    if status in CLOSED and not text:
        problems.append(
            Problem("resolution", "resolution_required", "say how the request was resolved")
        )
    if len(text) > RESOLUTION_MAX:
        problems.append(Problem("resolution", "too_long", f"at most {RESOLUTION_MAX} characters"))
    return problems


async def change(
    conn: AConn, request_id: int, status: str, resolution: str, *, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move a request to in progress, resolved or rejected (``resolved_at`` = ``now`` for
    the last two); returns (before, after). The row is locked while it is checked, so two
    clerks resolving at once resolve it once. Raises :class:`RequestNotFoundError` or
    :class:`RequestRefusedError` (nothing written)."""
    locked = await fetch_one(
        conn, "SELECT id FROM customer_requests WHERE id = %s FOR UPDATE", (request_id,)
    )
    before = await get(conn, request_id) if locked else None
    if before is None:
        raise RequestNotFoundError(f"no customer request {request_id}")
    problems = check_change(before, status, resolution)
    if problems:
        raise RequestRefusedError(problems)
    closing = status in CLOSED
    await conn.execute(
        "UPDATE customer_requests SET status = %s, resolution = %s, resolved_at = %s WHERE id = %s",
        (
            status,
            resolution.strip() or before["resolution"],
            max(now, before["received_at"]) if closing else None,
            request_id,
        ),
    )
    after = await get(conn, request_id)
    assert after is not None
    return before, after


async def account_requests(conn: AConn, account_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """An account's requests, newest first (the account card, the cabinet)."""
    return await fetch_all(
        conn,
        REQUEST_SELECT + " WHERE r.account_id = %s ORDER BY r.received_at DESC, r.id DESC LIMIT %s",
        (account_id, limit),
    )


async def list_requests(
    conn: AConn,
    pg: Page,
    *,
    kind: str | None = None,
    status: str | None = None,
    open_only: bool = False,
    channel: str | None = None,
    account: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    oldest_first: bool = False,
) -> dict[str, Any]:
    """Requests filtered by kind, status (or only the open and in-progress ones), channel,
    account number and when received; newest first, or oldest first (the queue)."""
    w = (
        Where()
        .eq("r.kind", kind)
        .eq("r.status", status)
        .eq("r.channel", channel)
        .eq("a.number", account)
        .since_until("r.received_at", since, until)
    )
    if open_only:
        w.add("r.status = ANY(%s)", list(OPEN))
    order = "r.received_at, r.id" if oldest_first else "r.received_at DESC, r.id DESC"
    return await fetch_page(conn, REQUEST_SELECT, w, order, pg)


async def dispute_invoices(conn: AConn, account_id: int, limit: int = 36) -> list[dict[str, Any]]:
    """The invoices a clerk or the customer may name in a dispute: the account's own,
    newest first."""
    return await fetch_all(
        conn,
        "SELECT id, number, period, kind, amount_tiyin FROM invoices WHERE account_id = %s "
        "ORDER BY period DESC, id DESC LIMIT %s",
        (account_id, limit),
    )


# ---------------------------------------------------------------- correspondence language


def check_language(language: str) -> list[Problem]:
    """A language of the customer's letters: one of :data:`LANGUAGES`, or empty for the
    utility's default."""
    if language and language not in LANGUAGES:
        return [Problem("language", "language", f"unknown language {language!r}")]
    return []


async def correspondence_language(conn: AConn, account_id: int) -> str | None:
    row = await fetch_one(
        conn, "SELECT correspondence_language FROM accounts WHERE id = %s", (account_id,)
    )
    return None if row is None else row["correspondence_language"]


async def set_correspondence_language(
    conn: AConn, account_id: int, language: str
) -> tuple[str | None, str | None]:
    """Set (or, with ``''``, clear: the utility's default) the language of the account's
    letters; returns (before, after). Raises :class:`RequestRefusedError` (nothing written)."""
    problems = check_language(language)
    if problems:
        raise RequestRefusedError(problems)
    before = await correspondence_language(conn, account_id)
    await conn.execute(
        "UPDATE accounts SET correspondence_language = %s WHERE id = %s",
        (language or None, account_id),
    )
    return before, language or None

"""Customer requests in the back office and the cabinet (issue 15).

* the account card (:mod:`api.web.staff`) shows the account's requests, newest first, a form
  to record one (channel, kind, subject; a disputed bill names one of the account's
  invoices and the amount disputed, typed in so'm as the office writes it) and, for each
  open one, a form to move it to in progress, resolve or reject it with how it ended:
  :func:`card_context`, ``POST /staff/accounts/{number}/requests``,
  ``POST /staff/requests/{request_id}/status``;
* the queue ``/staff/requests``: the open and in-progress requests, oldest first, by kind
  and state, each linked to its account card;
* the cabinet ``/cabinet/requests``: the customer writes to the utility (channel
  ``cabinet``) and sees their requests and their states.

The rules are :mod:`billing.customer_requests`, the actions with their audit rows
:mod:`api.services.customer_requests` (the same as the JSON API's). Every page uses the
request's own connection (:data:`api.deps.Conn`), scoped to the caller's branches.

**The forms that record a request are idempotent by a key rendered into them**, as the
cashier desk's (:mod:`api.web.staff_payments`): the page's address carries ``?form=<key>``
(api/static/form_key.js writes it there), the form sends it, and a form sent again after
browser Back answers with the request it recorded the first time.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, require
from api.i18n import format_som
from api.security import CUSTOMER_SELF, READ_BILLING, Principal
from api.services import customer_requests as svc
from api.services.billing import account_or_404
from api.web.common import render
from api.web.staff_register_common import N_, Words
from billing import customer_requests as cr
from billing.register import Problem
from suvnet.listing import Page

router = APIRouter(include_in_schema=False)
staff = APIRouter(prefix="/staff")
cabinet = APIRouter(prefix="/cabinet")
Reader = Annotated[Principal, Depends(require(READ_BILLING))]
Clerk = Annotated[Principal, Depends(require(svc.REQUESTS_EDIT))]
Customer = Annotated[Principal, Depends(require(CUSTOMER_SELF))]
Subject = Annotated[str, Form(max_length=cr.SUBJECT_MAX + 200)]
Short = Annotated[str, Form(max_length=40)]
FORM_KEY = re.compile(r"^[0-9a-f]{32}$")
QUEUE = "/staff/requests"
QUEUE_PAGE = 50
"""Requests a queue page shows."""

LABELS: dict[str, dict[str, str]] = {
    "kind": {
        "bill_dispute": N_("Disputed bill"),
        "meter": N_("Meter"),
        "no_water": N_("No water"),
        "quality": N_("Water quality"),
        "leak": N_("Leak"),
        "connection": N_("Connection"),
        "question": N_("Question"),
        "other": N_("Other"),
    },
    "channel": {
        "office": N_("At the office"),
        "phone": N_("By phone"),
        "cabinet": N_("Personal cabinet"),
        "letter": N_("Letter"),
        "telegram": "Telegram",
        "other": N_("Other"),
    },
    "status": {
        "open": N_("Open request"),
        "in_progress": N_("In progress"),
        "resolved": N_("Resolved"),
        "rejected": N_("Rejected"),
    },
    "action": {
        "in_progress": N_("Take into work"),
        "resolved": N_("Resolve"),
        "rejected": N_("Reject"),
    },
    "language": {
        "uz": N_("Uzbek (Latin)"),
        "uz_Cyrl": N_("Uzbek (Cyrillic)"),
        "ru": N_("Russian"),
        "en": N_("English"),
    },
}
"""The words for the codes of a request and of the correspondence language."""

PROBLEMS: dict[str, str] = {
    "request_channel": N_("Choose how the request came."),
    "request_kind": N_("Choose what the request is about."),
    "invoice_required": N_("Choose the disputed invoice."),
    "other_invoice": N_("This invoice is not one of this account's."),
    "not_dispute": N_("Only a disputed bill names an invoice and an amount."),
    "amount_negative": N_("The disputed amount cannot be negative."),
    "amount_over_invoice": N_(
        "The disputed amount is more than the invoice's amount, %(amount)s so'm."
    ),
    "money_amount": N_("Enter an amount in so'm, for example 15 000,50."),
    "request_status": N_("Choose in progress, resolved or rejected."),
    "request_closed": N_("This request has ended already: it cannot change again."),
    "same_status": N_("The request is in this state already."),
    "resolution_required": N_("Say how the request was resolved or why it was rejected."),
    "language": N_("Choose one of the languages."),
}
"""The words for the problem codes of :mod:`billing.customer_requests` (the others are the
register's, :data:`api.web.staff_register_common.PROBLEMS`)."""


class RequestWords(Words):
    """The register's words with those of requests: ``w.req("kind", "leak")``."""

    def req(self, group: str, value: str | None) -> str:
        if value is None:
            return ""
        text = LABELS.get(group, {}).get(value)
        return value if text is None else self.tr.gettext(text)

    def problem(self, p: Problem) -> str:
        text = PROBLEMS.get(p.code)
        if text is None:
            return super().problem(p)
        params = {k: format_som(int(v)) if k == "amount" else v for k, v in p.params.items()}
        return self.tr.gettext(text) % params if params else self.tr.gettext(text)


def errors_of(w: RequestWords, problems: list[Problem]) -> dict[str, str]:
    """Each field's translated problems (what the form shows next to it)."""
    out: dict[str, list[str]] = {}
    for p in problems:
        text = w.problem(p)
        if text not in out.get(p.field, []):
            out.setdefault(p.field, []).append(text)
    return {k: " ".join(v) for k, v in out.items()}


def new_key() -> str:
    return uuid.uuid4().hex


def page_key(request: Request) -> str:
    """The page's form key: from its address (Back brings the same one), else a new one."""
    key = request.query_params.get("form", "")
    return key if FORM_KEY.match(key) else new_key()


def _int_or_none(text: str) -> tuple[int | None, list[Problem]]:
    t = text.strip()
    if not t:
        return None, []
    if not t.isdigit() or len(t) > 18:
        return None, [Problem("invoice_id", "other_invoice", "not an invoice")]
    return int(t), []


def _new_request(
    channel: str, kind: str, subject: str, invoice_id: str, disputed: str
) -> tuple[cr.NewRequest, list[Problem]]:
    """A form's request and the problems of reading it (amount, invoice); the rules are
    checked by :func:`billing.customer_requests.check_new`."""
    inv, p1 = _int_or_none(invoice_id) if kind == "bill_dispute" else (None, [])
    amount, p2 = cr.parse_som(disputed) if kind == "bill_dispute" else (None, [])
    req = cr.NewRequest(
        channel=channel, kind=kind, subject=subject, invoice_id=inv, disputed_tiyin=amount
    )
    return req, p1 + p2


async def _record(
    request: Request,
    who: Principal,
    conn: Conn,
    number: str,
    req: cr.NewRequest,
    *,
    read_problems: list[Problem],
    key: str,
    origin: str,
) -> tuple[dict[str, Any] | None, bool, list[Problem]]:
    """(the request, recorded now?, problems): the reading problems and the rules' together,
    nothing written while there is one."""
    if read_problems:
        # with a field that could not be read, the rules' problems of the other fields
        account = await account_or_404(conn, number)
        bad = {p.field for p in read_problems}
        rules = await cr.check_new(conn, account["id"], req)
        return None, False, read_problems + [p for p in rules if p.field not in bad]
    try:
        row, created = await svc.record(
            request, who, conn, number, req, key=svc.form_key(who, key, origin)
        )
    except cr.RequestRefusedError as exc:
        return None, False, exc.problems
    return row, created, []


# ------------------------------------------------------------------------ the account card


async def card_context(
    request: Request, who: Principal, conn: Conn, account: dict[str, Any]
) -> dict[str, Any]:
    """What the account card's requests card needs (staff_requests_card.html)."""
    return {
        "requests": await cr.account_requests(conn, account["id"]),
        "rq": _form_ctx(request, who, await cr.dispute_invoices(conn, account["id"])),
        "rw": RequestWords(request),
        "language": await cr.correspondence_language(conn, account["id"]),
    }


def _form_ctx(
    request: Request,
    who: Principal,
    invoices: list[dict[str, Any]],
    *,
    key: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    q = request.query_params
    return {
        "can_edit": who.role in svc.REQUESTS_EDIT,
        "key": key or page_key(request),
        "values": values or {"channel": "office", "kind": "question"},
        "errors": errors or {},
        "invoices": invoices,
        "kinds": cr.KINDS,
        "channels": cr.STAFF_CHANNELS,
        "closing": ("in_progress", "resolved", "rejected"),
        "done": q.get("request_done", "")[:20],
        "again": q.get("again") == "1",
    }


@staff.post("/accounts/{number}/requests")
async def record_request(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    channel: Short,
    kind: Short,
    subject: Subject = "",
    invoice_id: Short = "",
    disputed: Short = "",
    request_key: Short = "",
) -> Response:
    """A request recorded from the account card; back to the card (a new form key), or the
    form again with each field's problem (422)."""
    key = request_key if FORM_KEY.match(request_key) else new_key()
    req, read_problems = _new_request(channel, kind, subject, invoice_id, disputed)
    row, created, problems = await _record(
        request, who, conn, number, req, read_problems=read_problems, key=key, origin="web"
    )
    if row is None:
        account = await account_or_404(conn, number)
        w = RequestWords(request)
        values = {
            "channel": channel,
            "kind": kind,
            "subject": subject,
            "invoice_id": invoice_id,
            "disputed": disputed,
        }
        return render(
            request,
            "staff_request_form.html",
            422,
            who=who,
            w=w,
            rw=w,
            mode="new",
            account=account,
            rq=_form_ctx(
                request,
                who,
                await cr.dispute_invoices(conn, account["id"]),
                key=key,
                values=values,
                errors=errors_of(w, problems),
            ),
        )
    query = {"form": new_key(), "request_done": str(row["id"])}
    if not created:
        query["again"] = "1"
    return RedirectResponse(
        f"/staff/accounts/{row['account']}?{urlencode(query)}#request-{row['id']}", 303
    )


@staff.post("/requests/{request_id}/status")
async def change_status(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    request_id: Annotated[int, Path(ge=1, le=2**62)],
    status: Short,
    resolution: Subject = "",
    back: Short = "",
) -> Response:
    """In progress, resolved or rejected; back to the card (or the queue) it came from. The
    same form sent again after it was done says so instead of refusing it."""
    current = await svc.get_or_404(conn, request_id)
    done = QUEUE if back == "queue" else f"/staff/accounts/{current['account']}"
    anchor = f"#request-{request_id}"
    try:
        await svc.change(request, who, conn, request_id, status=status, resolution=resolution)
    except cr.RequestRefusedError as exc:
        same = current["status"] == status and current["resolution"] == resolution.strip()
        if same:  # the first one did it (Back, then the form sent again)
            return RedirectResponse(f"{done}?{urlencode({'request_done': request_id})}", 303)
        w = RequestWords(request)
        return render(
            request,
            "staff_request_form.html",
            409 if exc.conflict else 422,
            who=who,
            w=w,
            rw=w,
            mode="status",
            r=current,
            back=back,
            rq=_form_ctx(
                request,
                who,
                [],
                values={"status": status, "resolution": resolution},
                errors=errors_of(w, exc.problems),
            ),
        )
    query = urlencode({"request_done": request_id})
    return RedirectResponse(f"{done}?{query}{anchor if back != 'queue' else ''}", 303)


# ------------------------------------------------------------------------------- the queue


@staff.get("/requests")
async def queue(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    kind: Annotated[str, Query(max_length=20)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The open and in-progress requests, oldest first, by kind and state."""
    kind_f = kind if kind in cr.KINDS else None
    status_f = status if status in cr.OPEN else None
    pg = Page(QUEUE_PAGE, offset)
    page = await cr.list_requests(
        conn, pg, kind=kind_f, status=status_f, open_only=True, oldest_first=True
    )
    w = RequestWords(request)
    base = {k: v for k, v in (("kind", kind_f), ("status", status_f)) if v}
    nav = {
        "prev": urlencode({**base, "offset": max(0, offset - QUEUE_PAGE)}) if offset else None,
        "next": urlencode({**base, "offset": offset + QUEUE_PAGE})
        if offset + QUEUE_PAGE < page["total"]
        else None,
    }
    return render(
        request,
        "staff_requests.html",
        who=who,
        w=w,
        rw=w,
        page=page,
        kind=kind_f or "",
        status=status_f or "",
        kinds=cr.KINDS,
        statuses=cr.OPEN,
        nav=nav,
        first=offset + 1,
        rq=_form_ctx(request, who, []),
    )


# ----------------------------------------------------------------------------- the cabinet


async def _cabinet_page(
    request: Request, who: Principal, conn: Conn, status: int = 200, **ctx: Any
) -> Response:
    assert who.account_no is not None
    account = await account_or_404(conn, who.account_no)
    w = RequestWords(request)
    ctx.setdefault("values", {"kind": "question"})
    ctx.setdefault("errors", {})
    return render(
        request,
        "cabinet_requests.html",
        status,
        w=w,
        rw=w,
        account=account,
        requests=await cr.account_requests(conn, account["id"]),
        invoices=await cr.dispute_invoices(conn, account["id"], 12),
        kinds=cr.KINDS,
        key=ctx.pop("key", None) or page_key(request),
        thanks=request.query_params.get("done") == "1",
        again=request.query_params.get("again") == "1",
        **ctx,
    )


@cabinet.get("/requests")
async def cabinet_requests(*, request: Request, who: Customer, conn: Conn) -> Response:
    """The customer's requests with their states, and the form to write to the utility."""
    return await _cabinet_page(request, who, conn)


@cabinet.post("/requests")
async def cabinet_write(
    *,
    request: Request,
    who: Customer,
    conn: Conn,
    kind: Short,
    subject: Subject = "",
    invoice_id: Short = "",
    disputed: Short = "",
    request_key: Short = "",
) -> Response:
    """A request from the customer for their own account (channel ``cabinet``)."""
    assert who.account_no is not None
    key = request_key if FORM_KEY.match(request_key) else new_key()
    req, read_problems = _new_request("cabinet", kind, subject, invoice_id, disputed)
    row, created, problems = await _record(
        request,
        who,
        conn,
        who.account_no,
        req,
        read_problems=read_problems,
        key=key,
        origin="cabinet",
    )
    if row is None:
        values = {"kind": kind, "subject": subject, "invoice_id": invoice_id, "disputed": disputed}
        return await _cabinet_page(
            request,
            who,
            conn,
            422,
            key=key,
            values=values,
            errors=errors_of(RequestWords(request), problems),
        )
    query = {"form": new_key(), "done": "1"}
    if not created:
        query["again"] = "1"
    return RedirectResponse(f"/cabinet/requests?{urlencode(query)}", 303)


router.include_router(staff)
router.include_router(cabinet)

"""Back-office pages of the payments: the cashier desk (payment, receipt, void, today's shift)
and bank statements (upload, review queue, allocation, re-match). Thin pages over the same
actions as the JSON API (:mod:`api.services.payments`).

**Every form that posts money is idempotent by a key rendered into it.** The key is part of
the page's address (``?form=<key>``) and the form carries it in a hidden field. A page opened
without one gets a fresh key, which api/static/form_key.js writes into the address
(``history.replaceState``). Browser Back brings the page with the same address, so the same
key: sending the form again answers with the first receipt (or the first allocation) instead
of taking the money twice. After a payment the desk moves on to an address with a new key.

Refusals and notes are shown in the visitor's language (:mod:`api.web.payment_messages`);
times are Tashkent time, said so on the page."""

from __future__ import annotations

import gettext
import logging
import re
import uuid
from collections.abc import Awaitable
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import Conn, get_state, require
from api.i18n import gettext_for
from api.security import CASHIER_DESK, STATEMENTS, Principal
from api.services import payments
from api.syncdb import run_sync
from api.web import payment_messages as pm
from api.web.common import language, render
from billing.payments import cashier as desk
from billing.payments.errors import PaymentsError, RequestKeyReusedError, VoidRefusedError
from billing.payments.matching import preselect
from billing.payments.money import som_to_tiyin

log = logging.getLogger(__name__)
router = APIRouter(prefix="/staff/payments", include_in_schema=False)
DeskUser = Annotated[Principal, Depends(require(CASHIER_DESK))]
Clerk = Annotated[Principal, Depends(require(STATEMENTS))]
DESK = "/staff/payments/desk"
STATEMENTS_PAGE = "/staff/payments/statements"
FORM_KEY = re.compile(r"^[0-9a-f]{32}$")


def new_key() -> str:
    return uuid.uuid4().hex


def _desk_key(who: Principal, form: str) -> str:
    """The desk's idempotency key of a form: one cashier's keys never meet another's."""
    return f"web:{who.user_id}:{form}"


def _tr(request: Request) -> gettext.GNUTranslations:
    return gettext_for(language(request))


# ------------------------------------------------------------------ cashier desk
async def _desk_page(
    request: Request, who: Principal, form: str, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    st = get_state(request)
    cfg = payments.payments_config(request)
    tz = ZoneInfo(cfg.timezone)
    rep = await run_sync(
        st, desk.shift_report, who.username, st.clock().astimezone(tz).date(), cfg.timezone
    )
    for p in rep.payments:
        p["local_time"] = p["taken_at"].astimezone(tz).strftime("%H:%M")
    for key in ("receipt", "error", "hint", "message", "again"):
        ctx.setdefault(key, None)
    ctx.setdefault("account", "")
    ctx.setdefault("amount", "")
    return render(
        request,
        "payments_desk.html",
        status_code,
        who=who,
        shift=rep,
        request_key=form,
        form_url=f"{DESK}?{urlencode({'form': form})}",
        **ctx,
    )


@router.get("/desk")
async def desk_page(  # noqa: PLR0917 - query parameters
    request: Request,
    who: DeskUser,
    form: str = "",
    receipt: str = "",
    done: str = "",
    moved: str = "",
    again: str = "",
) -> Response:
    """The one cashier desk of the back office (/staff/cashier redirects here). ``moved`` is
    set when a form of the old desk page was sent: nothing was taken, the cashier is told so.
    ``form`` is the page's form key (a fresh one is made when it is missing)."""
    if not FORM_KEY.match(form):
        form = new_key()
    st = get_state(request)
    rec = None
    if receipt:
        try:
            rec = await run_sync(st, desk.get_receipt, receipt[:40])
        except PaymentsError:
            rec = None
    message = None
    if done:
        message = _tr(request).gettext("Receipt %(receipt)s is void.") % {"receipt": done[:40]}
    return await _desk_page(
        request,
        who,
        form,
        receipt=rec,
        message=message,
        hint="moved" if moved else None,
        again=bool(again) and rec is not None,
    )


@router.post("/desk")
async def desk_take(
    *,
    request: Request,
    who: DeskUser,
    account: Annotated[str, Form(max_length=32)],
    amount: Annotated[str, Form(max_length=32)],
    method: Annotated[str, Form(max_length=8)] = "cash",
    request_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    form = request_key if FORM_KEY.match(request_key) else new_key()
    tr = _tr(request)

    def refused(hint: str, exc: Exception | str) -> Awaitable[HTMLResponse]:
        return _desk_page(
            request,
            who,
            form,
            422,
            hint=hint,
            error=pm.explain(exc, tr),
            account=account,
            amount=amount,
        )

    if method not in ("cash", "card"):
        return await refused("refused", "payment method must be cash or card")
    try:
        tiyin = som_to_tiyin(amount)
    except PaymentsError as exc:
        return await refused("amount", exc)
    try:
        r = await payments.take_payment(
            request,
            who,
            account_number=account,
            amount_tiyin=tiyin,
            method="card" if method == "card" else "cash",
            request_key=_desk_key(who, form) if request_key else None,
        )
    except RequestKeyReusedError as exc:
        return await _desk_page(
            request,
            who,
            new_key(),
            409,
            hint="reused",
            error=pm.explain(exc, tr),
            account=account,
            amount=amount,
        )
    except PaymentsError as exc:
        return await refused("refused", exc)
    query = {"form": new_key(), "receipt": r.receipt_no}
    if not r.created:
        query["again"] = "1"
    return RedirectResponse(f"{DESK}?{urlencode(query)}", status_code=303)


@router.post("/desk/void")
async def desk_void(
    request: Request,
    who: DeskUser,
    receipt_no: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    done = f"{DESK}?" + urlencode({"form": new_key(), "done": receipt_no})
    try:
        await payments.void_payment(request, who, receipt_no, reason=reason)
    except VoidRefusedError as exc:
        # the same void sent again (Back, then submit): the first one stands
        st = get_state(request)
        r = await run_sync(st, desk.get_receipt, receipt_no)
        if r.voided_by == who.username and (r.void_reason or "") == reason.strip():
            return RedirectResponse(done, status_code=303)
        return await _desk_page(request, who, new_key(), 403, error=pm.explain(exc, _tr(request)))
    except PaymentsError as exc:
        return await _desk_page(request, who, new_key(), 403, error=pm.explain(exc, _tr(request)))
    return RedirectResponse(done, status_code=303)


# ------------------------------------------------------------------ bank statements
async def _statements_page(
    request: Request, who: Principal, form: str, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    tr = _tr(request)
    items, _, suspense = await payments.review_queue(request, limit=200)
    for it in items:
        sugg = it.get("suggestions") or []
        it["preselect"] = preselect([(s["account"], float(s["score"])) for s in sugg])
        it["tied"] = len(sugg) > 1 and it["preselect"] is None
        it["note_text"] = pm.note(it.get("note") or "", tr)
        it["status_text"] = pm.status(it["status"], tr)
        it["open_tiyin"] = it["amount_tiyin"] - it["allocated_tiyin"]
        it["form_key"] = f"{form}.{it['line_id']}"
    for key in ("error", "message", "summary"):
        ctx.setdefault(key, None)
    return render(
        request,
        "payments_statements.html",
        status_code,
        who=who,
        items=items,
        suspense=suspense,
        form=form,
        **ctx,
    )


def _done_message(request: Request) -> str | None:
    """The translated outcome of the last action, from the redirect's parameters."""
    q = request.query_params
    tr = _tr(request)
    if q.get("done") == "allocated":
        text = tr.gettext("Line %(line)s: %(status)s.") % {
            "line": q.get("line", "")[:20],
            "status": pm.status(q.get("status", "")[:20], tr),
        }
        if q.get("again"):
            text += " " + tr.gettext(
                "This form was sent before: the allocation was made once, nothing more was posted."
            )
        return text
    if q.get("done") == "rematch":
        return tr.gettext(
            "Matched again: %(matched)s allocated in full, %(partial)s partly, %(review)s to "
            "review, %(suspense)s still in suspense."
        ) % {k: q.get(k, "0")[:10] for k in ("matched", "partial", "review", "suspense")}
    return None


@router.get("/statements")
async def statements_page(request: Request, who: Clerk, form: str = "") -> Response:
    if not FORM_KEY.match(form):
        form = new_key()
    return await _statements_page(request, who, form, message=_done_message(request))


@router.post("/statements")
async def statements_upload(
    request: Request, who: Clerk, file: Annotated[UploadFile, File()]
) -> Response:
    tr = _tr(request)
    try:
        stmt = await payments.read_statement(file)
    except PaymentsError as exc:
        return await _statements_page(request, who, new_key(), 422, error=pm.explain(exc, tr))
    summary = await payments.import_statement(request, who, stmt, filename=file.filename or "")
    return await _statements_page(request, who, new_key(), summary=summary)


@router.post("/statements/{line_id}/allocate")
async def statements_allocate(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    line_id: int,
    account: Annotated[str, Form(max_length=32)] = "",
    pick: Annotated[str, Form(max_length=32)] = "",
    amount: Annotated[str, Form(max_length=32)],
    request_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Allocate (part of) a credit to the account typed in, or else the suggestion picked.
    Nothing is chosen for the clerk when suggestions tie."""
    tr = _tr(request)
    form = request_key.split(".", 1)[0] if request_key else ""
    form = form if FORM_KEY.match(form) else new_key()
    number = account.strip() or pick.strip()
    if not number:
        msg = tr.gettext("Choose one of the suggested accounts or type an account number.")
        return await _statements_page(request, who, form, 422, error=msg)
    try:
        tiyin = som_to_tiyin(amount)
        done = await payments.allocate(
            request,
            who,
            line_id,
            [(number, tiyin)],
            request_key=f"web:{who.user_id}:{request_key}" if request_key else None,
            conn=conn,
        )
    except PaymentsError as exc:
        return await _statements_page(request, who, form, 422, error=pm.explain(exc, tr))
    query = {"form": new_key(), "done": "allocated", "line": str(line_id), "status": done.status}
    if done.repeated:
        query["again"] = "1"
    return RedirectResponse(f"{STATEMENTS_PAGE}?{urlencode(query)}", status_code=303)


@router.post("/statements/rematch")
async def statements_rematch(request: Request, who: Clerk) -> Response:
    counts = await payments.rematch(request, who)
    query = {"form": new_key(), "done": "rematch", **{k: str(v) for k, v in counts.items()}}
    return RedirectResponse(f"{STATEMENTS_PAGE}?{urlencode(query)}", status_code=303)

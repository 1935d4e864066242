"""Back-office pages of the payments: the cashier desk (payment, receipt, void, today's shift)
and bank statements (upload, review queue, allocation, re-match). Thin pages over the same
billing.payments functions as the JSON API."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from api.deps import CSRF_FIELD, client_ip, get_state, require
from api.i18n import LANGUAGES, gettext_for
from api.payments.common import (
    CASHIER_DESK,
    STATEMENTS,
    VOID_ANY,
    audit_sync,
    import_statement_audited,
    payments_config,
    take_payment_audited,
)
from api.payments.texts import text
from api.security import Principal
from api.syncdb import run_sync
from api.web import common
from billing.payments import cashier as desk
from billing.payments import importer
from billing.payments.errors import PaymentsError, StatementError
from billing.payments.money import som_to_tiyin
from billing.payments.statements import parse_statement

log = logging.getLogger(__name__)
router = APIRouter(prefix="/staff/payments", include_in_schema=False)
DeskUser = Annotated[Principal, Depends(require(CASHIER_DESK))]
Clerk = Annotated[Principal, Depends(require(STATEMENTS))]

_env = Environment(
    loader=ChoiceLoader(
        [FileSystemLoader(Path(__file__).parent / "templates"), FileSystemLoader(common.TEMPLATES)]
    ),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(common.env.filters)
_env.globals.update(static_url=common.static_url)


def _render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Like api.web.common.render, with the payment pages' own words."""
    lang = common.language(request)
    tr = gettext_for(lang)

    def gettext(msg: str) -> str:
        return text(lang, msg) or tr.gettext(msg)

    token, new_token = common.csrf_token(request)
    base_query = {k: v for k, v in request.query_params.items() if k != "lang"}
    links = [
        {
            "code": lg.code,
            "label": lg.label,
            "href": request.url.path + "?" + urlencode({**base_query, "lang": lg.code}),
            "current": lg.code == lang,
        }
        for lg in LANGUAGES
    ]
    body = _env.get_template(template).render(
        _=gettext,
        lang=lang,
        html_lang=next(lg.html_lang for lg in LANGUAGES if lg.code == lang),
        languages=links,
        csrf_field=CSRF_FIELD,
        csrf_token=token,
        request=request,
        **ctx,
    )
    return common.html_page(request, body, status_code, token, new_token=new_token)


# ------------------------------------------------------------------ cashier desk
async def _desk_page(
    request: Request, who: Principal, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    st = get_state(request)
    cfg = payments_config(request)
    tz = ZoneInfo(cfg.timezone)
    rep = await run_sync(
        st, desk.shift_report, who.username, st.clock().astimezone(tz).date(), cfg.timezone
    )
    for p in rep.payments:
        p["local_time"] = p["taken_at"].astimezone(tz).strftime("%H:%M")
    ctx.setdefault("receipt", None)
    ctx.setdefault("error", None)
    ctx.setdefault("hint", None)  # "amount", "refused" or "moved": a translated line
    ctx.setdefault("message", None)
    ctx.setdefault("account", "")
    return _render(
        request,
        "payments_desk.html",
        status_code,
        who=who,
        shift=rep,
        request_key=uuid.uuid4().hex,
        **ctx,
    )


@router.get("/desk")
async def desk_page(
    request: Request, who: DeskUser, receipt: str = "", done: str = "", moved: str = ""
) -> Response:
    """The one cashier desk of the back office (/staff/cashier redirects here). ``moved`` is
    set when a form of the old desk page was sent: nothing was taken, the cashier is told so."""
    st = get_state(request)
    rec = None
    if receipt:
        try:
            rec = await run_sync(st, desk.get_receipt, receipt[:40])
        except PaymentsError:
            rec = None
    return await _desk_page(
        request, who, receipt=rec, message=done[:200] or None, hint="moved" if moved else None
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
    st = get_state(request)
    now = st.clock()
    if method not in ("cash", "card"):
        return await _desk_page(
            request, who, 422, hint="refused", error="method must be cash or card"
        )
    try:
        tiyin = som_to_tiyin(amount)
    except PaymentsError as exc:
        return await _desk_page(request, who, 422, hint="amount", error=str(exc), account=account)

    def work(conn: Any) -> desk.Receipt:
        return take_payment_audited(
            conn,
            who=who,
            ip=client_ip(request),
            now=now,
            account_number=account,
            amount_tiyin=tiyin,
            method="card" if method == "card" else "cash",
            request_key=request_key or None,
        )

    try:
        r = await run_sync(st, work)
    except PaymentsError as exc:
        return await _desk_page(request, who, 422, hint="refused", error=str(exc), account=account)
    return RedirectResponse(f"/staff/payments/desk?receipt={r.receipt_no}", status_code=303)


@router.post("/desk/void")
async def desk_void(
    request: Request,
    who: DeskUser,
    receipt_no: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    st = get_state(request)
    cfg = payments_config(request)
    now = st.clock()

    def work(conn: Any) -> desk.Receipt:
        r = desk.void_payment(
            conn,
            receipt_no,
            by=who.username,
            may_void_any=who.role in VOID_ANY,
            reason=reason,
            now=now,
            tz=cfg.timezone,
        )
        audit_sync(
            conn,
            who=who,
            ip=client_ip(request),
            now=now,
            action="void",
            entity="cashier_receipt",
            entity_id=receipt_no,
            after={"reason": reason, "amount_tiyin": r.amount_tiyin},
        )
        return r

    try:
        await run_sync(st, work)
    except PaymentsError as exc:
        return await _desk_page(request, who, 403, error=str(exc))
    return RedirectResponse(
        "/staff/payments/desk?" + urlencode({"done": f"{receipt_no} voided"}), status_code=303
    )


# ------------------------------------------------------------------ bank statements
async def _statements_page(
    request: Request, who: Principal, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    st = get_state(request)

    def load(conn: Any) -> tuple[list[dict[str, Any]], int]:
        return importer.review_queue(conn, limit=200), importer.suspense_total(conn)

    items, suspense = await run_sync(st, load)
    for key in ("error", "message", "summary"):
        ctx.setdefault(key, None)
    return _render(
        request,
        "payments_statements.html",
        status_code,
        who=who,
        items=items,
        suspense=suspense,
        **ctx,
    )


@router.get("/statements")
async def statements_page(request: Request, who: Clerk, done: str = "") -> Response:
    return await _statements_page(request, who, message=done[:200] or None)


@router.post("/statements")
async def statements_upload(
    request: Request, who: Clerk, file: Annotated[UploadFile, File()]
) -> Response:
    st = get_state(request)
    cfg = payments_config(request)
    data = await file.read(20 * 1024 * 1024 + 1)
    if len(data) > 20 * 1024 * 1024:
        return await _statements_page(request, who, 422, error="the file is larger than 20 MB")
    try:
        stmt = parse_statement(data, file.filename or "")
    except StatementError as exc:
        return await _statements_page(request, who, 422, error=str(exc))
    now = st.clock()

    def work(conn: Any) -> importer.ImportSummary:
        return import_statement_audited(
            conn,
            stmt,
            who=who,
            ip=client_ip(request),
            now=now,
            filename=file.filename or "",
            fuzzy_min_score=cfg.fuzzy_min_score,
        )

    summary = await run_sync(st, work)
    return await _statements_page(request, who, summary=summary)


@router.post("/statements/{line_id}/allocate")
async def statements_allocate(
    *,
    request: Request,
    who: Clerk,
    line_id: int,
    account: Annotated[str, Form(max_length=32)],
    amount: Annotated[str, Form(max_length=32)],
) -> Response:
    st = get_state(request)
    now = st.clock()
    try:
        tiyin = som_to_tiyin(amount)

        def work(conn: Any) -> str:
            status = importer.allocate_manual(
                conn, line_id, [(account, tiyin)], now=now, by=who.username
            )
            audit_sync(
                conn,
                who=who,
                ip=client_ip(request),
                now=now,
                action="allocate",
                entity="bank_statement_line",
                entity_id=line_id,
                after={"account": account, "amount_tiyin": tiyin, "status": status},
            )
            return status

        status = await run_sync(st, work)
    except PaymentsError as exc:
        return await _statements_page(request, who, 422, error=str(exc))
    return RedirectResponse(
        "/staff/payments/statements?" + urlencode({"done": f"line {line_id}: {status}"}),
        status_code=303,
    )


@router.post("/statements/rematch")
async def statements_rematch(request: Request, who: Clerk) -> Response:
    st = get_state(request)
    cfg = payments_config(request)
    counts = await run_sync(
        st,
        lambda conn: importer.rematch(
            conn, now=st.clock(), by=who.username, fuzzy_min_score=cfg.fuzzy_min_score
        ),
    )
    msg = ", ".join(f"{k} {v}" for k, v in counts.items())
    return RedirectResponse(
        "/staff/payments/statements?" + urlencode({"done": msg}), status_code=303
    )

"""The register pages of the back office (/staff/register): the search, accounts (open,
edit, suspend, close, reopen) and residents. Meters and readings are
:mod:`api.web.staff_register_meters`, the address dictionary, tariffs and norms
:mod:`api.web.staff_register_places`; their routers are included in this one, so the app
mounts one router.

Every page reads with the billing's query functions; every change is an action of
:mod:`api.services.register` (billing's rules and the audit row in one transaction). Reading
is for the roles that read billing; changes for ``REGISTER_EDIT`` (tariffs and norms:
``RATES_EDIT``). A refused form comes back with each field's problem in the page's
language (422)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, client_ip, get_state, require
from api.errors import NotFoundError
from api.security import READ_BILLING, Principal
from api.services import customer_requests as request_actions
from api.services import register as svc
from api.services.billing import set_account_status
from api.syncdb import run_sync
from api.web import staff_register_meters, staff_register_places
from api.web.common import render
from api.web.staff_register_common import Words, can, errors_by_field, form_date, form_moment
from api.web.staff_requests import RequestWords, errors_of
from billing import customer_requests, search
from billing import register as reg
from billing.accounts import KINDS, STATUSES
from billing.errors import AccountDataError, BillingError

router = APIRouter(prefix="/staff/register", include_in_schema=False)
Reader = Annotated[Principal, Depends(require(READ_BILLING))]
Clerk = Annotated[Principal, Depends(require(svc.REGISTER_EDIT))]
Text = Annotated[str, Form(max_length=300)]
Number = Annotated[str, Form(max_length=20)]


def _page(
    request: Request, template: str, who: Principal, status: int = 200, **ctx: Any
) -> Response:
    return render(request, template, status, who=who, w=Words(request), can=can(who), **ctx)


# ---------------------------------------------------------------------------------- search


@router.get("")
async def home(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """The register's first page: the search (Latin or Cyrillic, a part of an address, a
    phone, a meter serial, an INN, an account number) and the way to every register page."""
    results = await search.search_accounts(conn, q, 50) if q.strip() else []
    return _page(request, "staff_register_home.html", who, q=q, results=results)


# -------------------------------------------------------------------------------- accounts


def _account_form(**f: Any) -> reg.AccountForm:
    return reg.AccountForm(
        kind=f["kind"],
        category=f.get("category", ""),
        name=f["name"],
        street_id=f["street_id"],
        house=f["house"],
        apartment=f.get("apartment", ""),
        inn=f.get("inn", ""),
        mfo=f.get("mfo", ""),
        bank_account=f.get("bank_account", ""),
        phone=f.get("phone", ""),
        email=f.get("email", ""),
        residents=f.get("residents", "0"),
        metered=f.get("metered", False),
        opened_on=form_date(f.get("opened_on", "")),
        number=f.get("number", ""),
    )


async def _choices(conn: Conn, mahalla_id: int | None) -> dict[str, Any]:
    return {
        "mahallas": await reg.mahalla_choices(conn),
        "streets": await reg.street_choices(conn, mahalla_id) if mahalla_id else [],
        "mahalla_id": mahalla_id,
        "kinds": KINDS,
    }


@router.get("/accounts/new")
async def new_account(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    mahalla_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    """Opening an account: first the mahalla (its streets are then listed), then the
    account's fields."""
    st = get_state(request)
    values = {"kind": "household", "metered": True, "residents": "1"}
    values["opened_on"] = st.clock().astimezone(Words(request).tz).date().isoformat()
    return _page(
        request,
        "staff_register_account.html",
        who,
        mode="new",
        values=values,
        errors={},
        **await _choices(conn, mahalla_id),
    )


def _form_values(form: Any) -> dict[str, Any]:
    """The account form's fields as sent (text), ``metered`` a checkbox, ``street_id`` a
    number or None."""
    fields = [
        "kind",
        "category",
        "name",
        "house",
        "apartment",
        "inn",
        "mfo",
        "bank_account",
        "phone",
        "email",
        "residents",
        "opened_on",
        "number",
    ]
    out: dict[str, Any] = {k: str(form.get(k) or "")[:300] for k in fields}
    out["metered"] = form.get("metered") == "on"
    street = str(form.get("street_id") or "")
    out["street_id"] = int(street) if street.isdigit() and len(street) < 19 else None
    mahalla = str(form.get("mahalla_id") or "")
    out["mahalla_id"] = int(mahalla) if mahalla.isdigit() and len(mahalla) < 19 else None
    return out


@router.post("/accounts/new")
async def open_account(*, request: Request, who: Clerk, conn: Conn) -> Response:
    values = _form_values(await request.form())
    try:
        number = await svc.open_account(request, who, _account_form(**values))
    except reg.RegisterError as exc:
        return _page(
            request,
            "staff_register_account.html",
            who,
            422,
            mode="new",
            values=values,
            errors=errors_by_field(Words(request), exc.problems),
            **await _choices(conn, values["mahalla_id"]),
        )
    return RedirectResponse(f"/staff/accounts/{number}", status_code=303)


async def _edit_page(
    request: Request, who: Principal, conn: Conn, number: str, status: int = 200, **ctx: Any
) -> Response:
    account = await reg.account_form(conn, number)
    if account is None:
        raise NotFoundError(f"no account with number {number!r}")
    values = ctx.pop("values", None) or {
        **account,
        "opened_on": account["opened_on"].isoformat(),
        "inn": account["inn"] or "",
        "mfo": account["mfo"] or "",
        "bank_account": account["bank_account"] or "",
        "phone": account["phone"] or "",
        "email": account["email"] or "",
    }
    mahalla_id = values.get("mahalla_id") or account["mahalla_id"]
    ctx.setdefault("errors", {})
    ctx.setdefault("status_errors", {})
    ctx.setdefault("language_errors", {})
    rw = RequestWords(request)
    ctx.setdefault("language", await customer_requests.correspondence_language(conn, account["id"]))
    return _page(
        request,
        "staff_register_account.html",
        who,
        status,
        mode="edit",
        account=account,
        values=values,
        statuses=STATUSES,
        language_options=[(c, rw.req("language", c)) for c in customer_requests.LANGUAGES],
        **await _choices(conn, mahalla_id),
        **ctx,
    )


@router.get("/accounts/{number}/edit")
async def edit_account_page(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    mahalla_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    done: Annotated[str, Query(max_length=20)] = "",
    months: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The account's details and address, and its status (suspend, close, reopen)."""
    values = None
    if mahalla_id is not None:  # another mahalla chosen: its streets, the rest as it is
        account = await reg.account_form(conn, number)
        if account is None:
            raise NotFoundError(f"no account with number {number!r}")
        values = {**account, "mahalla_id": mahalla_id, "street_id": None}
        values["opened_on"] = account["opened_on"].isoformat()
        for k in ("inn", "mfo", "bank_account", "phone", "email"):
            values[k] = values[k] or ""
    return await _edit_page(request, who, conn, number, values=values, done=done, months=months)


@router.post("/accounts/{number}/edit")
async def edit_account(*, request: Request, who: Clerk, conn: Conn, number: str) -> Response:
    values = _form_values(await request.form())
    try:
        await svc.edit_account(request, who, number, _account_form(**values))
    except reg.RegisterError as exc:
        return await _edit_page(
            request,
            who,
            conn,
            number,
            422,
            values=values,
            errors=errors_by_field(Words(request), exc.problems),
        )
    return RedirectResponse(f"/staff/register/accounts/{number}/edit?done=saved", 303)


@router.post("/accounts/{number}/status")
async def change_status(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    status: Annotated[str, Form(max_length=20)],
    day: Annotated[str, Form(max_length=20)] = "",
    at: Annotated[str, Form(max_length=5)] = "",
    reason: Text = "",
) -> Response:
    """Suspend, close or reopen from now or from a moment entered late (the billing prorates
    by it). The months already billed from then on are named: they need a correction."""
    st = get_state(request)
    tz = svc.tz()
    when = form_moment(day, at, tz) if day.strip() else None
    problems: list[reg.Problem] = []
    if day.strip() and when is None:
        problems.append(reg.Problem("day", "required", "the date is not readable"))
    try:
        problems += await run_sync(
            st, reg.status_problems, number, status, when, reason, now=st.clock()
        )
    except reg.RegisterError as exc:
        problems += exc.problems
    if not problems:
        try:
            months = await set_account_status(
                st, who, client_ip(request), number, status, when=when or st.clock(),
                reason=reason.strip(),
            )  # fmt: skip
        except (AccountDataError, BillingError):
            problems.append(reg.Problem("status", "refused", "refused"))
        else:
            query = {"done": "status", "months": ",".join(months or [])}
            return RedirectResponse(
                f"/staff/register/accounts/{number}/edit?{urlencode(query)}", 303
            )
    return await _edit_page(
        request,
        who,
        conn,
        number,
        422,
        status_errors=errors_by_field(Words(request), problems),
        status_values={"status": status, "day": day, "at": at, "reason": reason},
    )


@router.post("/accounts/{number}/language")
async def change_language(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    language: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """The language of the customer's letters (the legal department's claim letters): Uzbek
    Latin or Cyrillic, Russian, or empty for the utility's default."""
    try:
        await request_actions.set_language(request, who, conn, number, language)
    except customer_requests.RequestRefusedError as exc:
        return await _edit_page(
            request,
            who,
            conn,
            number,
            422,
            language=language,
            language_errors=errors_of(RequestWords(request), exc.problems),
        )
    return RedirectResponse(f"/staff/register/accounts/{number}/edit?done=language", 303)


# ------------------------------------------------------------------------------- residents


@router.get("/accounts/{number}/residents")
async def residents_page(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    number: str,
    done: Annotated[str, Query(max_length=20)] = "",
    months: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    return await _residents(request, who, conn, number, done=done, months=months)


async def _residents(
    request: Request, who: Principal, conn: Conn, number: str, status: int = 200, **ctx: Any
) -> Response:
    account = await reg.account_form(conn, number)
    if account is None:
        raise NotFoundError(f"no account with number {number!r}")
    st = get_state(request)
    ctx.setdefault("errors", {})
    ctx.setdefault(
        "values",
        {"residents": str(account["residents"]),
         "since": st.clock().astimezone(Words(request).tz).date().isoformat()},
    )  # fmt: skip
    return _page(
        request,
        "staff_register_residents.html",
        who,
        status,
        account=account,
        history=await reg.residents_history(conn, account["id"]),
        **ctx,
    )


@router.post("/accounts/{number}/residents")
async def change_residents(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    residents: Annotated[str, Form(max_length=10)],
    since: Annotated[str, Form(max_length=20)] = "",
    reason: Text = "",
    document: Text = "",
) -> Response:
    """A new number of residents from a day on, with the reason and the document (the
    mahalla's certificate): the norm of an unmetered household follows it."""
    try:
        months = await svc.set_residents(
            request, who, number, residents, form_date(since), reason, document
        )
    except reg.RegisterError as exc:
        return await _residents(
            request,
            who,
            conn,
            number,
            422,
            errors=errors_by_field(Words(request), exc.problems),
            values={"residents": residents, "since": since, "reason": reason, "document": document},
        )
    query = urlencode({"done": "saved", "months": ",".join(months)})
    return RedirectResponse(f"/staff/register/accounts/{number}/residents?{query}", 303)


router.include_router(staff_register_meters.router)
router.include_router(staff_register_places.router)

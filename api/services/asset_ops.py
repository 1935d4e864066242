"""Asset operations at the office, one code path each for the JSON API and the back-office
pages, every change with its audit row in the same transaction: work orders (create,
change, close with the repair reported to its alarm, cancel, valves operated, photos), planned
outages with their notices to the subscribers (SMS, Telegram, a printed letter) in each
subscriber's language, critical-customer flags, and a valve's state.

The role sets of these actions are here until api/security.py takes them over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from alarms import actions as alarm_actions
from alarms.errors import AlarmsError, RefusedError
from api.audit import audit_sync
from api.deps import AppState
from api.errors import ConflictError, InvalidError, NotFoundError
from api.i18n import CODES, gettext_for, local_time
from api.security import Principal, Role
from api.syncdb import run_sync
from assets import isolation_queries as iq
from assets import outages as ao
from assets import work_order_store as wos
from assets.errors import AssetInvalidError, AssetNotFoundError
from assets.store import Actor, get_asset, update_asset
from assets.work_orders import (
    WorkOrderConflictError,
    WorkOrderInvalidError,
    WorkOrderNotFoundError,
    number,
)
from billing.config import BillingConfig, get_billing_config
from billing.dunning import Channel, DunningMessage, channels_from_config
from billing.errors import ChannelError, NoContactError
from billing.search import to_cyrillic

log = logging.getLogger(__name__)

WORK_ORDER_CREATE = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.DISPATCHER})
"""Open a work order: the dispatcher (from an alarm or a call) and the technical department."""
WORK_ORDER_EDIT = frozenset({Role.ADMIN, Role.TECHNICIAN})
"""Change, close or cancel a work order, record its valves and photos: the technical
department."""
OUTAGE_ANNOUNCE = frozenset({Role.ADMIN, Role.DISPATCHER, Role.TECHNICIAN})
"""Announce a planned outage (the notices go out to the subscribers it cuts off)."""
CRITICAL_EDIT = frozenset({Role.ADMIN, Role.TECHNICIAN, Role.BILLING_CLERK})
"""Flag or unflag a critical customer (customer service and the technical department)."""


def N_(msgid: str) -> str:  # noqa: N802 - the gettext marker for babel's extraction
    return msgid


# ---------------------------------------------------------------------- errors
def api_error(exc: Exception) -> Exception:
    """The API error for an error of the asset operations."""
    if isinstance(exc, WorkOrderNotFoundError | AssetNotFoundError):
        return NotFoundError(str(exc))
    if isinstance(exc, WorkOrderConflictError):
        return ConflictError(str(exc))
    if isinstance(exc, WorkOrderInvalidError):
        return InvalidError(str(exc), code=exc.code)
    if isinstance(exc, AssetInvalidError):
        return InvalidError(str(exc))
    return exc


# ---------------------------------------------------------------------- addresses
def street_name(row: Mapping[str, Any], lang: str) -> str:
    """A street in the reader's language: the register's own spelling where it has one."""
    uz = str(row.get("street_uz") or "")
    if lang == "uz_Cyrl":
        return str(row.get("street_uz_cyrl") or to_cyrillic(uz))
    if lang == "ru":
        return str(row.get("street_ru") or uz)
    return uz


def address_text(row: Mapping[str, Any], lang: str) -> str:
    """``street, house`` (``, apartment`` when there is one) in the reader's language."""
    text = f"{street_name(row, lang)}, {row.get('house') or ''}".strip(", ")
    if row.get("apartment"):
        text += f", {gettext_for(lang).gettext('apt.')} {row['apartment']}"
    return text


# ---------------------------------------------------------------------- work orders
def _actor(who: Principal, at: datetime) -> Actor:
    return Actor(who.username, "api", at)


def _audit_view(row: Mapping[str, Any]) -> dict[str, Any]:
    keep = (
        "asset",
        "kind",
        "failure",
        "status",
        "alarm_id",
        "reported_at",
        "planned_for",
        "started_at",
        "ended_at",
        "crew",
        "materials",
        "cost_tiyin",
        "water_lost_m3",
        "alarm_link",
        "version",
    )
    return {k: row.get(k) for k in keep}


def report_repair(  # noqa: PLR0917 - the signature of assets.work_order_store.AlarmReporter
    conn: Any, alarm_id: int, user: str, comment: str, at: datetime, now: datetime
) -> str:
    """Report a finished repair to the alarm that started it: a leak rule's leak is closed
    as repaired (:func:`alarms.actions.repaired`: the alarm clears, is acknowledged and its
    journal says who repaired it, with the work order in the comment). Any other alarm gets a
    note in its journal (:func:`alarms.actions.note`, where the alarms package has it).
    Returns what happened, for the work order's ``alarm_link``."""
    try:
        alarm_actions.repaired(conn, str(alarm_id), user=user, comment=comment, now=now, at=at)
    except RefusedError as exc:
        note = getattr(alarm_actions, "note", None)
        if note is None:
            return f"not reported: {exc.reason} ({exc}); the alarm journal has no notes yet"
        try:
            note(conn, str(alarm_id), user=user, comment=comment, now=now)
        except AlarmsError as exc2:
            return f"not reported: {exc2}"
        return f"noted in the alarm's journal ({exc.reason})"
    except AlarmsError as exc:
        return f"not reported: {exc}"
    return "repaired: the alarm's leak is closed"


def create_work_order(
    conn: Any, asset: str, fields: Mapping[str, Any], *, who: Principal, ip: str, at: datetime
) -> dict[str, Any]:
    wo_id = wos.create(conn, asset, fields, _actor(who, at))
    row = wos.get(conn, wo_id)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="create",
        entity="work_order",
        entity_id=number(wo_id),
        after=_audit_view(row),
    )
    return row


def change_work_order(
    conn: Any,
    wo_id: int,
    fields: Mapping[str, Any],
    *,
    version: int | None,
    who: Principal,
    ip: str,
    at: datetime,
) -> dict[str, Any]:
    row = wos.update(conn, wo_id, fields, _actor(who, at), expected_version=version)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="change",
        entity="work_order",
        entity_id=number(wo_id),
        after=_audit_view(row),
    )
    return row


def close_work_order(
    conn: Any, wo_id: int, fields: Mapping[str, Any], *, who: Principal, ip: str, at: datetime
) -> dict[str, Any]:
    row = wos.close(conn, wo_id, fields, _actor(who, at), now=at, report_alarm=report_repair)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="close",
        entity="work_order",
        entity_id=number(wo_id),
        after=_audit_view(row),
    )
    return row


def cancel_work_order(
    conn: Any, wo_id: int, reason: str, *, who: Principal, ip: str, at: datetime
) -> dict[str, Any]:
    row = wos.cancel(conn, wo_id, _actor(who, at), reason)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="cancel",
        entity="work_order",
        entity_id=number(wo_id),
        after={**_audit_view(row), "reason": reason},
    )
    return row


def operate_valve(
    conn: Any,
    wo_id: int,
    valve: str,
    action: str,
    *,
    when: datetime | None,
    note: str,
    who: Principal,
    ip: str,
    at: datetime,
) -> dict[str, Any]:
    wos.add_valve(conn, wo_id, valve, action, _actor(who, at), at=when, note=note)
    row = wos.get(conn, wo_id)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="valve",
        entity="work_order",
        entity_id=number(wo_id),
        after={"valve": valve, "action": action, "at": when or at, "note": note},
    )
    return row


def attach_photo(
    conn: Any,
    wo_id: int,
    *,
    filename: str,
    content_type: str,
    content: bytes,
    note: str,
    who: Principal,
    ip: str,
    at: datetime,
) -> int:
    doc_id = wos.attach(
        conn,
        wo_id,
        filename=filename,
        content_type=content_type,
        content=content,
        actor=_actor(who, at),
        note=note,
    )
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="attach",
        entity="work_order",
        entity_id=number(wo_id),
        after={"document": doc_id, "filename": filename, "bytes": len(content)},
    )
    return doc_id


# ---------------------------------------------------------------------- valves, flags
def set_valve_state(
    conn: Any,
    code: str,
    *,
    operable: bool | None,
    normally_closed: bool | None,
    note: str,
    who: Principal,
    ip: str,
    at: datetime,
) -> dict[str, Any]:
    """Mark a valve as operable or not (``attrs.operable``), and as kept closed in normal
    operation or not (``attrs.valve_status``): a new version of the valve, audited."""
    current = get_asset(conn, code)
    if current is None:
        raise AssetNotFoundError(code)
    if current["kind"] != "valve":
        raise AssetInvalidError(f"asset {code} is a {current['kind']}, not a valve")
    attrs = dict(current.get("attrs") or {})
    if operable is not None:
        attrs["operable"] = operable
        attrs["operable_note"] = note
    if normally_closed is not None:
        attrs["valve_status"] = "closed" if normally_closed else "open"
    after = update_asset(conn, code, {"attrs": attrs}, _actor(who, at), expected_version=None)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="valve_state",
        entity="asset",
        entity_id=code,
        after={"operable": operable, "normally_closed": normally_closed, "note": note},
    )
    return {"code": code, "attrs": after.get("attrs"), "version": after.get("version")}


def set_critical(
    conn: Any,
    account_no: str,
    kind: str | None,
    note: str,
    *,
    who: Principal,
    ip: str,
    at: datetime,
) -> dict[str, Any]:
    """Flag an account as a critical customer of ``kind`` (None: take the flag off)."""
    found = ao.set_critical(conn, account_no, kind, note, by=who.username, at=at)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="critical" if kind else "uncritical",
        entity="account",
        entity_id=account_no,
        after={"critical": kind, "note": note, "before": found},
    )
    return {"account": account_no, "critical": kind, "note": note if kind else ""}


# ---------------------------------------------------------------------- outages
SMS_TEXT = N_(
    "Water will be off on %(date)s from %(start)s to %(end)s (Tashkent time) at %(address)s. "
    "%(reason)s %(utility)s"
)
LETTER_TITLE = N_("Notice of a water outage")
LETTER_LINES = (
    N_("Dear %(name)s,"),
    N_(
        "the water supply at %(address)s will be interrupted on %(date)s from %(start)s to "
        "%(end)s (Tashkent time)."
    ),
    N_("Reason: %(reason)s"),
    N_("Please keep some water in advance. We apologise for the inconvenience."),
    N_("%(utility)s, phone %(phone)s"),
)
CRITICAL_NAMES = {
    "hospital": N_("hospital"),
    "clinic": N_("clinic"),
    "home_dialysis": N_("home dialysis"),
    "school": N_("school"),
    "kindergarten": N_("kindergarten"),
    "care_home": N_("care home"),
    "other": N_("critical customer"),
}


@dataclass(frozen=True)
class OutageRequest:
    target: iq.Target
    starts_at: datetime
    ends_at: datetime
    reason: str
    kind: str = "planned"
    work_order: int | None = None


def notice_language(row: Mapping[str, Any], cfg: BillingConfig) -> str:
    lang = row.get("language")
    return str(lang) if lang in CODES else cfg.default_language


def notice_values(
    row: Mapping[str, Any], req: OutageRequest, lang: str, cfg: BillingConfig
) -> dict[str, str]:
    return {
        "name": str(row.get("name") or ""),
        "address": address_text(row, lang),
        "date": local_time(req.starts_at, "%d.%m.%Y"),
        "start": local_time(req.starts_at, "%H:%M"),
        "end": local_time(req.ends_at, "%H:%M")
        if local_time(req.ends_at, "%d.%m.%Y") == local_time(req.starts_at, "%d.%m.%Y")
        else local_time(req.ends_at, "%d.%m.%Y %H:%M"),
        "reason": req.reason.strip(),
        "utility": cfg.utility_name,
        "phone": cfg.utility_phone or "-",
    }


def sms_text(values: Mapping[str, str], lang: str) -> str:
    tr = gettext_for(lang)
    text = tr.gettext(SMS_TEXT) % values
    return " ".join(text.split())


def letter_text(values: Mapping[str, str], lang: str) -> str:
    tr = gettext_for(lang)
    lines = [tr.gettext(LETTER_TITLE), ""]
    for msg in LETTER_LINES:
        if msg == LETTER_LINES[2] and not values.get("reason"):
            continue
        lines.append(tr.gettext(msg) % values)
    return "\n".join(lines)


def _write_outage(
    conn: Any,
    req: OutageRequest,
    ans: Mapping[str, Any],
    *,
    who: Principal,
    ip: str,
    at: datetime,
) -> int:
    outage_id = ao.save_outage(
        conn,
        kind=req.kind,
        target=dict(ans["target"]),
        valves=list(ans["close"]),
        starts_at=req.starts_at,
        ends_at=req.ends_at,
        reason=req.reason,
        work_order=req.work_order,
        accounts=ans["accounts"],
        by=who.username,
        at=at,
    )
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="announce",
        entity="outage",
        entity_id=outage_id,
        after={
            "target": ans["target"],
            "valves": ans["close"],
            "starts_at": req.starts_at,
            "ends_at": req.ends_at,
            "accounts": len(ans["accounts"]),
            "critical": ans["counts"]["critical"],
        },
    )
    return outage_id


def _message(row: Mapping[str, Any], text: str, today: date, lang: str) -> DunningMessage:
    """The billing channels' message (their one shape for a text to a customer)."""
    return DunningMessage(
        account_id=int(row["account_id"]),
        number=str(row["number"]),
        name=str(row["name"]),
        kind=str(row["kind"]),
        phone=row.get("phone"),
        telegram_chat_id=row.get("telegram_chat_id"),
        address=address_text(row, lang),
        stage="outage",
        title=gettext_for(lang).gettext(LETTER_TITLE),
        debt_tiyin=0,
        days_overdue=0,
        text=text,
        today=today,
    )


def send_notices(
    conn: Any,
    outage_id: int,
    req: OutageRequest,
    *,
    cfg: BillingConfig,
    channels: Mapping[str, Channel],
    at: datetime,
) -> dict[str, int]:
    """Tell every subscriber of the outage: SMS and Telegram where they have a number or a
    chat and the channel is configured; a printed letter when neither reached them, and
    always for a critical customer. Each attempt is one row of ``outage_notices``, written
    right after it (one transaction each), so a failure halfway loses no record."""
    counts: dict[str, int] = {}
    rows = ao.outage_accounts(conn, outage_id)
    conn.commit()  # each notice below commits on its own
    for row in rows:
        lang = notice_language(row, cfg)
        values = notice_values(row, req, lang, cfg)
        text = sms_text(values, lang)
        reached = False
        for name in ("sms", "telegram"):
            contact = row.get("phone") if name == "sms" else row.get("telegram_chat_id")
            if not contact:
                continue
            ch = channels.get(name)
            if ch is None:
                status, detail = "skipped", f"channel {name} is not configured"
            else:
                try:
                    detail = ch.send(_message(row, text, at.date(), lang))
                    status = "sent"
                    reached = True
                except NoContactError as exc:
                    status, detail = "skipped", str(exc)
                except ChannelError as exc:
                    status, detail = "failed", str(exc)
                    log.warning(
                        "outage %s: %s to %s failed: %s", outage_id, name, row["number"], exc
                    )
            with conn.transaction():
                ao.save_notice(conn, outage_id, row, name, lang, status, detail, text, at)
            counts[f"{name}_{status}"] = counts.get(f"{name}_{status}", 0) + 1
        if not reached or row.get("critical"):
            with conn.transaction():
                ao.save_notice(
                    conn,
                    outage_id,
                    row,
                    "letter",
                    lang,
                    "to_print",
                    f"/api/v1/assets/outages/{outage_id}/letters.pdf",
                    letter_text(values, lang),
                    at,
                )
            counts["letter_to_print"] = counts.get("letter_to_print", 0) + 1
    return counts


def notice_channels(cfg: BillingConfig) -> dict[str, Channel]:
    """The configured SMS and Telegram channels of billing (the letters are printed here)."""
    out = channels_from_config(cfg, Path("."))
    return {k: v for k, v in out.items() if k in ("sms", "telegram")}


async def announce_outage(
    conn: AsyncConnection[Any],
    st: AppState,
    req: OutageRequest,
    *,
    who: Principal,
    ip: str,
    cfg: BillingConfig | None = None,
) -> dict[str, Any]:
    """Compute the isolation, record the outage with the accounts it cuts off, tell them.
    Raises :class:`~assets.isolation.IsolationError` (nothing written) when the target
    cannot be isolated, and InvalidError for times that are not a planned outage."""
    at = st.clock()
    if req.ends_at <= req.starts_at:
        raise InvalidError("the outage must end after it starts", code="end_before_start")
    if req.kind == "planned" and req.starts_at < at:
        raise InvalidError("a planned outage starts in the future", code="start_in_past")
    if len(req.reason) > 500:
        raise InvalidError("the reason has at most 500 characters", code="bad_reason")
    ans = await iq.isolation_answer(conn, req.target)
    await conn.commit()  # the request's read transaction ends before the writes' thread
    outage_id = await run_sync(st, _write_outage, req, ans, who=who, ip=ip, at=at)
    config = cfg or get_billing_config()
    counts = await run_sync(
        st,
        send_notices,
        outage_id,
        req,
        cfg=config,
        channels=notice_channels(config),
        at=at,
    )
    return {
        "outage": outage_id,
        "valves": ans["close"],
        "accounts": len(ans["accounts"]),
        "critical": ans["counts"]["critical"],
        "notices": counts,
    }


def critical_name(kind: str | None, lang: str) -> str:
    if not kind:
        return ""
    return gettext_for(lang).gettext(CRITICAL_NAMES.get(kind, CRITICAL_NAMES["other"]))


def letters_pdf(rows: Sequence[Mapping[str, Any]], cfg: BillingConfig) -> bytes:
    """The outage's letters to print, one page each (ReportLab, every value escaped)."""
    return ao.render_letters([str(r["body"]) for r in rows], utility=cfg.utility_name)


# ---------------------------------------------------------------------- renewal ranking
REASONS = {
    "repairs": N_("%(n)s repairs in %(years)s years, the last on %(last)s"),
    "group_rate": N_(
        "%(material)s, %(diameter)s, %(age)s years old: %(rate)s failures per km a year"
    ),
    "old": N_("%(years)s years in the ground"),
    "condition": N_("condition grade %(grade)s"),
    "cut_off": N_("a failure cuts off %(accounts)s subscribers, %(critical)s of them critical"),
    "no_isolation": N_("no valve can isolate it"),
}
RENEWAL_COLUMNS = (
    N_("Rank"),
    N_("Pipe"),
    N_("Zone"),
    N_("Material"),
    N_("Diameter, mm"),
    N_("Install year"),
    N_("Length, m"),
    N_("Repairs"),
    N_("Expected failures a year"),
    N_("Subscribers cut off"),
    N_("Critical customers"),
    N_("Score"),
    N_("Reasons"),
)
RATE_COLUMNS = (
    N_("Material"),
    N_("Diameter"),
    N_("Age, years"),
    N_("km"),
    N_("Failures"),
    N_("Years"),
    N_("Failures per km a year"),
    N_("Observed"),
)


def _num(v: float, places: int = 2) -> str:
    return f"{v:.{places}f}".replace(".", ",")


def reason_text(reason: Mapping[str, Any], lang: str) -> str:
    """One reason of the ranking in the reader's language."""
    tr = gettext_for(lang)
    msg = REASONS.get(str(reason.get("code")))
    if msg is None:
        return str(reason.get("code"))
    values = dict(reason)
    if "rate" in values:
        values["rate"] = _num(float(values["rate"]), 3)
    if "years" in values and isinstance(values["years"], float):
        values["years"] = _num(values["years"], 1)
    if "last" in values:
        values["last"] = local_time(
            datetime.fromisoformat(str(values["last"]) + "T12:00:00+00:00"), "%d.%m.%Y"
        )
    return tr.gettext(msg) % values


def renewal_xlsx(data: Mapping[str, Any], lang: str, utility: str) -> bytes:
    """The ranking and the failure rates as a workbook (every text cell through
    :func:`suvnet.textsafe.xlsx_append`: never a formula)."""
    import io

    from openpyxl import Workbook  # type: ignore[import-untyped]

    from suvnet.textsafe import xlsx_append

    tr = gettext_for(lang)
    wb = Workbook()
    ws = wb.active
    ws.title = tr.gettext("Renewal ranking")[:31]
    xlsx_append(ws, [utility])
    xlsx_append(ws, [tr.gettext("Renewal ranking"), data.get("today")])
    xlsx_append(ws, [tr.gettext(c) for c in RENEWAL_COLUMNS])
    for p in data["pipes"]:
        xlsx_append(
            ws,
            [
                p["rank"],
                p["code"],
                p["zone"] or "",
                p["material"] or "",
                p["diameter_mm"],
                p["install_year"],
                p["length_m"],
                p["failures"],
                p["likelihood_per_year"],
                p["accounts"],
                p["critical"],
                p["score"],
                "; ".join(reason_text(r, lang) for r in p["reasons"]),
            ],
        )
    rates = wb.create_sheet(tr.gettext("Failure rates")[:31])
    xlsx_append(rates, [tr.gettext(c) for c in RATE_COLUMNS])
    for r in data["rates"]:
        xlsx_append(
            rates,
            [
                r["material"],
                r["diameter"],
                r["age"],
                r["km"],
                r["failures"],
                r["years"],
                r["rate_per_km_year"],
                r["observed_per_km_year"],
            ],
        )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ---------------------------------------------------------------------- route-map sheets
SHEET_LEGEND = {
    "legend": N_("Legend"),
    "pipe": N_("water pipe (id, diameter, material)"),
    "sewer": N_("sewer"),
    "service": N_("service connection"),
    "building_line": N_("distance to the building line"),
    "valve": N_("valve"),
    "hydrant": N_("hydrant"),
    "manhole": N_("manhole"),
    "other": N_("other fitting"),
    "sheet_index": N_("Sheet index"),
    "left_out": N_("%(n)s labels left out at this scale"),
}
SHEET_TITLES = {
    "street": N_("Water and sewer network: %(name)s"),
    "zone": N_("Water and sewer network of zone %(name)s"),
    "route": N_("Route: %(name)s"),
}


def sheet_texts(lang: str, kind: str, name: str, utility: str, today: date) -> Any:
    from assets.sheets import SheetTexts

    tr = gettext_for(lang)
    return SheetTexts(
        utility=utility,
        title=tr.gettext(SHEET_TITLES[kind]) % {"name": name},
        date=tr.gettext("Printed %(date)s") % {"date": today.strftime("%d.%m.%Y")},
        sheet=tr.gettext("Sheet %(n)s of %(of)s"),
        scale=tr.gettext("Scale 1:%(scale)s"),
        legend={k: tr.gettext(v) for k, v in SHEET_LEGEND.items()},
        north=tr.gettext("N (north)").split()[0],
        metres=tr.gettext("m"),
    )

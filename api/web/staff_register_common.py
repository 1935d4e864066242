"""What the register pages and the account card share: the words people read for the
register's codes (kinds, statuses, ledger entries, reading sources, months, refused fields,
the consumption checks), times in the billing's time zone, and the form helpers.

Every text is a catalog message (``N_`` only marks it for extraction; it is translated when
the page is rendered, in the visitor's language)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

from api.i18n import gettext_for
from api.security import Principal
from api.services.register import RATES_EDIT, REGISTER_EDIT
from api.web.common import language
from billing.config import get_billing_config
from billing.register import Problem


def N_(text: str) -> str:  # noqa: N802 - the gettext marker's usual name
    """Marks a text for the catalogs; translated later."""
    return text


LABELS: dict[str, dict[str, str]] = {
    "kind": {
        "household": N_("Household"),
        "legal": N_("Legal entity"),
        "budget": N_("Budget organisation"),
    },
    "status": {
        "active": N_("Active"),
        "suspended": N_("Suspended"),
        "closed": N_("Closed"),
    },
    "entry": {
        "charge": N_("Charge"),
        "payment": N_("Payment"),
        "adjustment": N_("Adjustment"),
        "reversal": N_("Reversal"),
        "penalty": N_("Late payment penalty"),
        "opening_balance": N_("Opening balance"),
    },
    "channel": {
        "billing": N_("Billing run"),
        "cashier": N_("Cashier desk"),
        "bank": N_("Bank"),
        "payme": "Payme",
        "click": "Click",
        "import": N_("Legacy import"),
        "manual": N_("Entered by hand"),
    },
    "reading": {
        "telemetry": N_("Telemetry"),
        "manual": N_("Entered by hand"),
        "inspector": N_("Inspector"),
        "customer": N_("The customer"),
    },
    "invoice": {"regular": N_("Monthly"), "correction": N_("Correction")},
    "street": {
        "street": N_("Street"),
        "avenue": N_("Avenue"),
        "lane": N_("Lane"),
        "dead_end": N_("Dead end"),
        "passage": N_("Passage"),
        "square": N_("Square"),
    },
    "levels": {
        "region": N_("Regions"),
        "district": N_("Districts"),
        "mahalla": N_("Mahallas"),
        "street": N_("Streets"),
        "house": N_("Houses"),
        "apartment": N_("Apartments"),
    },
    "level": {
        "region": N_("Region"),
        "district": N_("District"),
        "mahalla": N_("Mahalla (MFY)"),
        "street": N_("Street"),
        "house": N_("House"),
        "apartment": N_("Apartment"),
    },
}
"""The words for the register's codes, by group."""

MONTHS = (
    N_("January"),
    N_("February"),
    N_("March"),
    N_("April"),
    N_("May"),
    N_("June"),
    N_("July"),
    N_("August"),
    N_("September"),
    N_("October"),
    N_("November"),
    N_("December"),
)

PROBLEMS: dict[str, str] = {
    "required": N_("Fill this in."),
    "kind": N_("Choose household, legal entity or budget organisation."),
    "too_long": N_("This is too long."),
    "house": N_("A house or apartment number is digits and letters, for example 12a or 12/3."),
    "inn": N_("The INN is 9 digits."),
    "inn_required": N_("A legal entity or budget organisation needs its INN."),
    "mfo": N_("The MFO (bank code) is 5 digits."),
    "bank_account": N_("The bank account is 20 digits."),
    "phone": N_("A phone number is 9 to 15 digits, for example +998 90 123 45 67."),
    "email": N_("This is not an e-mail address."),
    "whole_number": N_("Enter a whole number."),
    "residents": N_("The number of residents is 0 to 200."),
    "future": N_("This date is in the future."),
    "account_number": N_("Wrong account number: 9 digits with the right check digit."),
    "taken": N_("This is already used."),
    "unknown": N_("Not found: reload the page and try again."),
    "in_use": N_("It is still used, so nothing was deleted: first remove what is below it."),
    "refused": N_("The database refused this value."),
    "before_opening": N_("This is before the account was opened."),
    "cadastral": N_("A cadastral number looks like 10:08:01:01:03:0042."),
    "coordinate": N_("Latitude is -90 to 90 and longitude -180 to 180."),
    "soato_region": N_("A region's SOATO code is 4 digits starting with 17."),
    "soato_district": N_("A district's SOATO code is 7 digits starting with 17."),
    "soato_parent": N_("A district's SOATO code starts with its region's code %(code)s."),
    "mfy_code": N_("A mahalla's code is digits only."),
    "not_installed": N_("This meter was not installed on this account at that time."),
    "serial": N_("A serial number is letters, digits and - / . (at most 32)."),
    "seal": N_("A seal number is letters, digits and - / (at most 32)."),
    "digits": N_("The register has 3 to 9 digits of whole cubic metres."),
    "reading": N_("A reading is cubic metres with at most 3 decimals, for example 1234,567."),
    "negative": N_("A register reading cannot be negative."),
    "closed": N_("The account is closed."),
    "installed_elsewhere": N_("This meter is still installed on another account."),
    "before_install": N_("This is not after the meter was installed."),
    "below_last": N_(
        "Lower than the last reading, %(value)s m³ on %(date)s: a register does not run back."
    ),
    "same_meter": N_("The new meter has the old meter's serial number."),
    "seal_later": N_("The meter has a seal put on later than this."),
    "confirm": N_("The checks found something: look at it, then tick the box to save anyway."),
    "billed": N_("%(months)s already billed: a new tariff or norm must start after them."),
    "money": N_("Enter a price in so'm, for example 1650 or 1650,50."),
    "percent": N_("VAT is 0 to 100 per cent."),
    "norm": N_("A norm is more than 0 and at most 50 m³ a person a month."),
    "same_status": N_("The account has this status already."),
    "before_last_status": N_(
        "The status last changed on %(date)s: a change cannot take effect before that."
    ),
}
"""The words for each problem code of :mod:`billing.register`."""
REFUSED = N_("This value was refused.")
"""The words for a problem code that has none of its own."""

FLAGS: dict[str, str] = {
    "negative": N_(
        "Lower than the reading before (%(before)s m³ on %(day)s): a register does not run "
        "back. A mistyped reading or a reset meter?"
    ),
    "spike": N_(
        "%(rate)s m³ an hour on average since the reading before, more than %(max)s: "
        "a mistyped reading?"
    ),
    "rollover": N_("The register went past its highest number and started again from 0."),
    "reverse": N_("A little lower than the reading before: water ran back (counted as net)."),
    "long_zero": N_("No consumption for %(days)s days or more: has the meter stopped?"),
    "gap": N_(
        "More than %(hours)s hours since the reading before: the consumption between is "
        "spread over that time."
    ),
    "out_negative": N_(
        "Higher than the reading after it (%(after)s m³ on %(day)s): one of the two is wrong."
    ),
    "out_spike": N_("The step to the reading after it would be a spike."),
    "out_rollover": N_("The step to the reading after it would be a rollover of the register."),
    "out_long_zero": N_("No consumption until the reading after it."),
}
"""The words for the consumption checks of a reading (:data:`billing.register.READING_FLAGS`);
``out_`` for the step from the new reading to the one after it."""


class Words:
    """The page's translations: ``w.label("kind", "legal")``, ``w.month(date)``,
    ``w.problem(p)``, ``w.local(ts)``; passed to the templates as ``w``."""

    def __init__(self, request: Request) -> None:
        self.tr = gettext_for(language(request))
        self.tz = ZoneInfo(get_billing_config().timezone)

    def __call__(self, text: str) -> str:
        return self.tr.gettext(text)

    def label(self, group: str, value: str | None) -> str:
        """The word for a code (the code itself when it has none)."""
        if value is None:
            return ""
        text = LABELS.get(group, {}).get(value)
        return value if text is None else self.tr.gettext(text)

    def month(self, period: date | None) -> str:
        """``Noyabr 2026`` / ``Ноябрь 2026`` / ``November 2026``."""
        if period is None:
            return ""
        return f"{self.tr.gettext(MONTHS[period.month - 1])} {period.year}"

    def problem(self, p: Problem) -> str:
        text = self.tr.gettext(PROBLEMS.get(p.code, REFUSED))
        return text % {k: self.value(v) for k, v in p.params.items()} if p.params else text

    def value(self, v: str) -> str:
        """A problem's parameter for people: an ISO time as a local date and time, a
        decimal number in the pages' format (20,000)."""
        if "." in v and v.replace(".", "", 1).isdigit():
            return self.m3(float(v), len(v.split(".")[1]))
        try:
            when = datetime.fromisoformat(v)
        except ValueError:
            return v
        if when.tzinfo is None:
            return when.strftime("%d.%m.%Y")
        return self.local(when)

    def local(self, ts: datetime | None) -> str:
        """A moment as the office reads it: ``30.11.2026 14:05`` in the billing's zone."""
        return "" if ts is None else ts.astimezone(self.tz).strftime("%d.%m.%Y %H:%M")

    def local_day(self, ts: datetime | None) -> str:
        return "" if ts is None else ts.astimezone(self.tz).strftime("%d.%m.%Y")

    def m3(self, v: float | None, places: int = 3) -> str:
        """``1 234,567``: the pages' number format."""
        if v is None:
            return ""
        return f"{v:,.{places}f}".replace(",", "\u202f").replace(".", ",")

    def flag(self, name: str, **params: Any) -> str:
        return self.tr.gettext(FLAGS[name]) % params if params else self.tr.gettext(FLAGS[name])

    @property
    def zone(self) -> str:
        """The time zone's note under a table of times."""
        return self.tr.gettext("Times are Tashkent time (UTC+5).")


MOMENTS = frozenset({"installed_at", "sealed_at", "removed_at", "at", "ts"})
"""The problems of a moment are shown at the form's date field (``day``)."""


def errors_by_field(w: Words, problems: list[Problem]) -> dict[str, str]:
    """Each field's translated problems, joined (what the form shows next to it; the
    problems of a moment at its date field). The form's summary lists them all, also those
    of a field the form does not show."""
    out: dict[str, list[str]] = {}
    for p in problems:
        text = w.problem(p)
        fld = "day" if p.field in MOMENTS else p.field
        if text not in out.get(fld, []):
            out.setdefault(fld, []).append(text)
    return {k: " ".join(v) for k, v in out.items()}


def can(who: Principal) -> dict[str, bool]:
    """Which register actions the caller's role has (a link or form is shown only then)."""
    return {"edit": who.role in REGISTER_EDIT, "rates": who.role in RATES_EDIT}


def form_date(text: str) -> date | None:
    """A date of a form (``YYYY-MM-DD`` from a date field, or ``DD.MM.YYYY`` typed)."""
    t = text.strip()
    for parse in (date.fromisoformat, _dotted):
        try:
            return parse(t)
        except ValueError:
            continue
    return None


def _dotted(t: str) -> date:
    return datetime.strptime(t, "%d.%m.%Y").date()  # noqa: DTZ007 - a date, no time


def form_moment(day: str, at: str, tz: str) -> datetime | None:
    """A local date and an optional time (HH:MM) of a form as an aware moment; None when
    the date is missing or unreadable."""
    d = form_date(day)
    if d is None:
        return None
    hh, _, mm = (at.strip() or "00:00").partition(":")
    try:
        return datetime(d.year, d.month, d.day, int(hh), int(mm or 0), tzinfo=ZoneInfo(tz))
    except ValueError:
        return None

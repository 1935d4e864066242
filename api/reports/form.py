"""What makes a report a fixed form (pure): the utility's name and requisites, the period and
filters, the print date in the utility's time zone with the zone named, page numbers, and the
"prepared by / checked by / approved" lines. Every word comes from the catalogs
(:mod:`api.reports.text`); the renderers lay these pieces out in PDF, XLSX and CSV."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from api.i18n import format_som
from api.reports.config import Signatures
from api.reports.model import Note, Report
from api.reports.text import Msg, Words, pgettext

BLANK = "____________________"
"""Where a name or a requisite is not set: a line to write on."""

PAGE_OF = pgettext("report", "Page %(page)s of %(pages)s")
PRINTED = pgettext("report", "Printed %(when)s (%(zone)s time, UTC%(offset)s)")
PERIOD = pgettext("report", "Period: %(start)s - %(end)s")
ALL = pgettext("report", "all")
SOM = pgettext("report", "so'm")
MONEY_HEADER = pgettext("report", "%(label)s, so'm")


@dataclass(frozen=True)
class Requisites:
    """The utility as the invoices name it (billing's settings)."""

    name: str
    inn: str = ""
    bank_account: str = ""
    mfo: str = ""
    address: str = ""
    phone: str = ""

    @classmethod
    def of(cls, cfg: Any) -> Requisites:
        """From a :class:`billing.config.BillingConfig`."""
        return cls(
            cfg.utility_name,
            cfg.utility_inn,
            cfg.utility_bank_account,
            cfg.utility_mfo,
            cfg.utility_address,
            cfg.utility_phone,
        )


REQUISITES: tuple[tuple[str, Msg], ...] = (
    ("inn", pgettext("report", "INN (STIR)")),
    ("bank_account", pgettext("report", "Bank account")),
    ("mfo", pgettext("report", "MFO")),
    ("address", pgettext("report", "Address")),
    ("phone", pgettext("report", "Phone")),
)

SIGN_LINES: tuple[tuple[str, Msg], ...] = (
    ("prepared_by", pgettext("report", "Prepared by")),
    ("checked_by", pgettext("report", "Checked by")),
    ("approved_by", pgettext("report", "Approved")),
)


@dataclass(frozen=True)
class FormContext:
    """Everything a form needs besides its report: the language, the utility, the people
    who sign, and when it is printed (an aware time, shown in ``tz``)."""

    words: Words
    utility: Requisites
    signatures: Signatures
    printed_at: datetime
    tz: ZoneInfo

    @property
    def lang(self) -> str:
        return self.words.lang

    def requisites(self) -> list[str]:
        """One "label: value" a requisite; a blank line where one is not set."""
        u = self.utility
        return [f"{self.words(label)}: {getattr(u, key) or BLANK}" for key, label in REQUISITES]

    def printed(self) -> str:
        local = self.printed_at.astimezone(self.tz)
        offset = local.strftime("%z")  # +0500
        return self.words(
            PRINTED,
            when=local.strftime("%d.%m.%Y %H:%M"),
            zone=self.tz.key,
            offset=f"{offset[:3]}:{offset[3:]}",
        )

    def page(self, page: int | str, pages: int | str) -> str:
        return self.words(PAGE_OF, page=page, pages=pages)

    def period(self, report: Report) -> str:
        if report.date_from is None or report.date_to is None:
            return ""
        return self.words(PERIOD, start=day(report.date_from), end=day(report.date_to))

    def filters(self, report: Report) -> list[str]:
        return [
            f"{self.words(label)}: {value or self.words(ALL)}" for label, value in report.filters
        ]

    def note(self, note: Note) -> str:
        args = {k: format_som(int(v)) if k in note.money else v for k, v in note.args.items()}
        return self.words(note.msg, **args)

    def sign_lines(self) -> list[tuple[str, str]]:
        """(label, name or a blank line) for prepared by, checked by, approved."""
        return [
            (self.words(label), getattr(self.signatures, key) or "") for key, label in SIGN_LINES
        ]

    def heading(self, report: Report) -> list[str]:
        """The lines above the tables, after the utility's name and requisites: the title,
        the period, the filters and the print date."""
        lines = [self.words(report.title)]
        if p := self.period(report):
            lines.append(p)
        lines += self.filters(report)
        lines.append(self.printed())
        return lines


def day(value: date | datetime) -> str:
    return value.strftime("%d.%m.%Y")

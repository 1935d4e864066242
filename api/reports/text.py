"""The words of the department report forms, in the reader's language.

Every word on a form is a message of the catalogs in ``api/locale`` (the same files as the
pages), under the message context ``report``, so a report's "Paid" never clashes with a
page's. A builder names a message with :func:`pgettext` (``pgettext("report", "Paid")``);
nothing is translated then. The renderer translates it with :class:`Words` when it writes
the form in the language asked for. ``pybabel extract -F api/babel.cfg`` finds these calls
with its default keywords, and ``tests/test_i18n_complete.py`` checks that every catalog has
each of them.

Codes stored in the database (a customer category, a payment channel, a consumption flag, an
alarm priority...) are shown through the tables below: a code with no entry is shown as it
is, and the pseudo-locale test (``tests/test_i18n_complete.py``) finds it.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from api.i18n import gettext_for

CONTEXT = "report"


@dataclass(frozen=True)
class Msg:
    """A message id of the catalogs, translated when the form is rendered."""

    id: str
    ctx: str = CONTEXT


def pgettext(context: str, message: str) -> Msg:
    """Names ``message`` (in ``context``) for translation at render time (babel extracts
    the call with its default keywords)."""
    return Msg(message, context)


class Words:
    """The catalog of one language, as the renderers use it."""

    def __init__(self, lang: str, tr: gettext.NullTranslations | None = None) -> None:
        self.lang = lang
        self.tr = tr if tr is not None else gettext_for(lang)

    def __call__(self, msg: Msg, **args: Any) -> str:
        text = self.tr.pgettext(msg.ctx, msg.id)
        return text % args if args else text

    def code(self, table: Mapping[str, Msg] | None, value: Any) -> str:
        """A stored code for people: its message, or the code itself when it has none."""
        if value is None:
            return ""
        if isinstance(value, list | tuple):
            return ", ".join(self.code(table, v) for v in value)
        msg = table.get(str(value)) if table else None
        return self(msg) if msg else str(value)


def codes(pairs: Iterable[tuple[str, Msg]]) -> dict[str, Msg]:
    return dict(pairs)


CATEGORY = codes(
    [
        ("household", pgettext("report", "household")),
        ("legal", pgettext("report", "legal entity")),
        ("budget", pgettext("report", "budget organisation")),
    ]
)
"""Customer categories and kinds of account (``accounts.kind``, ``accounts.category``)."""

STATUS = codes(
    [
        ("active", pgettext("report", "active")),
        ("suspended", pgettext("report", "suspended")),
        ("closed", pgettext("report", "closed")),
    ]
)
"""Account states."""

CHANNEL = codes(
    [
        ("cashier", pgettext("report", "cash desk")),
        ("bank", pgettext("report", "bank transfer")),
        ("payme", pgettext("report", "Payme")),
        ("click", pgettext("report", "Click")),
        ("import", pgettext("report", "carried over from the old system")),
        ("manual", pgettext("report", "entered by hand")),
        ("billing", pgettext("report", "billing")),
        ("other", pgettext("report", "other channels")),
    ]
)
"""Where a payment came from (``ledger.source``)."""

FLAG = codes(
    [
        ("rollover", pgettext("report", "register rollover")),
        ("negative delta", pgettext("report", "register went back")),
        ("spike", pgettext("report", "implausible spike")),
        ("long zero", pgettext("report", "meter stopped")),
        ("reverse flow", pgettext("report", "reverse flow")),
        ("gap interpolated", pgettext("report", "gap filled by estimate")),
        ("estimated end", pgettext("report", "end reading estimated")),
        ("estimated start", pgettext("report", "start reading estimated")),
        ("prolonged estimation", pgettext("report", "estimated for too long")),
        ("no data", pgettext("report", "no readings")),
    ]
)
"""Consumption flags (``billing.consumption.FLAG_NAMES``)."""

PRIORITY = codes(
    [
        ("low", pgettext("report", "low")),
        ("medium", pgettext("report", "medium")),
        ("high", pgettext("report", "high")),
        ("urgent", pgettext("report", "urgent")),
    ]
)
"""Alarm priorities."""

ALARM_KIND = codes(
    [
        ("high", pgettext("report", "value high")),
        ("low", pgettext("report", "value low")),
        ("high_high", pgettext("report", "value very high")),
        ("low_low", pgettext("report", "value very low")),
        ("rate_of_change", pgettext("report", "changes too fast")),
        ("flatline", pgettext("report", "signal frozen")),
        ("offline", pgettext("report", "device offline")),
        ("meter_flags", pgettext("report", "meter readings suspect")),
        ("service_min", pgettext("report", "pressure below service level")),
        ("mnf", pgettext("report", "night flow high")),
        ("water_balance", pgettext("report", "water balance losses")),
        ("burst", pgettext("report", "pipe burst")),
        ("customer_leak", pgettext("report", "leak at a customer")),
        ("flood", pgettext("report", "alarm flood")),
    ]
)
"""Alarm rule kinds (``alarm_rules.kind``)."""

REQUEST_KIND = codes(
    [
        ("bill_dispute", pgettext("report", "disputed bill")),
        ("meter", pgettext("report", "meter")),
        ("no_water", pgettext("report", "no water")),
        ("quality", pgettext("report", "water quality")),
        ("leak", pgettext("report", "leak")),
        ("connection", pgettext("report", "connection")),
        ("question", pgettext("report", "question")),
        ("other", pgettext("report", "other")),
    ]
)
"""Kinds of customer request (``customer_requests.kind``)."""

REQUEST_STATUS = codes(
    [
        ("open", pgettext("report", "open")),
        ("in_progress", pgettext("report", "in progress")),
        ("resolved", pgettext("report", "resolved")),
        ("rejected", pgettext("report", "rejected")),
    ]
)
"""States of a customer request."""

REQUEST_CHANNEL = codes(
    [
        ("office", pgettext("report", "at the office")),
        ("phone", pgettext("report", "by phone")),
        ("cabinet", pgettext("report", "customer cabinet")),
        ("letter", pgettext("report", "letter")),
        ("telegram", pgettext("report", "Telegram")),
        ("other", pgettext("report", "other")),
    ]
)
"""How a customer request came in."""

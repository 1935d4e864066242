"""The payment pages' messages in the visitor's language.

The payments package explains a refusal in English for the log and the JSON API (``no open
account '000000019'``, ``the parts (35000000 tiyin) exceed what is open on the line
(30000000 tiyin)``). The desk and statement pages show the same refusal from the catalogs:
each known message is recognised here by its pattern, and its figures are shown as people
read them (money in so'm, :func:`api.i18n.format_som`). A message not known here is shown
as a translated general sentence with the English detail after it, so nothing is hidden.

``tests/payments/test_messages.py`` produces every refusal of the desk, the void and the
statements through the real functions and checks that each one is recognised.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable
from dataclasses import dataclass

from api.i18n import format_som
from billing.payments.errors import StatementUnbalancedError

Tr = gettext.GNUTranslations


def _som(tiyin: str) -> str:
    return format_som(int(tiyin))


def _som_text(text: str) -> str:
    """An amount as the person typed it (quoted by the refusal), unquoted."""
    return text.strip("'\"")


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    msgid: str
    """The catalog sentence, with ``%(name)s`` for the regex's named groups."""
    convert: dict[str, Callable[[str], str]]


def _p(regex: str, msgid: str, **convert: Callable[[str], str]) -> Pattern:
    return Pattern(re.compile(regex), msgid, convert)


def N_(msgid: str) -> str:  # noqa: N802 - the gettext marker for babel's extraction
    """Marks a catalog message that is translated later (``tr.gettext(msgid)``)."""
    return msgid


PATTERNS: tuple[Pattern, ...] = (
    # money typed into a form (billing.payments.money.som_to_tiyin)
    _p(
        r"^not an amount in so'm: (?P<text>.*)$",
        N_("%(text)s is not an amount in so'm."),
        text=_som_text,
    ),
    _p(
        r"^amount (?P<text>.*) has more than 2 decimals \(tiyin\)$",
        N_("The amount %(text)s has more than 2 decimals: so'm have 100 tiyin."),
        text=_som_text,
    ),
    _p(
        r"^amount (?P<text>.*) is negative$", N_("The amount %(text)s is negative."), text=_som_text
    ),
    _p(r"^amount (?P<text>.*) is zero$", N_("The amount is zero.")),
    _p(
        r"^amount (?P<text>.*) is out of range$",
        N_("The amount %(text)s is too large."),
        text=_som_text,
    ),
    # the cashier desk (billing.payments.cashier)
    _p(
        r"^no account '(?P<number>[^']*)' \(check the number\)$",
        N_("There is no account %(number)s: check the number."),
    ),
    _p(r"^account (?P<number>\d+) is closed$", N_("Account %(number)s is closed.")),
    _p(r"^amount must be positive and sane", N_("The amount must be more than zero.")),
    _p(r"^payment method must be cash or card", N_("Choose cash or card.")),
    _p(
        r"^this form was already used for receipt (?P<receipt>\S+) \((?P<number>\d+), "
        r"(?P<amount>[^)]*)\)",
        N_(
            "This form was already used for receipt %(receipt)s (account %(number)s, "
            "%(amount)s so'm). Open a new form to take another payment."
        ),
    ),
    _p(r"^give a reason for the void$", N_("Give the reason for the void.")),
    _p(r"^no cashier receipt '(?P<receipt>[^']*)'$", N_("There is no receipt %(receipt)s.")),
    _p(
        r"^receipt (?P<receipt>\S+) was already voided$",
        N_("Receipt %(receipt)s was already voided."),
    ),
    _p(
        r"^receipt (?P<receipt>\S+) was taken by (?P<cashier>\S+); only they",
        N_(
            "Receipt %(receipt)s was taken by %(cashier)s: only they, an accountant or an "
            "administrator may void it."
        ),
    ),
    _p(
        r"^receipt (?P<receipt>\S+) is from (?P<day>[\d-]+); a cashier may void only today's",
        N_(
            "Receipt %(receipt)s is from %(day)s: a cashier may void only today's payments "
            "(ask an accountant)."
        ),
    ),
    _p(r"^the ledger refused the payment", N_("The ledger refused the payment.")),
    # allocating a bank credit by hand (billing.payments.importer.allocate_manual)
    _p(r"^no statement line (?P<line>\d+)$", N_("There is no statement line %(line)s.")),
    _p(
        r"^statement line (?P<line>\d+) is a debit",
        N_("Statement line %(line)s is a payment by the utility, not to it."),
    ),
    _p(r"^name at least one account and amount$", N_("Give an account number and an amount.")),
    _p(
        r"^amount for (?P<number>\S+) must be positive tiyin",
        N_("The amount for %(number)s must be more than zero."),
    ),
    _p(r"^no open account '(?P<number>[^']*)'$", N_("There is no open account %(number)s.")),
    _p(
        r"^the parts \((?P<parts>\d+) tiyin\) exceed what is open on the line "
        r"\((?P<open>\d+) tiyin\)$",
        N_(
            "%(parts)s so'm is more than what is still open on this line (%(open)s so'm): "
            "nothing was allocated."
        ),
        parts=_som,
        open=_som,
    ),
    _p(
        r"^line (?P<line>\d+) was already allocated to (?P<number>\d+)$",
        N_("Line %(line)s was already allocated to account %(number)s."),
    ),
    # the notes the statement import leaves on a line (billing.payments.importer)
    _p(
        r"^(?P<number>\d+) in the purpose has a wrong check digit; ignored$",
        N_("%(number)s in the purpose has a wrong check digit (mistyped?); not used."),
    ),
    _p(
        r"^(?P<number>\d+) in the purpose is not an open account$",
        N_("%(number)s in the purpose is not an open account."),
    ),
    _p(
        r"^the purpose names (?P<amount>\d+) tiyin, more than was paid$",
        N_("The purpose names %(amount)s so'm, more than was paid."),
        amount=_som,
    ),
    _p(
        r"^the parts named in the purpose cover (?P<parts>\d+) of (?P<amount>\d+) tiyin; "
        r"the rest is in suspense$",
        N_("The purpose names parts for %(parts)s of %(amount)s so'm; the rest is in suspense."),
        parts=_som,
        amount=_som,
    ),
    _p(
        r"^the parts named in the purpose \((?P<parts>\d+) tiyin\) exceed the credit$",
        N_("The parts named in the purpose (%(parts)s so'm) are more than was paid."),
        parts=_som,
    ),
    _p(
        r"^several account numbers without amounts; split it by hand$",
        N_("Several account numbers without amounts: split the payment by hand."),
    ),
    _p(
        r"^the payer has (?P<n>\d+) accounts; split it by hand$",
        N_("The payer has %(n)s accounts: choose the account or split the payment by hand."),
    ),
    _p(
        r"^the same bank document as (?P<doc>.*); not posted again$",
        N_("The same bank document as %(doc)s; not posted again."),
    ),
)


def _match(text: str, tr: Tr) -> str | None:
    for p in PATTERNS:
        m = p.regex.search(text)
        if m is None:
            continue
        values = {k: p.convert.get(k, str)(v) for k, v in m.groupdict().items() if v is not None}
        return tr.gettext(p.msgid) % values
    return None


def known(text: str) -> bool:
    """Whether a refusal or note of the payments package is translated here."""
    return any(p.regex.search(text) for p in PATTERNS)


def explain(exc: BaseException | str, tr: Tr) -> str:
    """A refusal of the payments package in the visitor's language (see the module doc)."""
    if isinstance(exc, StatementUnbalancedError):
        return tr.gettext(
            "The statement does not balance: opening balance + credits - debits differs from "
            "the closing balance by %(diff)s so'm. The file is incomplete or was edited; "
            "nothing was imported."
        ) % {"diff": format_som(exc.difference_tiyin)}
    text = str(exc)
    found = _match(text, tr)
    if found is not None:
        return found
    return tr.gettext("The request was refused.") + f" ({text})"


def note(text: str, tr: Tr) -> str:
    """A statement line's note (several notes are joined by "; ") in the visitor's
    language."""
    if not text:
        return ""
    out = []
    for part in _split_notes(text):
        found = _match(part, tr)
        out.append(found if found is not None else part)
    return " ".join(out)


def _split_notes(text: str) -> list[str]:
    """The notes of a line: the importer joins them with "; ", and some notes have "; "
    inside them (": ignored", "; the rest is in suspense", "; split it by hand")."""
    parts: list[str] = []
    for piece in text.split("; "):
        if parts and not _starts_note(piece):
            parts[-1] += "; " + piece
        else:
            parts.append(piece)
    return parts


def _starts_note(piece: str) -> bool:
    return bool(
        re.match(r"^(\d{9} in the purpose|the purpose|the parts|several|the payer|the same)", piece)
    )


STATUS = {
    "matched": N_("allocated in full"),
    "partial": N_("partly allocated"),
    "review": N_("to review"),
    "suspense": N_("in suspense"),
    "duplicate": N_("already imported"),
}
"""A statement line's status as the pages name it."""


def status(code: str, tr: Tr) -> str:
    msgid = STATUS.get(code)
    return tr.gettext(msgid) if msgid else code

"""The payment pages' refusals and notes in every language (api.web.payment_messages): each
refusal the desk, the void and the statements can show is recognised and translated, with
money in so'm; every sentence is in the four catalogs; a review tie is never pre-selected."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from api.i18n import LANGUAGES, gettext_for, po_path
from api.web import payment_messages as pm
from billing.payments.errors import PaymentsError, StatementUnbalancedError
from billing.payments.matching import preselect
from billing.payments.money import som_to_tiyin

# the refusals as the payments package words them (billing/payments/cashier.py,
# importer.py, money.py); the money ones are produced by the real function below
REFUSALS = [
    "no account '999999999' (check the number)",
    "account 000000018 is closed",
    "amount must be positive and sane, got 0 tiyin",
    "payment method must be cash or card, got 'cheque'",
    (
        "this form was already used for receipt K-2026-0000007 (000000018, 150\u202f000,00); "
        "reload the page to take another payment"
    ),
    "give a reason for the void",
    "no cashier receipt 'K-2026-9999999'",
    "receipt K-2026-0000001 was already voided",
    (
        "receipt K-2026-0000001 was taken by kassir1; only they, an accountant or an "
        "administrator may void it"
    ),
    (
        "receipt K-2026-0000001 is from 2026-11-19; a cashier may void only today's payments "
        "(ask an accountant)"
    ),
    "the ledger refused the payment: no such account",
    "no statement line 12",
    "statement line 12 is a debit, not a customer payment",
    "name at least one account and amount",
    "amount for 000000018 must be positive tiyin, got 0",
    "no open account '000000019'",
    "the parts (35000000 tiyin) exceed what is open on the line (30000000 tiyin)",
    "line 12 was already allocated to 000000018",
]
NOTES = [
    "000000027 in the purpose has a wrong check digit; ignored",
    "000000034 in the purpose is not an open account",
    "the purpose names 20000000 tiyin, more than was paid",
    "the parts named in the purpose cover 10000000 of 12000000 tiyin; the rest is in suspense",
    "the parts named in the purpose (40000000 tiyin) exceed the credit",
    "several account numbers without amounts; split it by hand",
    "the payer has 2 accounts; split it by hand",
    "the same bank document as line 3 of statement csv:1; not posted again",
]


def money_refusals() -> list[str]:
    out = []
    for text in ("abc", "1.005", "-5", "0", "1" + "0" * 20):
        with pytest.raises(PaymentsError) as caught:
            som_to_tiyin(text)
        out.append(str(caught.value))
    return out


@pytest.mark.parametrize("code", ["uz", "uz_Cyrl", "ru"])
def test_every_refusal_and_note_is_translated(code: str) -> None:
    tr = gettext_for(code)
    for text in [*money_refusals(), *REFUSALS]:
        assert pm.known(text), text
        shown = pm.explain(PaymentsError(text), tr)
        assert shown and text not in shown, (code, text, shown)
        assert not re.search(r"\d{4,} tiyin", shown), (code, text, shown)  # money in so'm
    joined = "; ".join(NOTES)
    shown = pm.note(joined, tr)
    assert not re.search(r"\d{4,} tiyin", shown) and "split it by hand" not in shown, shown
    for text in NOTES:
        assert pm.known(text), text


def test_money_in_refusals_is_in_som() -> None:
    ru = gettext_for("ru")
    over = pm.explain(PaymentsError(REFUSALS[-2]), ru)
    assert over == (
        "350\u202f000,00 сум больше, чем осталось по строке (300\u202f000,00 сум): "
        "ничего не разнесено."
    )
    unbalanced = pm.explain(StatementUnbalancedError("...", 1000), ru)
    assert "10,00 сум" in unbalanced
    # an unknown refusal is not hidden: a translated sentence and the detail
    assert pm.explain("something new", ru) == "Запрос отклонён. (something new)"


def test_every_sentence_is_in_the_four_catalogs() -> None:
    ids = {p.msgid for p in pm.PATTERNS} | set(pm.STATUS.values())
    ids.add("The request was refused.")
    for lang in LANGUAGES:
        with po_path(lang.code).open("rb") as f:
            catalog = read_po(f, locale=lang.code)
        missing = sorted(m for m in ids if m not in catalog or not catalog[m].string)
        assert missing == [], (lang.code, missing)


def test_a_tie_is_never_preselected() -> None:
    assert preselect([]) is None
    assert preselect([("000000018", 0.9)]) == "000000018"
    assert preselect([("000000018", 0.9), ("000000026", 0.9)]) is None
    assert preselect([("000000026", 0.7), ("000000018", 0.9), ("000000034", 0.9)]) is None
    assert preselect([("000000026", 0.7), ("000000018", 0.91)]) == "000000018"

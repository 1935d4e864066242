"""Pure helpers of the statement match cascade: account numbers (with amounts) found in a
payment purpose, and name similarity for the review suggestions."""

from __future__ import annotations

import heapq
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from billing.accountno import clean, is_valid
from billing.payments.errors import PaymentsError
from billing.payments.money import som_to_tiyin


@dataclass(frozen=True)
class NumberHit:
    number: str
    valid: bool  # the check digit is right
    amount_tiyin: int | None  # "000000018 - 150000.00" names the part for this account


# 9 digits, possibly typed as 3+3+3 with spaces or dashes; not part of a longer number
_NUMBER = re.compile(r"(?<![\d])(\d{3}[ -]?\d{3}[ -]?\d{3})(?![\d])")
# an amount right after a number, after '-', ':', '=' or the word summa/сумма
_AMOUNT = re.compile(
    r"\A\s*(?:[-–:=]|summa|сумма)\s*(\d{1,3}(?:[ \u00a0]\d{3})+|\d+)(?:[.,](\d{1,2}))?",
    re.IGNORECASE,
)
_NOT_ACCOUNT = re.compile(r"(?:INN|ИНН|STIR|СТИР|MFO|МФО)\W{0,3}\Z", re.IGNORECASE)


def find_numbers(purpose: str) -> list[NumberHit]:
    """Every 9-digit number in the purpose that may be an account number, in order.

    A number right after "INN", "STIR" or "MFO" is not an account number. The same number
    twice counts once (the first amount wins)."""
    hits: list[NumberHit] = []
    seen: set[str] = set()
    for m in _NUMBER.finditer(purpose):
        if _NOT_ACCOUNT.search(purpose[: m.start()]):
            continue
        number = clean(m.group(1))
        if number in seen:
            continue
        seen.add(number)
        amount: int | None = None
        am = _AMOUNT.match(purpose[m.end() :])
        if am is not None:
            text = am.group(1).replace(" ", "").replace("\u00a0", "")
            if am.group(2):
                text += "." + am.group(2)
            try:
                amount = som_to_tiyin(text)
            except PaymentsError:
                amount = None
        hits.append(NumberHit(number, is_valid(number), amount))
    return hits


def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    t = t.replace("ʻ", "'").replace("‘", "'").replace("’", "'").replace("`", "'")
    t = re.sub(r"\b(mchj|ooo|ооо|xk|чп|ип|yatt|ltd|llc)\b", " ", t)
    t = re.sub(r"[^\w' ]+", " ", t)
    return " ".join(t.split())


class NameMatcher:
    """Scores many candidate names against one payer name quickly: the payer's side of the
    comparison is prepared once, and the cheap upper bounds of difflib skip candidates that
    cannot reach ``floor``."""

    def __init__(self, payer: str, floor: float = 0.0) -> None:
        self.floor = floor
        n = _norm(payer)
        self.empty = not n
        self._direct = SequenceMatcher(None, autojunk=False)
        self._direct.set_seq2(n)
        self._sorted = SequenceMatcher(None, autojunk=False)
        self._sorted.set_seq2(" ".join(sorted(n.split())))

    def score(self, candidate: str) -> float:
        """0..1; a value below ``floor`` may be returned as 0."""
        nc = _norm(candidate)
        if self.empty or not nc:
            return 0.0
        best = 0.0
        for sm, text in ((self._direct, nc), (self._sorted, " ".join(sorted(nc.split())))):
            sm.set_seq1(text)
            if sm.real_quick_ratio() < max(self.floor, best) or sm.quick_ratio() < max(
                self.floor, best
            ):
                continue
            best = max(best, sm.ratio())
        return best


def name_score(a: str, b: str) -> float:
    """Similarity of two names, 0..1, ignoring case, punctuation, word order and legal forms."""
    return NameMatcher(a).score(b)


@dataclass(frozen=True)
class Candidate:
    """An open account as the name/address search sees it."""

    account_id: int
    number: str
    name: str
    street: str
    house: str


class AccountIndex:
    """Words of account names and streets -> accounts, weighted by rarity (IDF).

    Built once per import (all open accounts), it finds the few accounts worth comparing
    with a payer's name instead of comparing every account. A word carried by more than
    ``common_share`` of the accounts (e.g. a very common surname) is not used to find
    candidates: it says nothing about who paid."""

    def __init__(self, candidates: Sequence[Candidate], common_share: float = 0.05) -> None:
        self.cands = list(candidates)
        postings: dict[str, list[int]] = {}
        for i, c in enumerate(self.cands):
            for w in set(_norm(c.name).split()) | set(_norm(c.street).split()):
                if len(w) >= 2:
                    postings.setdefault(w, []).append(i)
        n = max(1, len(self.cands))
        self.max_df = max(50, int(n * common_share))
        self.postings = postings
        self.idf = {w: math.log(1 + n / len(p)) for w, p in postings.items()}

    def __len__(self) -> int:
        return len(self.cands)

    def candidates(self, text: str, limit: int = 30) -> list[Candidate]:
        """The accounts sharing the rarest words with ``text``, best first."""
        weights: dict[int, float] = {}
        for w in set(_norm(text).split()):
            post = self.postings.get(w)
            if post is None or len(post) > self.max_df:
                continue
            for i in post:
                weights[i] = weights.get(i, 0.0) + self.idf[w]
        best = heapq.nlargest(limit, weights.items(), key=lambda kv: (kv[1], -kv[0]))
        return [self.cands[i] for i, _ in best]


def address_in(purpose: str, street: str, house: str) -> bool:
    """The street name and the house number (as a separate word) both appear in the text."""
    low = _norm(purpose)
    st = _norm(street)
    if not st or not house.strip() or st not in low:
        return False
    return re.search(rf"(?<![\w]){re.escape(house.strip().lower())}(?![\w])", low) is not None


TIE = 1e-6
"""Scores closer than this are a tie (they are stored as ``real``, rounded to 3 decimals)."""


def preselect(suggestions: Sequence[tuple[str, float]]) -> str | None:
    """The account a review form may offer ready to allocate: the only suggestion, or the
    one whose score is higher than every other. None when the best score is shared (two
    accounts of the same payer, two equally similar names): then the clerk must choose, and
    one click can never send the money to whichever happened to be listed first."""
    if not suggestions:
        return None
    ranked = sorted(suggestions, key=lambda s: -s[1])
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < TIE:
        return None
    return ranked[0][0]

"""Account search as a person in Uzbekistan types it: Uzbek Latin or Cyrillic, Russian
spellings of names, partial addresses ("Navoiy 12", "Bog'bon 3"), a phone number, a meter
serial, an INN or an account number.

How it works (docs/backoffice.md, "Search"):

* Every account has one **search key** (table ``account_search``, migration 0203), kept up to
  date by statement-level triggers on the accounts, the address dictionary, meters and service
  connections. The key is the account's number, name, phone, INN, legacy id, address (street,
  house, apartment, mahalla, district, in every spelling the dictionary has) and meter serials,
  each passed through :func:`fold`, without the :data:`STOP_WORDS`.
* :func:`fold` maps Uzbek Latin, Uzbek Cyrillic and Russian Cyrillic to one Latin skeleton, so
  that the usual spellings of one word meet: ``Bog'bon``, ``Bogʻbon``, ``Боғбон`` and
  ``Богбон`` are all ``bogbon``; ``Navoiy``, ``Навоий`` and ``Навои`` are all ``navoi``. The
  same rules are the SQL function ``suvnet_search_fold`` of the migration (its text is
  :func:`fold_sql_function`'s; ``tests/billing/test_search.py`` checks both give the same).
* The key's words are also an array with a GIN index (``account_search.words``), with what
  people type instead of a whole word: the first 3 or more letters of a word, a phone's last 9
  and 7 digits, and a street's word with the house number (``navoi#12``). A query (:func:`parse`)
  is folded the same way: its words must all be words of the array, one index lookup. The
  lookup, the ranking (:func:`rank`, :data:`_SCORE`) and the address of the best matches are
  one statement, the function ``billing_search_words`` (:func:`search_function_sql`), whose
  plan is made once a session.
* When no account has all the words, they are looked for inside the key (``LIKE '%nav%'``),
  through the trigram index of the pg_trgm extension when it is there (else by reading every
  key, with a warning); when still nothing matches and pg_trgm is there, by similarity
  (``word_similarity``), so a typo still finds the street.
* The best come first: the exact account number, INN or phone, then the exact house and
  apartment number, a name with every word, a word of the street, whole words before parts of
  words, then by account number.

The transliteration between the two Uzbek alphabets (:func:`to_cyrillic`,
:func:`to_latin`) is also here: the address dictionary fills a missing Cyrillic name from the
Latin one with it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from suvnet.listing import fetch_all, fetch_one

log = logging.getLogger(__name__)

AConn = AsyncConnection[Any]

# ------------------------------------------------------------------------------------ folding

APOSTROPHES = "'ʻʼ`‘’´ʹ′"
"""The characters people type for the Uzbek o', g' and the tutuq belgisi."""

_LOWER = {
    **{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)},
    **dict(
        zip(
            "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯЎҚҒҲ",
            "абвгдеёжзийклмнопрстуфхцчшщъыьэюяўқғҳ",
            strict=True,
        )
    ),
    "Ş": "ş",
    "Ç": "ç",
    "Ğ": "ğ",
    "Ö": "ö",
    "Ü": "ü",
    "İ": "i",
}
"""Upper to lower case, written out: the database's own lower() depends on its locale."""

_FOLD_CHAR = {
    **{c: c for c in "abcdefghijklmnoprstuvyz0123456789"},
    "x": "h",
    "q": "k",
    "w": "v",
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "yo",
    "ж": "j",
    "з": "z",
    "и": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "s",
    "ч": "ch",
    "ш": "sh",
    "щ": "sh",
    "ы": "i",
    "э": "e",
    "ю": "yu",
    "я": "ya",
    "ў": "o",
    "қ": "k",
    "ғ": "g",
    "ҳ": "h",
    "ş": "sh",
    "ç": "ch",
    "ğ": "g",
    "ö": "o",
    "ü": "u",
    "ı": "i",
}
"""One character (after :data:`_LOWER`) to its skeleton. ``x`` and ``h`` meet (Russian writes
х for both), so do ``q`` and ``k`` (Russian к for қ), ``o'`` and ``o``, ``g'`` and ``g``."""

_DROP = frozenset(APOSTROPHES + "ъьЪЬ")
"""Left out without a trace: Bog'bon is bogbon, Маъмур is mamur."""

_AFTER = (("dj", "j"), ("ye", "e"), ("iy ", "i "))
"""On the spaced, padded text, in this order: Russian дж is Uzbek j; ye and е meet (Yengil,
Енгил); a word ending in -iy meets the Russian -и and -ий (Navoiy, Навои, Навоий)."""


def fold(text: str) -> str:
    """The search skeleton of ``text``: lower-case Latin letters and digits, words separated
    by one space. Equal to the SQL function ``suvnet_search_fold`` (migration 0203)."""
    out = []
    for raw in text:
        ch = _LOWER.get(raw, raw)
        if ch in _DROP:
            continue
        out.append(_FOLD_CHAR.get(ch, " "))
    s = " " + " ".join("".join(out).split()) + " "
    for old, new in _AFTER:
        s = s.replace(old, new)
    return s.strip()


def fold_sql_function() -> str:
    """The SQL text of ``suvnet_search_fold``, made from the same tables as :func:`fold`
    (how the migration's function was written; a test compares them). One expression in a
    LANGUAGE sql function: no procedural overhead, and PostgreSQL may inline it."""

    def lit(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    upper = "".join(_LOWER)
    lower = "".join(_LOWER.values())
    drop = "".join(sorted(_DROP))
    multi = [(c, v) for c, v in _FOLD_CHAR.items() if len(v) != 1]
    single = [(c, v) for c, v in _FOLD_CHAR.items() if len(v) == 1 and c != v]
    keep = "abcdefghijklmnopqrstuvwxyz0123456789"
    e = f"translate(t, {lit(upper)},\n    {lit(lower)})"
    e = f"translate({e}, {lit(drop)}, '')"
    for c, v in multi:
        e = f"replace({e}, {lit(c)}, {lit(v)})"
    src = "".join(c for c, _ in single)
    dst = "".join(v for _, v in single)
    e = f"translate({e},\n    {lit(src)}, {lit(dst)})"
    e = f"' ' || btrim(regexp_replace({e},\n    '[^{keep}]+', ' ', 'g')) || ' '"
    for o, n in _AFTER:
        e = f"replace({e}, {lit(o)}, {lit(n)})"
    return (
        "CREATE FUNCTION suvnet_search_fold(t text) RETURNS text\n"
        "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE\n"
        f"RETURN btrim({e});"
    )


# ----------------------------------------------------------------------- transliteration

_LAT2CYR_MULTI = (
    ("yo'", "йў"),
    ("o'", "ў"),
    ("g'", "ғ"),
    ("sh", "ш"),
    ("ch", "ч"),
    ("yo", "ё"),
    ("yu", "ю"),
    ("ya", "я"),
    ("ye", "е"),
)
_LAT2CYR = dict(zip("abdfghijklmnopqrstuvxyzc", "абдфгҳижклмнопқрстувхйзц", strict=True))


def _apostrophes_to_ascii(text: str) -> str:
    return "".join("'" if c in APOSTROPHES else c for c in text)


def _cased(src: str, dst: str, nxt: str) -> str:
    """``dst`` in the case of ``src``: sh -> ш, Sh -> Ш, SH -> Ш, YO'L -> ЙЎЛ."""
    if not src[0].isupper():
        return dst
    if len(dst) == 1 or src[1:2].isupper() or nxt.isupper():
        return dst.upper()
    return dst[0].upper() + dst[1:]


_PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]")


def to_cyrillic(text: str) -> str:
    """Uzbek Latin to Uzbek Cyrillic: Bog'bon -> Боғбон, Yo'ldosh -> Йўлдош, Navoiy ->
    Навоий, eski -> эски, mehnat -> меҳнат, ma'rifat -> маърифат, Is'hoq -> Исҳоқ.

    ``e`` is э at the start of a word and е elsewhere; ``ye`` is е; an apostrophe between two
    letters (other than o', g' and the s'h of Is'hoq) is ъ. Other characters are kept, and so
    are the placeholders of a message (``%(day)s``)."""
    parts = _PLACEHOLDER.split(text)
    keep = _PLACEHOLDER.findall(text)
    out = [_to_cyrillic(parts[0])]
    for ph, part in zip(keep, parts[1:], strict=True):
        out += [ph, _to_cyrillic(part)]
    return "".join(out)


def _to_cyrillic(text: str) -> str:
    s = _apostrophes_to_ascii(text)
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        for lat, cyr in _LAT2CYR_MULTI:
            if s[i : i + len(lat)].lower() == lat:
                end = i + len(lat)
                out.append(_cased(s[i:end], cyr, s[end : end + 1]))
                i = end
                break
        else:
            low = ch.lower()
            prev = s[i - 1] if i else ""
            nxt = s[i + 1] if i + 1 < n else ""
            if low == "e":
                word_start = not prev.isalpha() and prev != "'"
                out.append(_cased(ch, "э" if word_start else "е", nxt))
            elif low in _LAT2CYR:
                out.append(_cased(ch, _LAT2CYR[low], nxt))
            elif ch == "'" and prev.isalpha() and nxt.isalpha():
                # Is'hoq: the apostrophe only keeps s and h apart; else the tutuq belgisi
                if not (prev.lower() in ("s", "c") and nxt.lower() == "h"):
                    out.append("ъ")
            else:
                out.append(ch)
            i += 1
    return "".join(out)


_CYR2LAT = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "ё": "yo",
    "ж": "j",
    "з": "z",
    "и": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "x",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "sh",
    "ъ": "'",
    "ы": "i",
    "ь": "",
    "э": "e",
    "ю": "yu",
    "я": "ya",
    "ў": "o'",
    "қ": "q",
    "ғ": "g'",
    "ҳ": "h",
}
_VOWELS_CYR = frozenset("аеёиоуэюяўАЕЁИОУЭЮЯЎъьЪЬ")


def to_latin(text: str) -> str:
    """Uzbek Cyrillic to Uzbek Latin with the ASCII apostrophe: Боғбон -> Bog'bon, Йўлдош ->
    Yo'ldosh, Навоий -> Navoiy, Ер -> Yer, Исҳоқ -> Is'hoq. Other characters are kept."""
    out: list[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        low = ch.lower()
        prev = text[i - 1] if i else ""
        nxt = text[i + 1] if i + 1 < n else ""
        if low == "е":
            lat = "ye" if (not prev.isalpha() or prev in _VOWELS_CYR) else "e"
        elif low == "ҳ" and prev.lower() in ("с", "ц"):
            lat = "'h"  # сҳ is s'h, not sh
        elif low in _CYR2LAT:
            lat = _CYR2LAT[low]
        else:
            out.append(ch)
            continue
        if ch != low and lat:  # a capital
            rest_upper = nxt.isupper() or (not nxt.isalpha() and prev.isupper())
            lat = lat.upper() if rest_upper else lat[0].upper() + lat[1:]
            if lat.startswith("'"):
                lat = "'" + lat[1:].upper()
        out.append(lat)
    return "".join(out)


# --------------------------------------------------------------------------------- queries

STOP_WORDS = frozenset(
    fold(w)
    for w in [
        "ko'chasi", "ko'cha", "kuchasi", "ulitsa", "ul", "улица", "ул", "кўчаси", "кучаси",
        "tor", "berk", "shoh", "mfy", "мфй", "mahalla", "mahallasi", "махалля", "маҳалласи",
        "dom", "d", "uy", "уй", "дом", "kv", "kvartira", "квартира", "xonadon", "хонадон",
        "tumani", "туман", "тумани", "район", "rayon", "viloyati", "вилояти", "область",
        "obl", "pr", "prospekt", "проспект", "per", "pereulok", "переулок", "proezd", "проезд",
    ]
)  # fmt: skip
"""Words that name what a part of an address is (street, house, mahalla...). A query leaves
them out, so "ул. Навои 12" and "Navoiy ko'chasi 12" ask the same."""


def stop_words_sql() -> str:
    """:data:`STOP_WORDS` as the SQL array of ``billing_search_stop_words()`` (migration
    0203; a test compares them)."""
    return "ARRAY[" + ", ".join(f"'{w}'" for w in sorted(STOP_WORDS)) + "]::text[]"


MIN_DIGITS = 5
"""A query of digits only with at least this many is looked for inside the key (phone,
INN, account number, meter serial)."""

CANDIDATES = 60
"""How many matches are read and ranked at most."""

SIMILARITY = 0.5
"""How similar (pg_trgm word_similarity, 0..1) the words of a query that matched nothing
must be to a key (Navoyi finds Navoiy, 0.57)."""


@dataclass(frozen=True)
class Query:
    """A search text as the search uses it."""

    text: str
    words: tuple[str, ...] = ()
    """The folded words, stop words and single letters left out: a whole-word match finds
    them in ``account_search.words``."""
    digits: str = ""
    """All digits of a digits-only query (5 or more), else empty: found inside the key."""
    compact: str = ""
    """The folded text without its separators, when one typed word mixes letters and digits
    with dashes or dots (a meter serial, SN-2024-0012): also found inside the key."""

    @property
    def empty(self) -> bool:
        return not self.words and not self.digits

    @property
    def numbers(self) -> tuple[str, ...]:
        """The words that are numbers (a house, an apartment)."""
        return tuple(w for w in self.words if w.isdigit())

    @property
    def letters(self) -> tuple[str, ...]:
        """The words that are not numbers."""
        return tuple(w for w in self.words if not w.isdigit())

    def patterns(self) -> list[str]:
        """LIKE patterns, one a word that is not a number: the word anywhere in the key (its
        first letters, a part of it); a word of two letters at the start of a key's word."""
        if self.digits:
            return [f"%{self.digits}%"]
        return [f"% {w}%" if len(w) < 3 else f"%{w}%" for w in self.letters]


def parse(text: str) -> Query:
    """The words (or the digits) of a search text (pure)."""
    text = text.strip()[:100]
    only_digits = re.sub(r"[\s\-+()./]", "", text)
    if only_digits.isascii() and only_digits.isdigit() and len(only_digits) >= MIN_DIGITS:
        return Query(text, digits=only_digits)
    folded = fold(text)
    words = [w for w in folded.split() if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())]
    compact = ""
    squeezed = folded.replace(" ", "")
    if (
        not any(c.isspace() for c in text)
        and len(folded.split()) > 1
        and any(c.isdigit() for c in squeezed)
        and any(c.isalpha() for c in squeezed)
    ):
        compact = squeezed
    return Query(text, words=tuple(dict.fromkeys(words)), compact=compact)


def rank(q: Query, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (of ``account_search``) best first: the exact account number, INN or phone,
    then the exact house and apartment number, a name that has every word, a word that
    starts a word of the street, whole words before parts of words, then by account
    number."""

    def score(r: dict[str, Any]) -> tuple[int, str]:
        s = 0
        key = r["key"]
        if q.digits:
            if r["number"] == q.digits:
                s += 1000
            elif r["inn"] == q.digits:
                s += 900
            elif len(q.digits) >= 7 and r["phone"].endswith(q.digits):
                s += 800
        if q.numbers and r["house"] in q.numbers:
            s += 100
        if q.numbers and r["apartment"] and r["apartment"] in q.numbers:
            s += 20
        name = f" {r['name']} "
        if q.letters and all(f" {w}" in name for w in q.letters):
            s += 30
        street = f" {r['street']} "
        s += sum(15 for w in q.letters if f" {w}" in street)
        s += sum(10 if f" {w} " in key else 5 if f" {w}" in key else 0 for w in q.letters)
        if q.compact and q.compact in key:
            s += 50
        return (-s, r["number"])

    return sorted(rows, key=score)


# ------------------------------------------------------------------------------ the search

_SCORE = """
  (CASE WHEN %(digits)s = '' THEN 0 WHEN c.number = %(digits)s THEN 1000
        WHEN c.inn = %(digits)s THEN 900
        WHEN length(%(digits)s) >= 7 AND right(c.phone, length(%(digits)s)) = %(digits)s
        THEN 800 ELSE 0 END)
+ (CASE WHEN c.house = ANY(%(numbers)s::text[]) THEN 100 ELSE 0 END)
+ (CASE WHEN c.apartment <> '' AND c.apartment = ANY(%(numbers)s::text[]) THEN 20 ELSE 0 END)
+ (CASE WHEN cardinality(%(letters)s::text[]) > 0 AND NOT EXISTS (
        SELECT 1 FROM unnest(%(letters)s::text[]) l
        WHERE strpos(' ' || c.name || ' ', ' ' || l) = 0) THEN 30 ELSE 0 END)
+ (SELECT 15 * count(*) FROM unnest(%(letters)s::text[]) l
   WHERE strpos(' ' || c.street || ' ', ' ' || l) > 0)
+ (SELECT coalesce(sum(CASE WHEN strpos(c.key, ' ' || l || ' ') > 0 THEN 10
                            WHEN strpos(c.key, ' ' || l) > 0 THEN 5 ELSE 0 END), 0)
   FROM unnest(%(letters)s::text[]) l)
+ (CASE WHEN %(compact)s <> '' AND strpos(c.key, %(compact)s) > 0 THEN 50 ELSE 0 END)"""
""":func:`rank`'s score in SQL (the same rules; a test compares the two orders)."""

_FOUND = """
SELECT a.id, a.number, a.kind, a.name, a.phone, a.status, a.inn, d.name_uz AS district,
       m.name_uz AS mahalla, s.name_uz AS street, h.number AS house, ap.number AS apartment
FROM top JOIN accounts a ON a.id = top.account_id
JOIN houses h ON h.id = a.house_id
LEFT JOIN apartments ap ON ap.id = a.apartment_id
JOIN streets s ON s.id = h.street_id
JOIN mahallas m ON m.id = s.mahalla_id
JOIN districts d ON d.id = m.district_id
ORDER BY top.score DESC, top.number"""
"""What the search answers of each account found, best first."""

_MODE: dict[str, str] = {}


async def index_mode(conn: AConn) -> str:
    """``trgm`` when the pg_trgm extension and the key's trigram index are there, else
    ``plain`` (logged once as a warning: parts of words are then found by reading every
    key)."""
    if "mode" not in _MODE:
        row = await fetch_one(
            conn,
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') AS ext, "
            "to_regclass('account_search_key_trgm') IS NOT NULL AS idx",
        )
        mode = "trgm" if row and row["ext"] and row["idx"] else "plain"
        if mode == "plain":
            log.warning(
                "account search runs without its trigram index (the PostgreSQL extension "
                "pg_trgm is missing): whole words are found through their index, parts of "
                "words and of numbers by reading every key. Install pg_trgm (Debian: "
                "postgresql-contrib) and run: SELECT billing_search_setup('on');"
            )
        _MODE["mode"] = mode
    return _MODE["mode"]


def forget_index_mode() -> None:
    """Look at the database again on the next search (after billing_search_setup)."""
    _MODE.clear()


def search_sql(where: str, order: str = "") -> str:
    """One search in one statement: the candidates (``where`` and ``order`` are made of this
    module's constants), ranked by :data:`_SCORE`, the best ``limit`` with their details."""
    cand = (
        "SELECT account_id, key, number, name, street, house, apartment, phone, inn "  # noqa: S608 - constants; values are parameters
        f"FROM account_search s WHERE {where} {order} LIMIT %(candidates)s"
    )
    top = (
        f"SELECT c.account_id, c.number, {_SCORE} AS score FROM cand c "  # noqa: S608 - constants
        "ORDER BY score DESC, c.number LIMIT %(limit)s"
    )
    return f"WITH cand AS MATERIALIZED ({cand}), top AS ({top}){_FOUND}"


SEARCH_ARGS = ("words", "digits", "numbers", "letters", "compact", "candidates", "limit")
"""The parameters of :func:`search_sql`, in the order of ``billing_search_words``."""


def search_function_sql() -> str:
    """The SQL text of ``billing_search_words`` (migration 0203): :func:`search_sql` for the
    whole-word lookup, the common case, as a function whose plan is prepared once a session
    (``plan_cache_mode = force_generic_plan``): planning the statement costs more than
    running it. A test compares the migration's text with this one."""
    body = search_sql("s.words @> %(words)s::text[]")
    for name in SEARCH_ARGS:
        body = body.replace(f"%({name})s", f"p_{name}")
    return (
        "CREATE FUNCTION billing_search_words(p_words text[], p_digits text, p_numbers text[],\n"
        "    p_letters text[], p_compact text, p_candidates integer, p_limit integer)\n"
        "RETURNS TABLE (id bigint, number text, kind text, name text, phone text, status text,\n"
        "    inn text, district text, mahalla text, street text, house text, apartment text)\n"
        "LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$\n"
        "#variable_conflict use_column\nBEGIN\nRETURN QUERY " + body + ";\nEND\n$$;"
    )


_WORDS_SQL = (
    "SELECT * FROM billing_search_words(%(words)s, %(digits)s, %(numbers)s, %(letters)s, "
    "%(compact)s, %(candidates)s, %(limit)s)"
)


def _params(q: Query, limit: int) -> dict[str, Any]:
    return {
        "digits": q.digits,
        "numbers": list(q.numbers),
        "letters": list(q.letters),
        "compact": q.compact,
        "candidates": CANDIDATES,
        "limit": limit,
        "words": list(q.words) if q.words else [q.digits],
    }


async def search_accounts(conn: AConn, text: str, limit: int = 50) -> list[dict[str, Any]]:
    """Accounts for a search text, best first (see the module doc); at most ``limit``.

    First the accounts that have every word (or the digits) as a whole word of their key,
    the first letters of one or a phone's tail: one lookup in the words' index, ranked and
    read in the same statement (words and one number: the street's words with the house
    number first, "navoi#12", a much shorter list of the index). If none, those with every
    word inside their key (the trigram index); if still none, those with similar words (with
    pg_trgm)."""
    q = parse(text)
    if q.empty:
        return []
    args = _params(q, limit)
    if q.letters and len(q.numbers) == 1:  # a street and a house: "navoi#12" first
        house = {**args, "words": [f"{w}#{q.numbers[0]}" for w in q.letters]}
        rows = await fetch_all(conn, _WORDS_SQL, house)
        if rows:
            return rows
    rows = await fetch_all(conn, _WORDS_SQL, args)
    if rows or not (q.digits or q.letters):
        return rows
    conds = [f"s.key LIKE %(p{i})s" for i in range(len(q.patterns()))]
    args.update({f"p{i}": pat for i, pat in enumerate(q.patterns())})
    if q.numbers:
        conds.append("s.words @> %(numbers)s::text[]")
    where = " AND ".join(conds)
    if q.compact:
        where = f"(({where}) OR s.key LIKE %(compact_like)s)"
        args["compact_like"] = f"%{q.compact}%"
    rows = await fetch_all(conn, search_sql(where), args)
    if rows or not q.letters or await index_mode(conn) != "trgm":
        return rows
    # typos: similar words (pg_trgm), the numbers still whole words
    args["similar"] = " ".join(q.letters)
    where = "%(similar)s <%% s.key"
    if q.numbers:
        where += " AND s.words @> %(numbers)s::text[]"
    await conn.execute(
        "SELECT set_config('pg_trgm.word_similarity_threshold', %s, false)", (str(SIMILARITY),)
    )
    return await fetch_all(
        conn, search_sql(where, "ORDER BY word_similarity(%(similar)s, s.key) DESC"), args
    )

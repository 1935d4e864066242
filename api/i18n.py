"""Translations of the web pages through Babel catalogs.

The catalogs are ``api/locale/<lang>/LC_MESSAGES/messages.po``; they are compiled to the
binary ``.mo`` form in memory when first needed (so an edited ``.po`` file needs no build
step). Languages: Uzbek Latin (``uz``, the default), Uzbek Cyrillic (``uz_Cyrl``), Russian
(``ru``) and English (``en``).
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from suvnet import numfmt

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANG = "uz"


@dataclass(frozen=True)
class Language:
    code: str
    label: str  # the language's own name, shown in the switcher
    html_lang: str


LANGUAGES: tuple[Language, ...] = (
    Language("uz", "O'zbekcha", "uz-Latn"),
    Language("uz_Cyrl", "Ўзбекча", "uz-Cyrl"),
    Language("ru", "Русский", "ru"),
    Language("en", "English", "en"),
)
CODES = frozenset(lang.code for lang in LANGUAGES)


LANG_COOKIE = "suvnet_lang"
"""The cookie in which the pages keep the reader's language (routes read it too)."""


def request_language(query: str | None, cookies: Mapping[str, str]) -> str:
    """The language of a request: ``?lang=``, then the pages' cookie, then Uzbek Latin."""
    return pick_language(query, cookies.get(LANG_COOKIE))


def pick_language(query: str | None, cookie: str | None) -> str:
    """The page language: ``?lang=`` first, then the cookie, then Uzbek Latin."""
    for cand in (query, cookie):
        if cand in CODES:
            return cand
    return DEFAULT_LANG


def po_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"


@cache
def translations(code: str) -> gettext.GNUTranslations:
    """The compiled catalog of one language."""
    with po_path(code).open("rb") as f:
        catalog = read_po(f, locale=code)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def gettext_for(code: str) -> gettext.GNUTranslations:
    return translations(code if code in CODES else DEFAULT_LANG)


def format_som(tiyin: int) -> str:
    """Money for people: 1234567 tiyin -> '12 345,67' (so'm; the one format of
    :mod:`suvnet.numfmt`, shared with the PDFs and the command line)."""
    return numfmt.format_som(tiyin)


def format_volume(m3: float, places: int = 3) -> str:
    """A volume in m³ for people: 5679.476 -> '5 679,476' (:mod:`suvnet.numfmt`)."""
    return numfmt.format_volume(m3, places)


DISPLAY_TZ = ZoneInfo("Asia/Tashkent")
"""Times are stored in UTC and shown in Tashkent time, with the zone named on the page
(the catalog's "Tashkent time")."""


def local_time(value: datetime | None, fmt: str = "%d.%m.%Y %H:%M") -> str:
    """An instant as the office reads it, in Tashkent time (``''`` for None). A naive value
    is taken as UTC, as the database stores it."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(DISPLAY_TZ).strftime(fmt)

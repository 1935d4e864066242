"""Every string of the pages is translated in every catalog; the catalogs compile."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from api.i18n import LANGUAGES, gettext_for, po_path

API_DIR = Path(__file__).resolve().parents[2] / "api"


def template_messages() -> set[str]:
    found = extract_from_dir(
        str(API_DIR / "templates"),
        method_map=[("**.html", "jinja2")],
        options_map={"**.html": {}},
    )
    return {msg for _file, _line, msg, _comments, _ctx in found if isinstance(msg, str)}


def test_templates_have_strings() -> None:
    msgs = template_messages()
    assert len(msgs) > 50
    assert "Customer login" in msgs


@pytest.mark.parametrize("code", [lang.code for lang in LANGUAGES])
def test_every_string_translated(code: str) -> None:
    with po_path(code).open("rb") as f:
        catalog = read_po(f, locale=code)
    missing = sorted(m for m in template_messages() if m not in catalog or not catalog[m].string)
    assert missing == [], f"{code}: untranslated {missing}"
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert fuzzy == []


@pytest.mark.parametrize("code", ["uz", "uz_Cyrl", "ru"])
def test_translations_are_not_english(code: str) -> None:
    tr = gettext_for(code)
    same = [m for m in template_messages() if tr.gettext(m) == m]
    # only words that are the same in every language may stay as they are ("Administrator"
    # is the Uzbek word too, as the role is named on Uzbek pages)
    assert set(same) <= {"Balance", "so'm", "Mahalla", "Administrator"}, same


def test_compiled_catalogs() -> None:
    assert gettext_for("ru").gettext("Log in") == "Войти"
    assert gettext_for("uz_Cyrl").gettext("Log in") == "Кириш"
    assert gettext_for("uz").gettext("Log in") == "Kirish"
    assert gettext_for("xx").gettext("Log in") == "Kirish"  # unknown -> Uzbek Latin


async def test_language_switch_sets_cookie(client: httpx.AsyncClient) -> None:
    r = await client.get("/cabinet/login?lang=ru")
    assert "Вход в кабинет абонента" in r.text
    assert 'lang="ru"' in r.text
    assert client.cookies.get("suvnet_lang") == "ru"
    r = await client.get("/cabinet/login")
    assert "Вход в кабинет абонента" in r.text
    r = await client.get("/cabinet/login?lang=uz_Cyrl")
    assert "Абонент кабинети: кириш" in r.text
    # every language link is on the page
    for lang in LANGUAGES:
        assert f'data-lang="{lang.code}"' in r.text

"""The account search (billing/search.py, migration 0203): the folding of Uzbek Latin, Uzbek
Cyrillic and Russian spellings (the same in Python and in the database), the transliteration
between the two Uzbek alphabets, the search keys the triggers keep, and what a person finds
with what they type. On the real PostgreSQL, with and without pg_trgm."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from billing import search
from billing.accounts import Address, create_account, install_meter
from billing.search import fold, parse, rank, to_cyrillic, to_latin
from suvnet.migrate import load_migrations

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PH = re.compile(r"%\([a-z_]+\)[sd]")

# ------------------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("spellings", "skeleton"),
    [
        (["Bog'bon", "Bogʻbon", "Bog`bon", "Bog’bon", "Боғбон", "Богбон", "BOG'BON"], "bogbon"),
        (["Navoiy", "Навоий", "Навои", "NAVOIY", "навоий"], "navoi"),
        (["Ulug'bek", "Улуғбек", "Улугбек"], "ulugbek"),
        (["Mustaqillik", "Мустақиллик", "Мустакиллик"], "mustakillik"),
        (["Yangi hayot", "Янги ҳаёт", "Янги хаёт"], "yangi hayot"),
        (["Yengil", "Енгил"], "engil"),
        (["Xo'jaobod", "Хўжаобод", "Ходжаобод"], "hojaobod"),
        (["Is'hoq", "Исҳоқ"], "ishok"),
        (["Ma'mur", "Маъмур"], "mamur"),
        (["Shodlik", "Шодлик"], "shodlik"),
        (["Chinor", "Чинор"], "chinor"),
        (["Yoshlik", "Ёшлик"], "yoshlik"),
        (["Yunusobod", "Юнусобод"], "yunusobod"),
        (["Qo'ng'irot", "Қўнғирот"], "kongirot"),
    ],
)
def test_spellings_of_one_word_fold_to_one_skeleton(spellings: list[str], skeleton: str) -> None:
    assert {fold(s) for s in spellings} == {skeleton}


def test_fold_keeps_words_and_digits_apart() -> None:
    assert fold("ул. Навои, д. 12/3") == "ul navoi d 12 3"
    assert fold("+998 (90) 123-45-67") == "998 90 123 45 67"
    assert fold("  ") == ""
    assert fold("SN-2024/0012") == "sn 2024 0012"


@pytest.mark.parametrize(
    ("latin", "cyrillic"),
    [
        ("Bog'bon", "Боғбон"),
        ("Yo'ldosh", "Йўлдош"),
        ("Navoiy ko'chasi", "Навоий кўчаси"),
        ("eski shahar", "эски шаҳар"),
        ("mehnat", "меҳнат"),
        ("ma'rifat", "маърифат"),
        ("san'at", "санъат"),
        ("Is'hoq", "Исҳоқ"),
        ("Yer", "Ер"),
        ("qayerda", "қаерда"),
        ("O'zbekiston", "Ўзбекистон"),
        ("G'afur G'ulom", "Ғафур Ғулом"),
        ("SHAHAR", "ШАҲАР"),
        ("Chorsu", "Чорсу"),
        ("Yunusobod", "Юнусобод"),
        ("Yangiyo'l", "Янгийўл"),
        ("Bog'ishamol MFY", "Боғишамол МФЙ"),
        ("%(day)s gacha", "%(day)s гача"),
    ],
)
def test_transliteration_both_ways(latin: str, cyrillic: str) -> None:
    assert to_cyrillic(latin) == cyrillic
    assert to_latin(cyrillic) == latin


def test_the_other_apostrophes_are_read_as_the_ascii_one() -> None:
    assert to_cyrillic("Bogʻbon Oʻrikzor") == "Боғбон Ўрикзор"
    assert to_cyrillic("Bog‘bon") == to_cyrillic("Bog’bon") == "Боғбон"


def test_transliteration_agrees_with_the_uzbek_catalogs() -> None:
    """The Uzbek Cyrillic catalog of the pages was written letter for letter from the Latin
    one: the transliteration gives it back for the plain Uzbek texts."""
    from babel.messages.pofile import read_po

    from api.i18n import po_path

    with po_path("uz").open("rb") as f:
        lat = {m.id: m.string for m in read_po(f) if m.id and isinstance(m.string, str)}
    with po_path("uz_Cyrl").open("rb") as f:
        cyr = {m.id: m.string for m in read_po(f) if m.id and isinstance(m.string, str)}
    # a name (Payme, MT940, YYYY-MM) stays Latin in both: such texts are left out
    pairs = [
        (lat[k], cyr[k])
        for k in lat
        if k in cyr and lat[k] and cyr[k] and not re.search("[A-Za-z]", PH.sub("", cyr[k]))
    ]
    # Russian loanwords keep their Russian spelling in Cyrillic (kvitansiya/квитанция,
    # obyekt/объект): nine in ten must agree
    same = [p for p in pairs if to_cyrillic(p[0]) == p[1]]
    assert len(pairs) > 100
    assert len(same) / len(pairs) > 0.9, [p for p in pairs if p not in same][:20]


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_fold_is_stable(text: str) -> None:
    once = fold(text)
    assert fold(once) == once
    assert set(once) <= set("abcdefghijklmnopqrstuvwxyz0123456789 ")


def test_a_query_is_words_or_digits() -> None:
    q = parse("ул. Навои, д. 12")
    assert q.words == ("navoi", "12") and q.numbers == ("12",) and q.letters == ("navoi",)
    q = parse("90 123-45-67")
    assert q.digits == "901234567" and not q.words
    assert parse("000 000-018").digits == "000000018"
    q = parse("SN-2024-0012")
    assert q.compact == "sn20240012"
    assert parse("Navoiy 12").compact == ""  # two typed words: an address, not a serial
    assert parse("   ").empty and parse("ko'chasi").empty
    assert parse("12").words == ("12",)  # a house number alone is a word too


def test_rank_puts_the_exact_match_first() -> None:
    def row(number: str, house: str, key: str, **kw: str) -> dict[str, Any]:
        return {
            "account_id": int(number),
            "number": number,
            "key": f" {key} ",
            "house": house,
            "apartment": kw.get("apartment", ""),
            "name": kw.get("name", ""),
            "street": kw.get("street", ""),
            "phone": kw.get("phone", ""),
            "inn": kw.get("inn", ""),
        }

    q = parse("Navoiy 12")
    rows = [row("000000034", "3", "navoi 12 3"), row("000000042", "12", "navoi 12")]
    assert [r["number"] for r in rank(q, rows)] == ["000000042", "000000034"]
    q = parse("901234567")
    rows = [
        row("000000018", "1", "a 901234567", phone="998901234567"),
        row("901234567", "1", "b 901234567"),
    ]
    assert [r["number"] for r in rank(q, rows)] == ["901234567", "000000018"]


# ------------------------------------------------------------------------------- database


def test_the_sql_fold_is_the_python_fold(conn: psycopg.Connection[Any]) -> None:
    """The migration's function was made by fold_sql_function(); both give the same text for
    every character they know and for random text."""
    sql = next(m.sql for m in load_migrations() if m.version == 203)
    assert search.fold_sql_function() in sql
    assert search.stop_words_sql() in sql
    assert search.search_function_sql() in sql
    assert "%(" + ")s, %(".join(search.SEARCH_ARGS) + ")s)" in search._WORDS_SQL
    rnd = random.Random(3)
    alphabet = (
        "abcxyzqwhABCXQW0123456789 '`ʻʼ‘’-.,/+"
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяўқғҳАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯЎҚҒҲ"
        "şçğöüıŞÇĞÖÜİßéñ漢\u00a0\t"
    )
    texts = [*alphabet, "Navoiy iy", "djye yey", "iyiy iy", "Ходжа", "Бўстон-2"]
    texts += [
        "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 30))) for _ in range(400)
    ]
    rows = conn.execute(
        "SELECT t, suvnet_search_fold(t) FROM unnest(%s::text[]) t", (texts,)
    ).fetchall()
    wrong = [(t, f, fold(t)) for t, f in rows if f != fold(t)]
    assert wrong == []


def _street(conn: psycopg.Connection[Any], name: str, cyrl: str | None, ru: str | None) -> int:
    """A street in mahalla "Bog'ishamol MFY" of Urgut (created when missing)."""
    conn.execute(
        "INSERT INTO regions (name_uz) VALUES ('Samarqand viloyati') ON CONFLICT DO NOTHING"
    )
    conn.execute(
        "INSERT INTO districts (region_id, name_uz, name_ru) SELECT id, 'Urgut tumani', "
        "'Ургутский район' FROM regions WHERE name_uz = 'Samarqand viloyati' "
        "ON CONFLICT DO NOTHING"
    )
    conn.execute(
        "INSERT INTO mahallas (district_id, name_uz, name_uz_cyrl) SELECT id, "
        "'Bog''ishamol MFY', 'Боғишамол МФЙ' FROM districts WHERE name_uz = 'Urgut tumani' "
        "ON CONFLICT DO NOTHING"
    )
    row = conn.execute(
        "INSERT INTO streets (mahalla_id, name_uz, name_uz_cyrl, name_ru) "
        "SELECT id, %s, %s, %s FROM mahallas WHERE name_uz = 'Bog''ishamol MFY' RETURNING id",
        (name, cyrl, ru),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _account(conn: psycopg.Connection[Any], name: str, street: str, house: str, **kw: Any) -> str:
    _, number = create_account(
        conn,
        kind=kw.pop("kind", "household"),
        name=name,
        address=Address(
            "Samarqand viloyati",
            "Urgut tumani",
            "Bog'ishamol MFY",
            street,
            house,
            kw.pop("apartment", None),
        ),
        now=NOW,
        **kw,
    )
    return number


@pytest.fixture(scope="module")
def register(db_url: str) -> dict[str, str]:
    """A small register: streets with their Cyrillic and Russian names, households and a
    legal entity, meters."""
    with psycopg.connect(db_url) as conn:
        _street(conn, "Navoiy ko'chasi", "Навоий кўчаси", "улица Навои")
        _street(conn, "Bog'bon ko'chasi", "Боғбон кўчаси", None)
        _street(conn, "Mustaqillik ko'chasi", "Мустақиллик кўчаси", "улица Мустакиллик")
        _street(conn, "Do'stlik ko'chasi", None, None)
        out = {
            "navoiy12": _account(
                conn, "Karimov Anvar", "Navoiy ko'chasi", "12", phone="+998901234567"
            ),
            "navoiy112": _account(conn, "Rahimova Dilfuza", "Navoiy ko'chasi", "112"),
            "navoiy3": _account(
                conn, "Toshmatov Olim", "Navoiy ko'chasi", "3", phone="998935550011"
            ),
            "bogbon3": _account(conn, "Yusupova Gulnora", "Bog'bon ko'chasi", "3"),
            "bogbon12": _account(conn, "Ergashev Sherzod", "Bog'bon ko'chasi", "12", apartment="3"),
            "must25": _account(conn, "Qodirov Jasur", "Mustaqillik ko'chasi", "25"),
            "legal": _account(
                conn,
                "Obod Non MChJ",
                "Do'stlik ko'chasi",
                "7",
                kind="legal",
                inn="301234567",
                mfo="00873",
                bank_account="20208000000123456789",
            ),
        }
        acc_id = conn.execute(
            "SELECT id FROM accounts WHERE number = %s", (out["must25"],)
        ).fetchone()
        assert acc_id is not None
        install_meter(conn, acc_id[0], "SV2024-000123", installed_at=NOW)
        conn.commit()
    return out


@pytest.fixture
async def aconn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
        c.row_factory = dict_row  # type: ignore[assignment]
        yield c


async def _found(aconn: psycopg.AsyncConnection[Any], text: str) -> list[str]:
    return [r["number"] for r in await search.search_accounts(aconn, text, 10)]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Navoiy 12", "navoiy12"),
        ("Навоий 12", "navoiy12"),
        ("Навои 12", "navoiy12"),
        ("ул. Навои, д. 12", "navoiy12"),
        ("NAVOIY 12", "navoiy12"),
        ("Nav 12", "navoiy12"),
        ("Bog'bon 3", "bogbon3"),
        ("Bogʻbon 3", "bogbon3"),
        ("Боғбон 3", "bogbon3"),
        ("Богбон 3", "bogbon3"),
        ("Bogbon 3", "bogbon3"),
        ("Мустакиллик 25", "must25"),
        ("Karimov Anvar", "navoiy12"),
        ("Каримов Анвар", "navoiy12"),
        ("Karimov", "navoiy12"),
        ("90 123 45 67", "navoiy12"),
        ("+998 90 123-45-67", "navoiy12"),
        ("1234567", "navoiy12"),
        ("SV2024-000123", "must25"),
        ("sv2024000123", "must25"),
        ("000123", "must25"),
        ("301234567", "legal"),
        ("Obod Non", "legal"),
        ("Do'stlik 7", "legal"),
        ("Дўстлик 7", "legal"),
        ("Bog'bon 12 3", "bogbon12"),
        ("Navoyi 12", "navoiy12"),  # a typo: found by similarity (pg_trgm)
        ("Yusupova", "bogbon3"),
    ],
)
async def test_what_people_type_finds_the_account(
    aconn: psycopg.AsyncConnection[Any], register: dict[str, str], text: str, first: str
) -> None:
    found = await _found(aconn, text)
    assert found[:1] == [register[first]], (text, found)


async def test_a_house_number_is_a_whole_word(
    aconn: psycopg.AsyncConnection[Any], register: dict[str, str]
) -> None:
    """ "Navoiy 12" is house 12, not 112; "Navoiy 3" is not house 3 of Bog'bon."""
    assert await _found(aconn, "Navoiy 12") == [register["navoiy12"]]
    assert await _found(aconn, "Navoiy 3") == [register["navoiy3"]]
    assert set(await _found(aconn, "Navoiy")) == {
        register["navoiy12"],
        register["navoiy112"],
        register["navoiy3"],
    }


async def test_the_account_number_finds_itself_first(
    aconn: psycopg.AsyncConnection[Any], register: dict[str, str]
) -> None:
    number = register["bogbon3"]
    assert (await _found(aconn, number))[0] == number
    assert (await _found(aconn, f"{number[:3]} {number[3:6]}-{number[6:]}"))[0] == number


async def test_nothing_is_found_for_nothing(
    aconn: psycopg.AsyncConnection[Any], register: dict[str, str]
) -> None:
    assert await _found(aconn, "") == []
    assert await _found(aconn, "ko'chasi") == []
    assert await _found(aconn, "Zzyzx 999") == []


async def test_the_sql_ranking_is_the_python_ranking(
    aconn: psycopg.AsyncConnection[Any], register: dict[str, str]
) -> None:
    for text in ("Navoiy", "Bog'bon 12", "Karimov", "12", "3"):
        q = parse(text)
        rows = await (
            await aconn.execute(
                "SELECT account_id, key, number, name, street, house, apartment, phone, inn "
                "FROM account_search WHERE words @> %s::text[]",
                (list(q.words),),
            )
        ).fetchall()
        assert rows, text
        expected = [r["number"] for r in rank(q, list(rows))]
        assert await _found(aconn, text) == expected[:10], text


def test_the_keys_follow_every_change(db_url: str, register: dict[str, str]) -> None:
    """A renamed street, a new meter, a changed phone or house: the search finds the
    account by the new words at once, and no longer by the old ones."""
    with psycopg.connect(db_url) as conn:

        def key(number: str) -> str:
            row = conn.execute(
                "SELECT s.key FROM account_search s JOIN accounts a ON a.id = s.account_id "
                "WHERE a.number = %s",
                (number,),
            ).fetchone()
            assert row is not None
            return str(row[0])

        n = register["navoiy3"]
        assert " navoi " in key(n) and " toshmatov " in key(n)
        conn.execute(
            "UPDATE streets SET name_ru = 'улица Алишера Навои' WHERE name_uz = 'Navoiy ko''chasi'"
        )
        assert " alishera " in key(n)
        conn.execute("UPDATE accounts SET phone = '998977770000' WHERE number = %s", (n,))
        assert " 998977770000 " in key(n) and "998935550011" not in key(n)
        conn.execute(
            "UPDATE houses SET number = '3a' WHERE id = (SELECT house_id FROM accounts "
            "WHERE number = %s)",
            (n,),
        )
        assert " 3a " in key(n)
        acc_id = conn.execute("SELECT id FROM accounts WHERE number = %s", (n,)).fetchone()
        assert acc_id is not None
        install_meter(conn, acc_id[0], "KV-77/1", installed_at=NOW)
        assert " 77 1 kv771 " in key(n)  # kv (kvartira) says what a number is: left out
        conn.execute("UPDATE meters SET serial_no = 'KV-78' WHERE serial_no = 'KV-77/1'")
        assert " kv771 " not in key(n) and " kv78 " in key(n)
        conn.execute(
            "UPDATE mahallas SET name_ru = 'махалля Богишамол' WHERE name_uz = 'Bog''ishamol MFY'"
        )
        assert " bogishamol " in key(n)
        conn.rollback()


def test_a_bulk_load_keys_every_account_in_one_statement(db_url: str) -> None:
    """COPY into accounts fires the statement trigger once: every new account has its key."""
    with psycopg.connect(db_url) as conn:
        street = _street(conn, "Chinor ko'chasi", None, None)
        house = conn.execute(
            "INSERT INTO houses (street_id, number) VALUES (%s, '1') RETURNING id", (street,)
        ).fetchone()
        assert house is not None
        from billing.accountno import make_number

        numbers = [make_number(900_000 + i) for i in range(300)]
        with conn.cursor().copy(
            "COPY accounts (number, kind, category, name, house_id) FROM STDIN"
        ) as cp:
            for i, number in enumerate(numbers):
                cp.write_row((number, "household", "household", f"Chinorov {i}", house[0]))
        n = conn.execute(
            "SELECT count(*) FROM account_search s JOIN accounts a ON a.id = s.account_id "
            "WHERE a.number = ANY(%s) AND s.key LIKE '%% chinor %%'",
            (numbers,),
        ).fetchone()
        assert n == (300,)
        conn.rollback()


async def test_without_pg_trgm_the_search_still_works_and_says_so(
    db_url: str,
    register: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the extension: whole words through their own index, parts of words by
    reading every key, no similarity; a warning names what to install."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_trgm CASCADE")
        mode = conn.execute("SELECT billing_search_setup('auto')").fetchone()
        # on this server the extension can be had, so 'auto' takes it back: check 'off'
        assert mode == ("trgm",)
        assert conn.execute("SELECT billing_search_setup('off')").fetchone() == ("plain",)
        assert conn.execute(
            "SELECT to_regclass('account_search_key_trgm') IS NULL, "
            "to_regclass('account_search_words') IS NOT NULL"
        ).fetchone() == (True, True)
        assert conn.execute(
            "SELECT value FROM suvnet_meta WHERE key = 'search_index'"
        ).fetchone() == ("plain",)
    search.forget_index_mode()
    try:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
            aconn.row_factory = dict_row  # type: ignore[assignment]
            with caplog.at_level(logging.WARNING, logger="billing.search"):
                assert (await _found(aconn, "Боғбон 3"))[:1] == [register["bogbon3"]]
                assert (await _found(aconn, "Bog 3"))[:1] == [register["bogbon3"]]
                assert (await _found(aconn, "ogbo 3"))[:1] == [register["bogbon3"]]  # inside
                assert await _found(aconn, "Navoyi 12") == []  # no similarity without pg_trgm
            assert "pg_trgm" in caplog.text and "postgresql-contrib" in caplog.text
    finally:
        search.forget_index_mode()
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert conn.execute("SELECT billing_search_setup('on')").fetchone() == ("trgm",)


def test_setup_refuses_a_wrong_mode(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn, pytest.raises(psycopg.Error):
        conn.execute("SELECT billing_search_setup('sometimes')")

"""The demo village for the asset-operation tests: the site file, subscribers in both DMAs
(households, a school, a legal entity; phones, a Telegram chat, letters' languages), then
the demo's register (valves, one seized; service connections; the repair history), as
``suvnet demo`` builds it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg

from assets.demo import seed_register
from billing.accounts import Address, create_account
from suvnet.site import apply_site_file
from tests.assets.conftest import NOW

SITE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "village-site.yaml"
REGION, DISTRICT = "Farg'ona viloyati", "Yangiobod tumani"
# (name, kind, mahalla, street, house, zone, phone, telegram, language, inn)
PEOPLE = (
    ("Karimov Anvar", "household", "Navbahor MFY", "Mustaqillik ko'chasi", "12", "DMA-N",
     "998901234501", None, None, None),
    ("Yusupova Dilnoza", "household", "Navbahor MFY", "Mustaqillik ko'chasi", "15", "DMA-N",
     "998901234502", "5551001", "ru", None),
    ("Rahimov Bekzod", "household", "Navbahor MFY", "Mustaqillik ko'chasi", "27", "DMA-N",
     None, None, "uz_Cyrl", None),
    ("Tosheva Malika", "household", "Navbahor MFY", "Navoiy ko'chasi", "3", "DMA-N",
     "998901234504", None, "en", None),
    ("5-son maktab", "budget", "Navbahor MFY", "Navoiy ko'chasi", "9", "DMA-N",
     "998901234505", None, None, "201234567"),
    ("Nazarov Sardor", "household", "Navbahor MFY", "Navoiy ko'chasi", "14", "DMA-N",
     None, None, None, None),
    ("Bog'bon savdo MChJ", "legal", "Bog'ishamol MFY", "Bog'bon ko'chasi", "1", "DMA-S",
     "998901234507", None, "ru", "301234567"),
    ("Qodirova Nigora", "household", "Bog'ishamol MFY", "Bog'bon ko'chasi", "3", "DMA-S",
     "998901234508", None, None, None),
    ("Ergashev Jasur", "household", "Bog'ishamol MFY", "Bog'bon ko'chasi", "8", "DMA-S",
     None, None, None, None),
    ("Sobirova Zuhra", "household", "Bog'ishamol MFY", "Chinor ko'chasi", "2", "DMA-S",
     "998901234510", None, None, None),
)  # fmt: skip


def build_village(db_url: str) -> dict[str, str]:
    """The village in the database at ``db_url``; returns name -> account number."""
    apply_site_file(db_url, SITE)
    numbers: dict[str, str] = {}
    with psycopg.connect(db_url) as conn:
        zones = {str(c): int(i) for c, i in conn.execute("SELECT code, id FROM zones")}
        for name, kind, mahalla, street, house, zone, phone, chat, lang, inn in PEOPLE:
            acc_id, number = create_account(
                conn,
                kind=kind,
                name=name,
                address=Address(REGION, DISTRICT, mahalla, street, house),
                now=NOW - timedelta(days=400),
                residents=4 if kind == "household" else 0,
                phone=phone,
                inn=inn,
                metered=False,
                zone_id=zones[zone],
            )
            conn.execute(
                "UPDATE accounts SET telegram_chat_id = %s, correspondence_language = %s "
                "WHERE id = %s",
                (chat, lang, acc_id),
            )
            numbers[name] = number
        conn.commit()
        seed_register(conn, now=NOW)
        conn.commit()
    return numbers

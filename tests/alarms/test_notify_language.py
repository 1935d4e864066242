"""Alarm notifications in the staff's language (Uzbek Latin, Uzbek Cyrillic, Russian).

Real notifications go through the real outbox (alarms.store.queue_notifications), the
dispatcher and the channel code to local peers: an HTTP server standing in for the Telegram
Bot API (``telegram_base_url``) and an SMTP server (aiosmtpd), as in test_notify.py. The leak
alarms carry messages the leak detector really made (tests/api/test_leak_messages.py); the
point alarm is raised by the engine from readings and acknowledged with a hostile comment.
What arrives must be wholly in the route's language, with a decimal comma, and the comment
must arrive as the literal text it was.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import timedelta
from email.message import EmailMessage
from functools import cache
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from alarms import leak as lk
from alarms import leakrule as lr
from alarms import messages
from alarms.actions import act
from alarms.engine import run_pass
from alarms.notify import (
    AlarmSettings,
    Channel,
    EmailChannel,
    TelegramChannel,
    WebhookChannel,
    channels_from_settings,
    dispatch_due,
)
from alarms.store import queue_notifications
from api.i18n import CODES
from tests.alarms.conftest import (
    T0,
    Mailbox,
    Receiver,
    Site,
    add_readings,
    add_route,
    add_rule,
    one,
)
from tests.api.test_leak_messages import ENGLISH as LEAK_ENGLISH
from tests.api.test_leak_messages import engine_messages
from tests.test_i18n_complete import ENGLISH as PAGE_ENGLISH

NOW = T0 + timedelta(days=1)
pytestmark = pytest.mark.usefixtures("no_routes")  # the module's database is shared
LANGS = ("uz", "uz_Cyrl", "ru")
HOSTILE = '<b>x</b> & =HYPERLINK("http://evil.example/?a=1&b=2","click")'
OWN_WORDS = "clamp on the main"  # a dispatcher's comment in engine_messages(): theirs, as written
FRAME = {"activate", "unack", "rule", "user", "comment", "tashkent", "repaired", "found"}
"""Words of the notification's own English frame (event and state codes, labels)."""
DATE = re.compile(r"\b\d\d\.\d\d\.\d{4} \d\d:\d\d\b")


def english_left(text: str, *data: str) -> set[str]:
    """English words left in ``text`` once the data shown as written (codes, names, the
    comment) is taken out: the leak messages' words, the pages' stop-list and the frame's."""
    for d in data:
        text = text.replace(d, " ")
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
    return {w.lower() for w in LEAK_ENGLISH.findall(text)} | (words & (PAGE_ENGLISH | FRAME))


def assert_in_language(text: str, lang: str, source: str, *data: str) -> None:
    """``text`` (a notification of the English message ``source``) has no English word left,
    and writes every decimal number of the message with a decimal comma."""
    left = english_left(text, *data)
    assert not left, (lang, text, left)
    body = DATE.sub(" ", text)
    assert not re.search(r"\d\.\d", body), (lang, text)  # no decimal point ...
    if re.search(r"\d\.\d", source):
        assert re.search(r"\d,\d", body), (lang, text)  # ... but a decimal comma


@cache
def leak_messages() -> tuple[str, ...]:
    """The leak rule's messages from real detector signals, and a repair with the comment."""
    return (*engine_messages(), lr.repaired_message("dilnoza", HOSTILE))


# ------------------------------------------------------------------------------ local peers


@pytest.fixture
def telegram(receiver: Receiver) -> Receiver:
    """A local HTTP server answering like the Bot API's sendMessage."""
    return receiver


def _routes_per_language(db: psycopg.Connection[Any], zone_id: int) -> None:
    """A Telegram chat and an e-mail address per language, each route saying its language."""
    for lang in LANGS:
        events = ["activate", "clear", "ack", "repaired"]
        add_route(db, "telegram", f"chat-{lang}", zone_id=zone_id, language=lang, events=events)
        add_route(db, "email", f"{lang}@suv.example", zone_id=zone_id, language=lang, events=events)


def _channels(telegram: Receiver, port: int) -> dict[str, Channel]:
    return {
        "telegram": TelegramChannel("123:abc", base_url=telegram.url),
        "email": EmailChannel("127.0.0.1", port, "alarms@suv.example"),
    }


def _delivered(
    telegram: Receiver, box: Mailbox
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[EmailMessage]]]:
    """The Telegram requests by chat and the e-mails by language (the address's user)."""
    chats: dict[str, list[dict[str, Any]]] = {}
    for r in telegram.requests:
        assert r["path"] == "/bot123:abc/sendMessage"
        body = json.loads(r["body"])
        chats.setdefault(body["chat_id"].removeprefix("chat-"), []).append(body)
    mails: dict[str, list[EmailMessage]] = {}
    for _sender, rcpt, content in box.messages:
        mail = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        mails.setdefault(rcpt[0].split("@")[0], []).append(mail)
    return chats, mails


def _leak_alarms(db: psycopg.Connection[Any], site: Site, msgs: tuple[str, ...]) -> str:
    """One leak alarm per message (its event: raised, cleared or repaired, as the leak rule
    writes them), each queued by the real outbox code. Returns the rule's code."""
    code = f"DMA{site.zone_id}-sizish"
    rid = add_rule(db, code, "leak", zone_id=site.zone_id, priority="high")
    for i, msg in enumerate(msgs):
        event, state = "activate", "unack"
        if msg.startswith("leak no longer seen"):
            event, state = "clear", "rtn_unack"
        elif msg.startswith("leak repaired"):
            event, state = "repaired", "normal"
        ts = T0 + timedelta(hours=i)
        alarm = one(
            db,
            "INSERT INTO alarms (rule_id, subject, kind, priority, position_id, zone_id, state, "
            "raised_at, message, leak_lps) SELECT id, %s, 'leak', priority, position_id, "
            "zone_id, %s, %s, %s, 2.4 FROM alarm_rules WHERE id = %s RETURNING id",
            (f"m{i}", state, ts, msg, rid),
        )[0]
        ev = one(
            db,
            "INSERT INTO alarm_events (alarm_id, rule_id, subject, ts, event, from_state, "
            "to_state, user_name, comment, message) VALUES (%s, %s, %s, %s, %s, 'normal', %s, "
            "%s, %s, %s) RETURNING id",
            (
                alarm, rid, f"m{i}", ts, event, state,
                "dilnoza" if event == "repaired" else None,
                HOSTILE if event == "repaired" else None,
                msg,
            ),
        )[0]  # fmt: skip
        queue_notifications(db, ev, alarm, event, annunciated=True)
    return code


# ------------------------------------------------------------------------------ the tests


def test_leak_alarms_reach_telegram_and_email_in_the_routes_language(
    db: psycopg.Connection[Any], site_factory: Any, telegram: Receiver, smtp: Any
) -> None:
    port, box = smtp
    site = site_factory()
    msgs = leak_messages()
    assert any(m.startswith("leak about") and "found by shape" in m for m in msgs), msgs
    assert any(m.startswith("the leak has grown") for m in msgs), msgs
    _routes_per_language(db, site.zone_id)
    code = _leak_alarms(db, site, msgs)
    res = dispatch_due(db, _channels(telegram, port), NOW)
    assert (res.sent, res.dead, res.retried) == (len(msgs) * 2 * len(LANGS), 0, 0), res.errors
    chats, mails = _delivered(telegram, box)
    zone = one(db, "SELECT code FROM zones WHERE id = %s", (site.zone_id,))[0]
    data = (code, zone, "dilnoza", HOSTILE, OWN_WORDS)
    for lang in LANGS:
        assert len(chats[lang]) == len(mails[lang]) == len(msgs)
        for tg, mail, msg in zip(chats[lang], mails[lang], msgs, strict=True):
            assert "parse_mode" not in tg  # plain text: nothing in it is markup
            text = tg["text"]
            assert_in_language(text, lang, msg, *data)
            body = mail.get_content().replace("\r\n", "\n")
            assert mail.get_content_type() == "text/plain"
            subject = str(mail["Subject"])
            assert_in_language(body, lang, msg, *data)
            assert not english_left(subject, *data), (lang, subject)
            assert body.strip() == text and subject == f"[suvnet] {text.splitlines()[0]}"
            if "dilnoza" in text:  # the repair: the comment arrives as it was written
                assert HOSTILE in text and HOSTILE in body
                assert "&lt;" not in text and "&amp;" not in body
    # the words of each language are there (not an English text with the words taken out)
    assert "sizib chiqish" in chats["uz"][0]["text"] and "YUQORI" in chats["uz"][0]["text"]
    assert "сизиб чиқиш" in chats["uz_Cyrl"][0]["text"]
    assert "утечка" in chats["ru"][0]["text"] and "ВЫСОКИЙ" in chats["ru"][0]["text"]
    repaired = [m for m in chats["ru"] if "dilnoza" in m["text"]]
    assert len(repaired) == 3 and all("утечка устранена" in m["text"] for m in repaired)
    assert f"утечку устранил dilnoza: {HOSTILE}" in repaired[-1]["text"]  # in the message too


def test_a_point_alarm_and_its_hostile_acknowledgement(
    db: psycopg.Connection[Any], site_factory: Any, telegram: Receiver, smtp: Any
) -> None:
    """A low-pressure alarm raised by the engine, then acknowledged with a comment that
    looks like markup and a spreadsheet formula: both notifications in each language."""
    port, box = smtp
    site = site_factory()
    _routes_per_language(db, site.zone_id)
    code = f"lo-{site.pressure_point}"
    add_rule(db, code, "low", point_id=site.pressure_point, limit_value=2.25, unit="bar")
    add_readings(db, site.pressure_point, [(T0, 3.0, 0), (T0 + timedelta(minutes=1), 1.5, 0)])
    run_pass(db, NOW, start=T0 - timedelta(hours=1))
    act(db, code, "ack", user="dilnoza", comment=HOSTILE, now=NOW)
    res = dispatch_due(db, _channels(telegram, port), NOW + timedelta(minutes=1))
    assert (res.sent, res.dead) == (2 * 2 * len(LANGS), 0), res.errors
    chats, mails = _delivered(telegram, box)
    zone = one(db, "SELECT code FROM zones WHERE id = %s", (site.zone_id,))[0]
    data = (code, zone, "dilnoza", HOSTILE)
    for lang in LANGS:
        raised, acked = (m["text"] for m in chats[lang])
        for text in (raised, acked):
            assert_in_language(text, lang, "1.5 bar below limit 2.25 bar", *data)
            assert "1,5 bar" in text and "2,25 bar" in text
        assert HOSTILE not in raised
        assert f": {HOSTILE}\n" in acked and "dilnoza" in acked  # literal, on its own line
        mail = mails[lang][1]
        assert f": {HOSTILE}\n" in mail.get_content().replace("\r\n", "\n")
    assert chats["uz"][1]["text"].startswith("O")  # "OʻRTA · signal tasdiqlandi"
    assert "signal tasdiqlandi" in chats["uz"][1]["text"]
    assert "сигнал тасдиқланди" in chats["uz_Cyrl"][1]["text"]
    assert "сигнал квитирован" in chats["ru"][1]["text"]
    assert "Комментарий: " + HOSTILE in chats["ru"][1]["text"]


def test_the_setting_is_the_language_of_routes_that_name_none(
    db: psycopg.Connection[Any],
    site_factory: Any,
    telegram: Receiver,
    smtp: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SUVNET_ALARMS_LANGUAGE=ru: channels made from the settings write Russian, except to a
    route that says its own language; the webhook keeps its machine fields and adds the
    text."""
    port, box = smtp
    site = site_factory()
    monkeypatch.setenv("SUVNET_ALARMS_LANGUAGE", "ru")
    s = AlarmSettings(
        telegram_token="123:abc",
        telegram_base_url=telegram.url,
        smtp_host="127.0.0.1",
        smtp_port=port,
    )
    assert s.language == "ru"
    channels = channels_from_settings(s)
    channels["webhook"] = WebhookChannel("k", clock=NOW.timestamp, language="ru")
    add_route(db, "telegram", "chat-ru", zone_id=site.zone_id)  # no language: the setting's
    add_route(db, "telegram", "chat-uz", zone_id=site.zone_id, language="uz")
    add_route(db, "email", "ru@suv.example", zone_id=site.zone_id)
    add_route(db, "webhook", telegram.url + "/hook", zone_id=site.zone_id)
    msg = next(m for m in leak_messages() if "found by shape" in m)
    _leak_alarms(db, site, (msg,))
    res = dispatch_due(db, channels, NOW)
    assert (res.sent, res.dead) == (4, 0), res.errors
    hook = next(r for r in telegram.requests if r["path"] == "/hook")
    telegram.requests.remove(hook)
    chats, mails = _delivered(telegram, box)
    assert chats["ru"][0]["text"].startswith("ВЫСОКИЙ · сигнал возник · Утечка")
    assert chats["uz"][0]["text"].startswith("YUQORI · signal paydo boʻldi · Oqish")
    assert str(mails["ru"][0]["Subject"]).startswith("[suvnet] ВЫСОКИЙ · сигнал возник")
    assert mails["ru"][0]["Content-Language"] == "ru"
    payload = json.loads(hook["body"])
    assert payload["event"] == "activate" and payload["priority"] == "high"
    assert payload["state"] == "unack" and payload["message"] == msg  # the machine fields
    assert payload["text"] == chats["ru"][0]["text"]


def test_an_unknown_language_is_refused_clearly(
    db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUVNET_ALARMS_LANGUAGE", "uzbek")
    with pytest.raises(ValidationError) as err:
        AlarmSettings()
    assert "SUVNET_ALARMS_LANGUAGE must be one of uz, uz_Cyrl, ru, en" in str(err.value)
    assert "'uzbek'" in str(err.value)
    monkeypatch.setenv("SUVNET_ALARMS_LANGUAGE", "UZ_CYRL")  # letter case is forgiven
    assert AlarmSettings().language == "uz_Cyrl"
    with pytest.raises(ValueError, match="SUVNET_ALARMS_LANGUAGE must be one of"):
        TelegramChannel("t", language="de")
    with pytest.raises(psycopg.errors.CheckViolation), db.transaction():
        add_route(db, "telegram", "chat-de", language="de")


def test_the_languages_are_the_catalogs() -> None:
    assert set(messages.LANGUAGES) == CODES and messages.DEFAULT_LANGUAGE == "uz"


def test_every_event_is_named_in_every_language() -> None:
    """Each alarm event a notification can be about reads in each language, not as its code."""
    payload = {"priority": "urgent", "kind": "low", "state": "ack", "rule": "P1", "zone": "Z1"}
    for lang in LANGS:
        tr = messages.catalog(lang)
        for event, msgid in messages.EVENT.items():
            text = messages.notification({**payload, "event": event}, tr).text
            assert tr.gettext(msgid) != msgid and event not in text, (lang, event, text)
            assert not english_left(text, "P1", "Z1"), (lang, text)


def test_a_close_message_reads_with_its_detail() -> None:
    """A message the rule writes when a leak is no longer seen, in Russian."""
    gone = lr.gone_message(
        lk.LeakSignal("close", 0.0, "night", lk.Size(0.4, 0.0, 1.2), "not seen for 7 days")
    )
    note = messages.notification(
        {"event": "clear", "priority": "high", "kind": "leak", "state": "rtn_unack",
         "rule": "L1", "message": gone, "ts": "2026-03-01T19:30:00+00:00"},
        messages.catalog("ru"),
    )  # fmt: skip
    assert note.text.splitlines() == [
        "ВЫСОКИЙ · сигнал снят · Утечка",
        "Правило: L1 · Состояние: Снято, не квитировано",
        (
            "утечка больше не видна (не видна 7 дней); последняя оценка около 0,4 л/с (35 м³ "
            "в сутки; с вероятностью 90 % от 0,0 до 1,2 л/с)"
        ),
        "Время: 02.03.2026 00:30 (ташкентское время)",
    ]


def test_a_comment_cannot_forge_a_line() -> None:
    """A comment with line breaks stays on its own line: it cannot pass for a state line."""
    note = messages.notification(
        {"event": "ack", "priority": "high", "kind": "low", "state": "ack", "rule": "P1",
         "user": "aziz", "comment": "brigada yuborildi\nHolat: Meʼyorda"},
        messages.catalog("uz"),
    )  # fmt: skip
    lines = note.text.splitlines()
    assert lines[-1] == "Izoh: brigada yuborildi Holat: Meʼyorda"
    assert lines[1] == "Qoida: P1 · Holat: Tasdiqlangan"
    assert [ln for ln in lines if ln.startswith("Holat")] == []

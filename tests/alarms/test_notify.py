"""Notifications against real local receivers: HTTP (webhook, Telegram stand-in, Grafana
stand-in) and SMTP (aiosmtpd); retries, dead letters, routing, nothing for shelved alarms."""

from __future__ import annotations

import email
import email.policy
import json
import random
import socket
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from alarms.actions import act
from alarms.engine import run_pass
from alarms.notify import (
    Channel,
    EmailChannel,
    GrafanaChannel,
    TelegramChannel,
    WebhookChannel,
    dispatch_due,
    sign,
)
from tests.alarms.conftest import T0, Receiver, add_readings, add_route, add_rule, one

NOW = T0 + timedelta(days=1)
pytestmark = pytest.mark.usefixtures("no_routes")  # the module's database is shared


def _raise_alarm(db: psycopg.Connection[Any], site: Any, priority: str = "high") -> int:
    rid = add_rule(
        db,
        f"lo-{site.pressure_point}",
        "low",
        point_id=site.pressure_point,
        limit_value=2.0,
        priority=priority,
        unit="bar",
    )
    add_readings(db, site.pressure_point, [(T0, 3.0, 0), (T0 + timedelta(minutes=1), 1.0, 0)])
    run_pass(db, NOW, start=T0 - timedelta(hours=1))
    return rid


def test_webhook_telegram_email_delivery_and_routing(
    db: psycopg.Connection[Any], site_factory: Any, receiver: Receiver, smtp: Any
) -> None:
    site = site_factory()
    other = site_factory()
    port, box = smtp
    add_route(db, "webhook", receiver.url + "/hook", zone_id=site.zone_id)
    add_route(db, "telegram", "-1001", min_priority="high")
    add_route(db, "email", "dispatch@example.org", zone_id=site.zone_id)
    add_route(db, "webhook", receiver.url + "/other-zone", zone_id=other.zone_id)
    add_route(db, "email", "boss@example.org", min_priority="urgent")
    _raise_alarm(db, site, "high")
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel("s3cret"),
        "telegram": TelegramChannel("123:abc", base_url=receiver.url),
        "email": EmailChannel("127.0.0.1", port, "alarms@suvnet.local"),
    }
    res = dispatch_due(db, channels, NOW)
    assert (res.sent, res.retried, res.dead) == (3, 0, 0)
    paths = sorted(r["path"] for r in receiver.requests)
    assert paths == ["/bot123:abc/sendMessage", "/hook"]
    hook = next(r for r in receiver.requests if r["path"] == "/hook")
    ts = hook["headers"]["X-Suvnet-Timestamp"]
    assert hook["headers"]["X-Suvnet-Signature"] == sign("s3cret", ts, hook["body"])
    assert hook["headers"]["X-Suvnet-Signature"] != sign("wrong", ts, hook["body"])
    payload = json.loads(hook["body"])
    assert payload["event"] == "activate" and payload["priority"] == "high"
    assert payload["zone"].startswith("Z") and "below limit 2 bar" in payload["message"]
    tg = json.loads(next(r for r in receiver.requests if "sendMessage" in r["path"])["body"])
    # people read it in the default language, Uzbek (see tests/alarms/test_notify_language.py)
    assert payload["text"].startswith("YUQORI · signal paydo boʻldi")
    assert tg["chat_id"] == "-1001" and tg["text"].startswith("YUQORI · signal paydo boʻldi")
    assert [m[1] for m in box.messages] == [["dispatch@example.org"]]
    mail = email.message_from_bytes(box.messages[0][2], policy=email.policy.default)
    assert str(mail["Subject"]).strip().startswith("[suvnet] YUQORI · signal paydo boʻldi")
    # nothing is due any more
    assert dispatch_due(db, channels, NOW + timedelta(hours=1)).sent == 0


def test_retry_after_failure_then_dead_letter(
    db: psycopg.Connection[Any], site_factory: Any, receiver: Receiver
) -> None:
    site = site_factory()
    receiver.fail = 1
    add_route(db, "webhook", receiver.url + "/flaky", zone_id=site.zone_id)
    with socket.socket() as s:  # a port where nobody listens
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    add_route(db, "webhook", f"http://127.0.0.1:{dead_port}/gone", zone_id=site.zone_id)
    _raise_alarm(db, site)
    ch: dict[str, Channel] = {"webhook": WebhookChannel("k", timeout_s=2)}
    rng = random.Random(7)
    r1 = dispatch_due(db, ch, NOW, max_attempts=3, retry_base_s=5, retry_cap_s=60, rng=rng)
    assert (r1.sent, r1.retried, r1.dead) == (0, 2, 0)
    due = one(
        db,
        "SELECT min(next_attempt_at), max(attempts) FROM alarm_notifications "
        "WHERE status = 'pending'",
    )
    assert NOW + timedelta(seconds=2.5) <= due[0] <= NOW + timedelta(seconds=5) and due[1] == 1
    # not due yet: nothing is tried
    assert dispatch_due(db, ch, NOW + timedelta(seconds=1), max_attempts=3).retried == 0
    r2 = dispatch_due(db, ch, NOW + timedelta(minutes=1), max_attempts=3, rng=rng)
    assert (r2.sent, r2.retried) == (1, 1)  # the flaky receiver works now
    r3 = dispatch_due(db, ch, NOW + timedelta(hours=1), max_attempts=3, rng=rng)
    assert r3.dead == 1
    dead = one(
        db,
        "SELECT status, attempts, last_error FROM alarm_notifications WHERE target LIKE %s",
        ("%/gone",),
    )
    assert dead[0] == "dead" and dead[1] == 3 and "webhook" in dead[2]
    assert len([r for r in receiver.requests if r["path"] == "/flaky"]) == 2


def test_nothing_sent_for_shelved_or_suppressed(
    db: psycopg.Connection[Any], site_factory: Any, receiver: Receiver
) -> None:
    site = site_factory()
    add_route(
        db,
        "webhook",
        receiver.url + "/h",
        zone_id=site.zone_id,
        events=["activate", "clear", "ack", "shelve", "suppress"],
    )
    rid = add_rule(
        db,
        f"lo-{site.pressure_point}",
        "low",
        point_id=site.pressure_point,
        limit_value=2.0,
        unit="bar",
    )
    code = f"lo-{site.pressure_point}"
    add_readings(db, site.pressure_point, [(T0, 3.0, 0)])
    run_pass(db, NOW, start=T0 - timedelta(hours=1))
    act(
        db,
        code,
        "shelve",
        user="aziz",
        comment="valve work",
        now=NOW,
        until=NOW + timedelta(hours=2),
    )
    # while shelved: the pressure drops, comes back, the sensor reports comm-fail
    add_readings(
        db,
        site.pressure_point,
        [
            (T0 + timedelta(minutes=m), v, q)
            for m, v, q in [(1, 1.0, 0), (2, 3.0, 0), (3, None, 2), (4, 1.0, 0)]
        ],
    )
    run_pass(db, NOW + timedelta(minutes=5), start=T0 - timedelta(hours=1))
    n_events = one(db, "SELECT count(*) FROM alarm_events WHERE rule_id = %s", (rid,))
    assert n_events[0] >= 5  # shelve, activate, clear, suppress, unsuppress, activate
    queued = one(db, "SELECT count(*) FROM alarm_notifications")
    assert queued[0] == 0
    # the shelf expires while the pressure is still low: now it is annunciated
    run_pass(db, NOW + timedelta(hours=3), start=T0 - timedelta(hours=1))
    rows = db.execute("SELECT payload->>'event' FROM alarm_notifications").fetchall()
    assert rows == [("shelve_expired",)] or rows == []
    st = one(db, "SELECT state FROM alarm_rule_state WHERE rule_id = %s", (rid,))
    assert st[0] == "unack"


def test_grafana_annotation_contract(receiver: Receiver) -> None:
    """grafana-client posts to /api/annotations with the token and our tags and text."""
    ch = GrafanaChannel(receiver.url, "glsa_test_token")
    ch.send(
        "dash-uid",
        {
            "event": "activate",
            "ts": "2026-03-01T00:12:00+00:00",
            "rule": "P1-low",
            "kind": "low",
            "priority": "high",
            "zone": "Z1",
            "state": "unack",
            "message": "1 bar below limit 2 bar",
        },
    )
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    assert req["path"] == "/api/annotations"
    assert req["headers"]["Authorization"] == "Bearer glsa_test_token"
    body = json.loads(req["body"])
    assert body["time"] == 1772323920000
    assert body["dashboardUID"] == "dash-uid"
    assert set(body["tags"]) == {"suvnet", "alarm", "low", "high", "zone:Z1"}
    assert "P1-low" in body["text"] and "HIGH activate" in body["text"]
    receiver.fail = 1
    from alarms.errors import DeliveryError

    with pytest.raises(DeliveryError):
        ch.send("*", {"event": "clear", "ts": None, "kind": "low", "priority": "low"})


def test_worker_annotates_every_state_change_in_grafana(
    db: psycopg.Connection[Any], site_factory: Any, receiver: Receiver
) -> None:
    from alarms.notify import AlarmSettings
    from alarms.worker import ensure_grafana_route, work_once

    site = site_factory()
    s = AlarmSettings(grafana_url=receiver.url, grafana_token="tok", lookback_h=48)
    ensure_grafana_route(db, s)
    add_route(db, "webhook", receiver.url + "/people", zone_id=site.zone_id)
    code = f"lo-{site.pressure_point}"
    add_rule(db, code, "low", point_id=site.pressure_point, limit_value=2.0)
    add_readings(db, site.pressure_point, [(T0, 3.0, 0), (T0 + timedelta(minutes=1), 1.0, 0)])
    work_once(db, s, NOW)
    act(db, code, "shelve", user="aziz", comment="repair", now=NOW, until=NOW + timedelta(hours=1))
    work_once(db, s, NOW + timedelta(seconds=1))
    grafana = [json.loads(r["body"]) for r in receiver.requests if r["path"] == "/api/annotations"]
    people = [json.loads(r["body"]) for r in receiver.requests if r["path"] == "/people"]
    assert [g["text"].split()[1] for g in grafana] == ["activate", "shelve"]
    assert [p["event"] for p in people] == ["activate"]  # nobody is told about the shelving


def test_an_alarm_flood_sends_the_flood_alarm_and_holds_the_rest(
    db: psycopg.Connection[Any], site_factory: Any, receiver: Receiver
) -> None:
    """12 alarms at one position, 30 s apart: the first 10 are sent; from the 11th the
    position is in flood, so the flood alarm is sent and the 11th and 12th are held. Grafana
    annotations are never held."""
    pos = one(db, "INSERT INTO alarm_positions (code) VALUES ('flood-desk') RETURNING id")[0]
    add_route(db, "webhook", receiver.url + "/desk")
    add_route(db, "grafana", "all")
    for i in range(12):
        s = site_factory()
        add_rule(
            db, f"fl-{s.pressure_point}", "low", point_id=s.pressure_point, limit_value=2.0,
            position_id=pos, unit="bar",
        )  # fmt: skip
        add_readings(
            db,
            s.pressure_point,
            [(T0 - timedelta(minutes=1), 3.0, 0), (T0 + timedelta(seconds=30 * i + 1), 1.0, 0)],
        )
    run_pass(db, NOW, start=T0 - timedelta(hours=1))
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel("k"),
        "grafana": GrafanaChannel(receiver.url, "glsa_test_token"),
    }
    res = dispatch_due(db, channels, NOW)
    sent = [json.loads(r["body"]) for r in receiver.requests if r["path"] == "/desk"]
    individual = [p for p in sent if p["kind"] == "low"]
    floods = [p for p in sent if p["kind"] == "flood"]
    assert len(individual) == 10 and all(p["event"] == "activate" for p in individual)
    assert [p["event"] for p in floods] == ["activate", "clear"]
    assert res.held == 2 and res.dead == 0
    held = db.execute(
        "SELECT n.payload->>'rule', n.last_error FROM alarm_notifications n "
        "WHERE n.status = 'held' ORDER BY n.id"
    ).fetchall()
    assert len(held) == 2 and all("alarm flood (flood-" in h[1] for h in held)
    assert {h[0] for h in held}.isdisjoint({p["rule"] for p in individual})
    annotations = [r for r in receiver.requests if r["path"] == "/api/annotations"]
    assert len(annotations) == 12 + 2  # every state change, the flood's too
    assert res.sent == 10 + 2 + 14
    # a second pass holds or sends nothing again
    again = dispatch_due(db, channels, NOW)
    assert (again.sent, again.held) == (0, 0)

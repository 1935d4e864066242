"""Notification channels and the outbox dispatcher.

Transitions queue rows in ``alarm_notifications`` (one per matching route, in the same
transaction as the transition). :func:`dispatch_due` sends the due rows through pluggable
channels; a failure is retried with capped exponential backoff and jitter, and after
``max_attempts`` the row becomes a dead letter (``status = 'dead'`` with the last error).

Alarm floods: a notification to people (any channel but ``grafana``) of an alarm whose event
falls while its position is in flood (a ``flood`` alarm of that position raised at or before
the event and not cleared by then) is not sent but marked ``held``; the flood alarm's own
notification tells the operators instead, and every alarm stays in the alarm list.

Channels: ``webhook`` (JSON POST signed with HMAC-SHA256), ``telegram`` (Bot API sendMessage),
``email`` (SMTP) and ``grafana`` (annotations through grafana-client).

Language: what people read (the Telegram message, the e-mail's subject and body, the
webhook's ``text`` field) is in the route's ``language``, else ``SUVNET_ALARMS_LANGUAGE``
(Uzbek Latin by default), put into words by :mod:`alarms.messages` (the same translator as the
staff alarm page). The webhook's other fields are the machine codes, unchanged; Grafana
annotations keep their short code text (``HIGH activate ...``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import smtplib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import Header
from email.mime.text import MIMEText
from typing import Any, Protocol

import httpx
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alarms import messages
from alarms.errors import DeliveryError
from alarms.store import Conn
from suvnet.backoff import BackoffPolicy

log = logging.getLogger(__name__)


class AlarmSettings(BaseSettings):
    """Settings of the alarm worker and its notification channels (``SUVNET_ALARMS_*``)."""

    model_config = SettingsConfigDict(env_prefix="SUVNET_ALARMS_", extra="ignore", frozen=True)

    poll_s: float = Field(0.5, gt=0, description="seconds between polls for new readings")
    lookback_h: float = Field(
        24.0, ge=0, description="a rule seen for the first time starts this many hours back"
    )
    batch: int = Field(5000, ge=10, description="readings per rule per transaction")
    webhook_secret: str = Field("", description="HMAC-SHA256 key for webhook signatures")
    telegram_token: str = ""
    telegram_base_url: str = "https://api.telegram.org"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "suvnet-alarms@localhost"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    max_attempts: int = Field(6, ge=1, description="deliveries tried before a dead letter")
    retry_base_s: float = Field(5.0, gt=0)
    retry_cap_s: float = Field(600.0, gt=0)
    http_timeout_s: float = Field(10.0, gt=0)
    grafana_url: str | None = None
    grafana_token: str | None = None
    language: str = Field(
        messages.DEFAULT_LANGUAGE,
        description="language of the notifications: uz, uz_Cyrl, ru or en (a route may say "
        "its own)",
    )

    @field_validator("language", mode="before")
    @classmethod
    def _known_language(cls, value: object) -> str:
        return language_code(value)


def language_code(value: object) -> str:
    """A notification language as written in a setting (any letter case) -> its catalog
    code; ValueError naming the setting and the choices for anything else."""
    for code in messages.LANGUAGES:
        if isinstance(value, str) and value.strip().lower() == code.lower():
            return code
    raise ValueError(
        f"SUVNET_ALARMS_LANGUAGE must be one of {', '.join(messages.LANGUAGES)} "
        f"(Uzbek Latin, Uzbek Cyrillic, Russian, English), not {value!r}"
    )


class Channel(Protocol):
    name: str

    def send(self, target: str, payload: Mapping[str, Any], language: str | None = None) -> None:
        """Deliver one notification (in ``language``, else the channel's own); raise
        DeliveryError on failure."""


def render(p: Mapping[str, Any], language: str) -> messages.Notification:
    """The notification of one alarm event in ``language`` (subject and text)."""
    return messages.notification(p, messages.catalog(language))


def render_text(p: Mapping[str, Any], language: str = messages.DEFAULT_LANGUAGE) -> str:
    """The text of an alarm notification for people, in ``language``."""
    return render(p, language).text


def annotation_text(p: Mapping[str, Any]) -> str:
    """The short code text of a Grafana annotation (``HIGH activate [Z1] P1-low (unack) ...``)."""
    zone = f" [{p.get('zone')}]" if p.get("zone") else ""
    who = f" by {p['user']}" if p.get("user") else ""
    comment = f": {p['comment']}" if p.get("comment") else ""
    return (
        f"{str(p.get('priority', '')).upper()} {p.get('event')}{zone} {p.get('rule')} "
        f"({p.get('state')}) {p.get('message') or ''}{who}{comment}"
    ).strip()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class WebhookChannel:
    """JSON POST of the alarm's machine fields, signed; ``text`` adds the notification for
    people in the language of the route (or of the channel)."""

    secret: str
    timeout_s: float = 10.0
    name: str = "webhook"
    clock: Any = time.time
    language: str = messages.DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        self.language = language_code(self.language)

    def send(self, target: str, payload: Mapping[str, Any], language: str | None = None) -> None:
        text = render_text(payload, language or self.language)
        body = json.dumps({**payload, "text": text}, sort_keys=True, default=str).encode()
        ts = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Suvnet-Timestamp": ts,
            "X-Suvnet-Signature": sign(self.secret, ts, body),
        }
        try:
            r = httpx.post(target, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {target}: {exc}") from exc
        if r.status_code >= 300:
            raise DeliveryError(f"webhook {target}: HTTP {r.status_code}")


@dataclass
class TelegramChannel:
    """Bot API ``sendMessage`` as plain text: no ``parse_mode``, so a user's comment such as
    ``<b>x</b>`` is shown as written, never as markup, and needs no escaping."""

    token: str
    base_url: str = "https://api.telegram.org"
    timeout_s: float = 10.0
    name: str = "telegram"
    language: str = messages.DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        self.language = language_code(self.language)

    def send(self, target: str, payload: Mapping[str, Any], language: str | None = None) -> None:
        url = f"{self.base_url.rstrip('/')}/bot{self.token}/sendMessage"
        text = render_text(payload, language or self.language)
        try:
            r = httpx.post(url, json={"chat_id": target, "text": text}, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"telegram chat {target}: {type(exc).__name__}") from exc
        ok = r.status_code == 200 and bool(r.json().get("ok", False))
        if not ok:
            raise DeliveryError(f"telegram chat {target}: HTTP {r.status_code} {r.text[:200]}")


@dataclass
class EmailChannel:
    host: str
    port: int
    sender: str
    user: str = ""
    password: str = ""
    starttls: bool = False
    timeout_s: float = 10.0
    name: str = "email"
    language: str = messages.DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        self.language = language_code(self.language)

    def send(self, target: str, payload: Mapping[str, Any], language: str | None = None) -> None:
        """A plain-text e-mail: the subject and the body wholly in the language."""
        lang = language or self.language
        note = render(payload, lang)
        # the old API on purpose: with its Header the space between two words that fall into
        # two encoded words stays (the new EmailMessage of Python 3.11 folds a long Cyrillic
        # subject into encoded words without it: "чиқиштаъмирланди")
        msg = MIMEText(note.text, "plain", "utf-8")
        msg["From"] = self.sender
        msg["To"] = target
        subject = Header(f"[suvnet] {note.subject[:120]}", "utf-8")
        msg["Subject"] = subject  # type: ignore[assignment]  # compat32 takes a Header
        msg["Content-Language"] = _CONTENT_LANGUAGE.get(lang, lang)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"e-mail to {target}: {exc}") from exc


@dataclass
class GrafanaChannel:
    """Alarm state changes as Grafana annotations (tags: suvnet, alarm, kind, priority, zone)."""

    url: str
    token: str
    timeout_s: float = 10.0
    name: str = "grafana"

    def send(self, target: str, payload: Mapping[str, Any], language: str | None = None) -> None:
        from grafana_client.api import GrafanaApi

        api = GrafanaApi.from_url(self.url, credential=self.token, timeout=self.timeout_s)
        ts = payload.get("ts")
        when = datetime.fromisoformat(str(ts)) if ts else None
        tags = ["suvnet", "alarm", str(payload.get("kind")), str(payload.get("priority"))]
        if payload.get("zone"):
            tags.append(f"zone:{payload['zone']}")
        uid = target if target not in ("", "*") else None
        try:
            api.annotations.add_annotation(
                dashboard_uid=uid,
                time_from=int(when.timestamp() * 1000) if when else None,
                tags=tags,
                text=annotation_text(payload),
            )
        except Exception as exc:  # grafana-client raises many kinds
            raise DeliveryError(f"grafana annotation: {exc}") from exc
        finally:
            api.client.s.close()  # grafana-client keeps a pooled session per API object


_CONTENT_LANGUAGE = {"uz": "uz-Latn", "uz_Cyrl": "uz-Cyrl", "ru": "ru", "en": "en"}


def channels_from_settings(s: AlarmSettings) -> dict[str, Channel]:
    out: dict[str, Channel] = {
        "webhook": WebhookChannel(s.webhook_secret, s.http_timeout_s, language=s.language),
        "email": EmailChannel(
            s.smtp_host,
            s.smtp_port,
            s.smtp_from,
            s.smtp_user,
            s.smtp_password,
            s.smtp_starttls,
            s.http_timeout_s,
            language=s.language,
        ),
    }
    if s.telegram_token:
        out["telegram"] = TelegramChannel(
            s.telegram_token, s.telegram_base_url, s.http_timeout_s, language=s.language
        )
    if s.grafana_url and s.grafana_token:
        out["grafana"] = GrafanaChannel(s.grafana_url, s.grafana_token, s.http_timeout_s)
    return out


@dataclass
class DispatchResult:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)


def retry_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with jitter for the ``attempt``-th failure."""
    pol = BackoffPolicy(base=base, cap=cap)
    hi = pol.ceiling(attempt)
    return rng.uniform(min(hi, base * pol.jitter_floor), hi)


def _send(
    channels: Mapping[str, Channel],
    channel: str,
    target: str,
    payload: Mapping[str, Any],
    language: str | None,
) -> None:
    ch = channels.get(channel)
    if ch is None:
        raise DeliveryError(f"channel {channel!r} is not configured")
    ch.send(target, payload, language)


_DUE_SQL = """
SELECT n.id, n.channel, n.target, n.payload, n.attempts, ro.language,
       (SELECT fr.code FROM alarms f JOIN alarm_rules fr ON fr.id = f.rule_id
        WHERE n.channel <> 'grafana' AND a.kind <> 'flood' AND f.kind = 'flood'
          AND f.run_id = a.run_id AND f.position_id = a.position_id
          AND f.raised_at <= e.ts AND (f.cleared_at IS NULL OR f.cleared_at > e.ts)
        LIMIT 1) AS flood
FROM alarm_notifications n
JOIN alarm_events e ON e.id = n.event_id
LEFT JOIN alarm_routes ro ON ro.id = n.route_id
LEFT JOIN alarms a ON a.id = e.alarm_id
WHERE n.status = 'pending' AND n.next_attempt_at <= %s
ORDER BY n.id LIMIT %s
FOR UPDATE OF n SKIP LOCKED
"""
"""The due notifications with their route's language (NULL: the channel's); ``flood`` names
the flood rule when the alarm's position was in flood at the event's time (the notification
is then held, see the module's docstring)."""


def dispatch_due(
    conn: Conn,
    channels: Mapping[str, Channel],
    now: datetime,
    *,
    max_attempts: int = 6,
    retry_base_s: float = 5.0,
    retry_cap_s: float = 600.0,
    limit: int = 100,
    rng: random.Random | None = None,
) -> DispatchResult:
    """Send the notifications that are due at ``now``; safe to run from several workers."""
    rng = rng or random.Random()
    res = DispatchResult()
    with conn.transaction():
        rows = conn.execute(_DUE_SQL, (now, limit)).fetchall()
        for nid, channel, target, payload, attempts, language, flood in rows:
            if flood is not None:
                conn.execute(
                    "UPDATE alarm_notifications SET status = 'held', last_error = %s WHERE id = %s",
                    (f"held: alarm flood ({flood}); the flood alarm was sent instead", nid),
                )
                res.held += 1
                continue
            try:
                _send(channels, channel, target, payload, language)
            except DeliveryError as exc:
                n = attempts + 1
                if n >= max_attempts:
                    conn.execute(
                        "UPDATE alarm_notifications SET status = 'dead', attempts = %s, "
                        "last_error = %s WHERE id = %s",
                        (n, str(exc), nid),
                    )
                    res.dead += 1
                    log.warning(
                        "notification %s is a dead letter after %s attempts: %s", nid, n, exc
                    )
                else:
                    delay = retry_delay(n, retry_base_s, retry_cap_s, rng)
                    conn.execute(
                        "UPDATE alarm_notifications SET attempts = %s, last_error = %s, "
                        "next_attempt_at = %s WHERE id = %s",
                        (n, str(exc), now + timedelta(seconds=delay), nid),
                    )
                    res.retried += 1
                res.errors.append(str(exc))
                continue
            conn.execute(
                "UPDATE alarm_notifications SET status = 'sent', attempts = attempts + 1, "
                "sent_at = %s, last_error = NULL WHERE id = %s",
                (now, nid),
            )
            res.sent += 1
    if res.held:
        log.info("%d notification(s) held back during an alarm flood", res.held)
    return res

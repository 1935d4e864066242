"""Debt prevention (dunning): stages by days overdue and debt, pluggable channels.

Stages live in the ``dunning_stages`` table (code, position, min_days_overdue, min_debt_tiyin,
account kinds, channels). For every debtor the highest stage it qualifies for is carried out
once per debt episode: a message goes through each of the stage's channels (SMS gateway,
Telegram, a PDF letter) and every attempt is recorded in ``dunning_events``. The claim stage
of a legal entity adds a reconciliation statement (akt sverki) from the oldest unpaid charge
to the letter, for the legal department. As soon as the
debt is paid the episode is closed with a ``stopped`` event and nothing more is sent.

Days overdue count from the payment due date of the oldest unpaid charge (FIFO): its value
date (the last day of the billed month) plus ``payment_due_day`` days.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg

from billing.balances import aging_by_account
from billing.branches import (
    Contract,
    Provider,
    RequisitesMissingError,
    Seller,
    account_contracts,
    seller_of_account,
)
from billing.config import BillingConfig
from billing.documents import money, render_letter, render_statement, statement_data
from billing.errors import ChannelError, NoContactError
from billing.paylinks import best_link

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DunningMessage:
    account_id: int
    number: str
    name: str
    kind: str
    phone: str | None
    telegram_chat_id: str | None
    address: str
    stage: str
    title: str
    debt_tiyin: int
    days_overdue: int
    text: str
    today: date
    statement_pdf: bytes | None = None  # the claim package: akt sverki for the legal dept.
    seller: Seller | None = None
    """Whose letter it is: the account's branch's requisites (None: the utility's)."""


class Channel(Protocol):
    """A way to reach a customer. ``send`` returns a detail (message id, file) or raises
    :class:`ChannelError`."""

    name: str

    def send(self, msg: DunningMessage) -> str: ...


class HttpSmsGateway:
    """SMS through an HTTP gateway: POST JSON {"to", "from", "text"} with a bearer token.

    Most Uzbek SMS aggregators accept this shape or need only a thin adapter; the URL and the
    token come from the settings.
    """

    name = "sms"

    def __init__(self, url: str, token: str | None, sender: str, timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.sender = sender
        self.timeout = timeout

    def send(self, msg: DunningMessage) -> str:
        if not msg.phone:
            raise NoContactError("the account has no phone number")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            r = httpx.post(
                self.url,
                json={"to": msg.phone, "from": self.sender, "text": msg.text},
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"SMS gateway unreachable: {exc}") from exc
        if r.status_code >= 300:
            raise ChannelError(f"SMS gateway answered {r.status_code}: {r.text[:200]}")
        return r.text[:200]


class TelegramChannel:
    """Telegram Bot API ``sendMessage`` to the chat id stored on the account."""

    name = "telegram"

    def __init__(self, api_url: str, token: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def send(self, msg: DunningMessage) -> str:
        if not msg.telegram_chat_id:
            raise NoContactError("the account has no Telegram chat")
        try:
            r = httpx.post(
                f"{self.api_url}/bot{self.token}/sendMessage",
                json={"chat_id": msg.telegram_chat_id, "text": msg.text},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"Telegram unreachable: {exc}") from exc
        if r.status_code >= 300:
            raise ChannelError(f"Telegram answered {r.status_code}: {r.text[:200]}")
        return "telegram ok"


class LetterChannel:
    """A PDF letter written to a folder (printed and delivered by the inspectors)."""

    name = "letter"

    def __init__(self, out_dir: Path, cfg: BillingConfig) -> None:
        self.out_dir = out_dir
        self.cfg = cfg

    def send(self, msg: DunningMessage) -> str:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{msg.today.isoformat()}-{msg.stage}-{msg.number}.pdf"
        pdf = render_letter(
            cfg=self.cfg,
            lang=self.cfg.default_language,
            title=msg.title,
            number=msg.number,
            name=msg.name,
            address=msg.address,
            debt_tiyin=msg.debt_tiyin,
            days_overdue=msg.days_overdue,
            today=msg.today,
            seller=msg.seller,
        )
        try:
            path.write_bytes(pdf)
            if msg.statement_pdf is not None:
                path.with_name(path.stem + "-akt-sverki.pdf").write_bytes(msg.statement_pdf)
        except OSError as exc:
            raise ChannelError(f"cannot write letter {path}: {exc}") from exc
        return str(path)


def channels_from_config(cfg: BillingConfig, out_dir: Path) -> dict[str, Channel]:
    out: dict[str, Channel] = {"letter": LetterChannel(out_dir, cfg)}
    if cfg.sms_gateway_url:
        out["sms"] = HttpSmsGateway(cfg.sms_gateway_url, cfg.sms_gateway_token, cfg.sms_sender)
    if cfg.telegram_bot_token and cfg.telegram_api_url:
        out["telegram"] = TelegramChannel(cfg.telegram_api_url, cfg.telegram_bot_token)
    return out


@dataclass(frozen=True)
class Stage:
    code: str
    position: int
    min_days: int
    min_debt: int
    kinds: tuple[str, ...]
    channels: tuple[str, ...]
    title_uz: str
    title_ru: str


@dataclass
class DunningResult:
    actions: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    stopped: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    """Branches whose letters could not be made (code: why); their debtors' stages wait."""


def pick_stage(stages: list[Stage], kind: str, days: int, debt: int) -> Stage | None:
    """The highest stage this debtor qualifies for (pure)."""
    ok = [s for s in stages if kind in s.kinds and days >= s.min_days and debt >= s.min_debt]
    return max(ok, key=lambda s: s.position) if ok else None


def message_text(lang: str, number: str, debt: int, days: int, link: str | None) -> str:
    if lang == "ru":
        text = (
            f"Уважаемый абонент! По лицевому счёту {number} долг за воду {money(debt)} сум "
            f"({days} дн. просрочки). Пожалуйста, оплатите."
        )
    else:
        text = (
            f"Hurmatli abonent! {number} hisob raqami boʻyicha suv uchun {money(debt)} soʻm "
            f"qarzdorlik bor ({days} kun kechikish). Iltimos, toʻlovni amalga oshiring."
        )
    return f"{text} {link}" if link else text


@dataclass(frozen=True)
class _Account:
    """An account that is not closed, as dunning needs it."""

    id: int
    number: str
    name: str
    kind: str
    phone: str | None
    telegram_chat_id: str | None
    address: str


def run_dunning(
    conn: psycopg.Connection[Any],
    as_of: date,
    channels: Mapping[str, Channel],
    cfg: BillingConfig,
    *,
    now: datetime,
    dry_run: bool = False,
) -> DunningResult:
    """Carry out due dunning steps and close paid episodes (caller commits)."""
    stages = load_stages(conn)
    ages = aging_by_account(conn, as_of)
    done, last_stage = _open_episodes(conn)
    res = DunningResult()
    for acc in _accounts(conn):
        aging = ages.get(acc.id)
        debt = aging.debt if aging else 0
        if debt <= 0 or aging is None or aging.balance <= 0 or aging.oldest_unpaid is None:
            if acc.id in last_stage:
                res.stopped += 1
                if not dry_run:
                    _record_stop(conn, acc, last_stage[acc.id], now=now)
            continue
        days = (as_of - aging.oldest_unpaid).days - cfg.payment_due_day
        stage = pick_stage(stages, acc.kind, days, debt)
        if stage is None or stage.code in done.get(acc.id, set()):
            continue
        res.actions += 1
        own = account_contracts(conn, acc.number)
        msg = _message(acc, stage, debt, days, as_of, cfg, own)
        if "letter" in stage.channels:
            # the letter is the account's branch's; a branch without its requisites gets
            # no letter and nothing else of this stage: every channel is recorded as failed
            # with the reason, so the next run after `suvnet branches set` carries the
            # stage out whole, and the other debtors are not held up
            try:
                msg = replace(msg, seller=seller_of_account(conn, acc.id, cfg))
            except RequisitesMissingError as exc:
                res.refused[exc.branch_code] = str(exc)
                res.failed += len(stage.channels)
                if not dry_run:
                    for ch_name in stage.channels:
                        _record(conn, msg, stage, ch_name, "failed", str(exc), now=now)
                continue
            if acc.kind == "legal" and stage.code == "claim":
                lang = cfg.default_language
                sd = statement_data(conn, acc.id, aging.oldest_unpaid, as_of, lang)
                msg = replace(msg, statement_pdf=render_statement(sd, cfg, lang))
        if not dry_run:
            _deliver(conn, msg, stage, channels, res, now=now)
    return res


def load_stages(conn: psycopg.Connection[Any]) -> list[Stage]:
    """The dunning stages (table ``dunning_stages``) in order."""
    return [
        Stage(r[0], int(r[1]), int(r[2]), int(r[3]), tuple(r[4]), tuple(r[5]), r[6], r[7])
        for r in conn.execute(
            "SELECT code, position, min_days_overdue, min_debt_tiyin, kinds, channels, "
            "title_uz, title_ru FROM dunning_stages ORDER BY position"
        ).fetchall()
    ]


def _accounts(conn: psycopg.Connection[Any]) -> list[_Account]:
    rows = conn.execute(
        """SELECT a.id, a.number, a.name, a.kind, a.phone, a.telegram_chat_id,
                  concat_ws(', ', aa.mahalla_uz, aa.street_uz, aa.house_number || '-uy')
           FROM accounts a JOIN account_addresses aa ON aa.account_id = a.id
           WHERE a.status <> 'closed'"""
    ).fetchall()
    return [_Account(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def _open_episodes(conn: psycopg.Connection[Any]) -> tuple[dict[int, set[str]], dict[int, str]]:
    """Per account with an open episode (events since its last ``stopped``): the stages
    already done (sent, or skipped on every channel), and the stage of its latest event."""
    rows = conn.execute(
        """WITH last_stop AS (
               SELECT account_id, max(created_at) AS at FROM dunning_events
               WHERE status = 'stopped' GROUP BY account_id),
           per_stage AS (
               SELECT e.account_id, e.stage,
                      bool_or(e.status = 'sent') OR bool_and(e.status = 'skipped') AS done,
                      max(e.id) AS last_id
               FROM dunning_events e LEFT JOIN last_stop s ON s.account_id = e.account_id
               WHERE e.status <> 'stopped' AND (s.at IS NULL OR e.created_at > s.at)
               GROUP BY e.account_id, e.stage)
           SELECT account_id, array_agg(stage) FILTER (WHERE done),
                  (array_agg(stage ORDER BY last_id DESC))[1]
           FROM per_stage GROUP BY account_id"""
    ).fetchall()
    done: dict[int, set[str]] = {int(a): set(st or ()) for a, st, _ in rows}
    last_stage: dict[int, str] = {int(a): str(ls) for a, _, ls in rows}
    return done, last_stage


def _record_stop(
    conn: psycopg.Connection[Any], acc: _Account, last_stage: str, *, now: datetime
) -> None:
    conn.execute(
        "INSERT INTO dunning_events (account_id, stage, channel, debt_tiyin, "
        "days_overdue, created_at, status, detail) "
        "VALUES (%s, %s, '-', 0, 0, %s, 'stopped', 'debt paid')",
        (acc.id, last_stage, now),
    )
    log.info("dunning stopped for account %s: debt paid", acc.number)


def _message(  # noqa: PLR0917
    acc: _Account,
    stage: Stage,
    debt: int,
    days: int,
    as_of: date,
    cfg: BillingConfig,
    own_contracts: dict[Provider, Contract] | None = None,
) -> DunningMessage:
    """The message of one stage (the claim's reconciliation statement is added by the
    caller); its payment link goes to the account's branch's own merchant when it has one
    (``own_contracts``)."""
    lang = cfg.default_language
    return DunningMessage(
        account_id=acc.id,
        number=acc.number,
        name=acc.name,
        kind=acc.kind,
        phone=acc.phone,
        telegram_chat_id=acc.telegram_chat_id,
        address=acc.address,
        stage=stage.code,
        title=stage.title_uz if lang == "uz" else stage.title_ru,
        debt_tiyin=debt,
        days_overdue=days,
        today=as_of,
        text=message_text(
            lang, acc.number, debt, days, best_link(cfg, acc.number, debt, own_contracts)
        ),
    )


def _deliver(
    conn: psycopg.Connection[Any],
    msg: DunningMessage,
    stage: Stage,
    channels: Mapping[str, Channel],
    res: DunningResult,
    *,
    now: datetime,
) -> None:
    """Send the message through each channel of the stage and record every attempt."""
    for ch_name in stage.channels:
        ch = channels.get(ch_name)
        if ch is None:
            status, detail = "skipped", f"channel {ch_name} is not configured"
            res.skipped += 1
        else:
            try:
                detail = ch.send(msg)
                status = "sent"
                res.sent += 1
            except NoContactError as exc:
                status, detail = "skipped", str(exc)
                res.skipped += 1
            except ChannelError as exc:
                status, detail = "failed", str(exc)
                res.failed += 1
        _record(conn, msg, stage, ch_name, status, detail, now=now)


def _record(  # noqa: PLR0917
    conn: psycopg.Connection[Any],
    msg: DunningMessage,
    stage: Stage,
    ch_name: str,
    status: str,
    detail: str,
    *,
    now: datetime,
) -> None:
    """One attempt of one channel, in ``dunning_events``."""
    conn.execute(
        "INSERT INTO dunning_events (account_id, stage, channel, debt_tiyin, "
        "days_overdue, created_at, status, detail, document) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            msg.account_id,
            stage.code,
            ch_name,
            msg.debt_tiyin,
            msg.days_overdue,
            now,
            status,
            detail,
            detail if ch_name == "letter" and status == "sent" else None,
        ),
    )

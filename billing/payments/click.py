"""Click SHOP API: Prepare (action 0) and Complete (action 1).

Click POSTs form-encoded fields; we answer JSON. The signature of each call is

* Prepare:  ``md5(click_trans_id + service_id + SECRET_KEY + merchant_trans_id + amount +
  action + sign_time)``
* Complete: ``md5(click_trans_id + service_id + SECRET_KEY + merchant_trans_id +
  merchant_prepare_id + amount + action + sign_time)``

built from the fields exactly as sent. ``merchant_trans_id`` is the subscriber account number;
``amount`` is so'm with up to 2 decimals, parsed exactly (Decimal) into tiyin. Our
``merchant_prepare_id`` / ``merchant_confirm_id`` is the id of our provider transaction.

Error codes: 0 success, -1 sign check failed, -2 incorrect amount, -3 action not found,
-4 already paid, -5 user (account) does not exist, -6 transaction does not exist,
-7 failed to update user, -8 error in request from Click, -9 transaction cancelled.

Each function runs in the caller's transaction; the caller commits whatever the answer (a
cancel on Complete with ``error < 0`` must be kept).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg

from billing.accountno import clean
from billing.accounts import find_account
from billing.branches import MerchantRoute, account_branch_id, contracts, route_for
from billing.payments import provider_transactions as ptx
from billing.payments.config import PaymentsConfig
from billing.payments.errors import PaymentsError
from billing.payments.money import som_to_tiyin

log = logging.getLogger(__name__)
PROVIDER = "click"

SUCCESS = 0
SIGN_FAILED = -1
BAD_AMOUNT = -2
ACTION_NOT_FOUND = -3
ALREADY_PAID = -4
USER_NOT_FOUND = -5
TX_NOT_FOUND = -6
UPDATE_FAILED = -7
BAD_REQUEST = -8
TX_CANCELLED = -9

NOTES = {
    SUCCESS: "Success",
    SIGN_FAILED: "SIGN CHECK FAILED!",
    BAD_AMOUNT: "Incorrect parameter amount",
    ACTION_NOT_FOUND: "Action not found",
    ALREADY_PAID: "Already paid",
    USER_NOT_FOUND: "User does not exist",
    TX_NOT_FOUND: "Transaction does not exist",
    UPDATE_FAILED: "Failed to update user",
    BAD_REQUEST: "Error in request from click",
    TX_CANCELLED: "Transaction cancelled",
}

PREPARE_FIELDS = (
    "click_trans_id",
    "service_id",
    "click_paydoc_id",
    "merchant_trans_id",
    "amount",
    "action",
    "error",
    "sign_time",
    "sign_string",
)


class ClickError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"click error {code}: {detail}")
        self.code = code
        self.detail = detail


def sign(fields: Mapping[str, str], secret: str, *, complete: bool) -> str:
    """The md5 hex signature Click sends for these fields."""
    parts = [fields["click_trans_id"], fields["service_id"], secret, fields["merchant_trans_id"]]
    if complete:
        parts.append(fields["merchant_prepare_id"])
    parts += [fields["amount"], fields["action"], fields["sign_time"]]
    return hashlib.md5("".join(parts).encode(), usedforsecurity=False).hexdigest()


def _answer(fields: Mapping[str, str], code: int, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "click_trans_id": _int_or_raw(fields.get("click_trans_id", "")),
        "merchant_trans_id": fields.get("merchant_trans_id", ""),
    }
    out.update(extra)
    out["error"] = code
    out["error_note"] = NOTES[code]
    return out


def _int_or_raw(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _route(
    conn: psycopg.Connection[Any], service_id: str, cfg: PaymentsConfig
) -> tuple[MerchantRoute, str]:
    """The merchant of a call and its secret key: a branch's own Click service (suvnet
    branches contract ... --service-id), or the utility's own (SUVNET_CLICK_*)."""
    branch_contracts = contracts(conn, "click")
    for c in branch_contracts:
        if c.service_id == service_id:
            return route_for(c, branch_contracts), c.secret
    secret = cfg.click_secret_key.get_secret_value() if cfg.click_secret_key else ""
    if not branch_contracts and (not secret or not cfg.click_service_id):
        raise ClickError(SIGN_FAILED, "Click is not configured (service id / secret key)")
    if service_id != cfg.click_service_id or not secret:
        raise ClickError(BAD_REQUEST, f"unknown service_id {service_id}")
    return route_for(None, branch_contracts), secret


def _validate(
    conn: psycopg.Connection[Any], fields: Mapping[str, str], cfg: PaymentsConfig, *, action: int
) -> tuple[int, str, MerchantRoute]:
    """Check presence, service, signature and action. Returns (amount tiyin, account text,
    the merchant), and gives the session the merchant's scope."""
    sent_complete = fields.get("action", "").strip() == "1"
    need = PREPARE_FIELDS + (("merchant_prepare_id",) if sent_complete else ())
    missing = [f for f in need if not fields.get(f, "").strip()]
    if missing:
        raise ClickError(BAD_REQUEST, f"missing fields: {', '.join(missing)}")
    if not fields["click_trans_id"].isdigit() or len(fields["click_trans_id"]) > 30:
        raise ClickError(BAD_REQUEST, "click_trans_id must be a number")
    route, secret = _route(conn, fields["service_id"], cfg)
    expected = sign(fields, secret, complete=sent_complete)  # the formula of the sent action
    if not hmac.compare_digest(expected, fields["sign_string"].strip().lower()):
        raise ClickError(SIGN_FAILED, "wrong sign_string")
    if fields["action"] != str(action):
        raise ClickError(ACTION_NOT_FOUND, f"action {fields['action']!r} at this URL")
    try:
        amount = som_to_tiyin(fields["amount"])
    except PaymentsError as exc:
        raise ClickError(BAD_AMOUNT, str(exc)) from exc
    if not cfg.click_min_tiyin <= amount <= cfg.click_max_tiyin:
        raise ClickError(BAD_AMOUNT, f"amount {amount} tiyin outside the allowed range")
    route.enter(conn)  # the merchant's branch (the session had no login's scope)
    return amount, clean(fields["merchant_trans_id"]), route


def prepare(
    conn: psycopg.Connection[Any], fields: Mapping[str, str], cfg: PaymentsConfig, now: datetime
) -> dict[str, Any]:
    """Answer a Prepare call (action 0)."""
    try:
        return _prepare(conn, fields, cfg, now)
    except ClickError as err:
        log.info("click prepare answered %s: %s", err.code, err.detail)
        return _answer(fields, err.code, {"merchant_prepare_id": None})


def _prepare(
    conn: psycopg.Connection[Any], fields: Mapping[str, str], cfg: PaymentsConfig, now: datetime
) -> dict[str, Any]:
    amount, number, route = _validate(conn, fields, cfg, action=0)
    account = find_account(conn, number)
    if (
        account is None
        or account.status == "closed"
        or not route.serves(account_branch_id(conn, account.id))
    ):
        raise ClickError(USER_NOT_FOUND, f"no open account {number!r} at this service")
    tx, created = ptx.insert_tx(
        conn,
        provider=PROVIDER,
        ext_id=fields["click_trans_id"],
        account=account,
        amount_tiyin=amount,
        provider_time_ms=None,
        now=now,
        details={
            "click_paydoc_id": fields["click_paydoc_id"],
            "sign_time": fields["sign_time"],
        },
    )
    if not created:
        if tx.state == 2:
            raise ClickError(ALREADY_PAID, "already completed")
        if tx.state < 0:
            raise ClickError(TX_CANCELLED, "already cancelled")
        if (tx.account_id, tx.amount_tiyin) != (account.id, amount):
            raise ClickError(BAD_REQUEST, "a repeated Prepare with other account or amount")
    else:
        log.info("click transaction %s prepared: %s tiyin to %s", tx.ext_id, amount, number)
    return _answer(fields, SUCCESS, {"merchant_prepare_id": tx.id})


def complete(
    conn: psycopg.Connection[Any], fields: Mapping[str, str], cfg: PaymentsConfig, now: datetime
) -> dict[str, Any]:
    """Answer a Complete call (action 1)."""
    found: list[int] = []
    try:
        return _complete(conn, fields, cfg, now, found)
    except ClickError as err:
        log.info("click complete answered %s: %s", err.code, err.detail)
        return _answer(fields, err.code, {"merchant_confirm_id": found[0] if found else None})


def _complete(
    conn: psycopg.Connection[Any],
    fields: Mapping[str, str],
    cfg: PaymentsConfig,
    now: datetime,
    found: list[int],
) -> dict[str, Any]:
    amount, number, _ = _validate(conn, fields, cfg, action=1)
    tx = ptx.lock_tx(conn, PROVIDER, fields["click_trans_id"])
    if tx is None or str(tx.id) != fields["merchant_prepare_id"].strip():
        raise ClickError(TX_NOT_FOUND, "no prepared transaction with this id")
    found.append(tx.id)
    if tx.account_number != number:
        raise ClickError(USER_NOT_FOUND, "merchant_trans_id differs from the Prepare")
    if tx.state == 2:
        raise ClickError(ALREADY_PAID, "already completed")
    if tx.state < 0:
        raise ClickError(TX_CANCELLED, "already cancelled")
    try:
        click_error = int(fields["error"])
    except ValueError as exc:
        raise ClickError(BAD_REQUEST, "error must be a number") from exc
    if click_error < 0:
        ptx.cancel(conn, tx, now, click_error)
        log.info("click transaction %s cancelled by Click (error %s)", tx.ext_id, click_error)
        raise ClickError(TX_CANCELLED, f"Click reported error {click_error}")
    if tx.amount_tiyin != amount:
        raise ClickError(BAD_AMOUNT, f"amount differs from the Prepare ({tx.amount_tiyin})")
    tx = ptx.perform(conn, tx, now)
    log.info("click transaction %s completed", tx.ext_id)
    return _answer(fields, SUCCESS, {"merchant_confirm_id": tx.id})

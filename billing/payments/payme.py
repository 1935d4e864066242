"""Payme Merchant API (JSON-RPC 2.0): Payme calls us, we answer.

Protocol (Payme's published Merchant API):

* every call is an HTTP POST with ``Authorization: Basic base64("Paycom:<cash-desk key>")``;
  every answer is HTTP 200 with ``{"result": ...}`` or ``{"error": {"code", "message":
  {"ru", "uz", "en"}, "data"}}`` and the request's ``id``;
* amounts are integer tiyin; ``params.account.account`` is the subscriber account number;
* transaction states: 1 created, 2 performed, -1 cancelled before perform, -2 cancelled
  after perform (the payment is reversed in the ledger);
* a transaction not performed within 12 hours (43 200 000 ms) of its creation *in Payme
  Business* (the ``time`` param of CreateTransaction, Payme's clock) is cancelled with reason 4
  when Payme next touches it, and the call answers -31008; a first CreateTransaction that
  arrives more than 12 hours after that ``time`` is refused with -31008 and nothing is stored.

:func:`handle` takes the raw body and header and a synchronous connection; it runs in the
caller's transaction, which the caller commits whatever the answer (a timeout cancel must be
kept even though the call answers an error).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import psycopg

from billing.accountno import normalize
from billing.accounts import AccountRef, find_account
from billing.branches import Contract, MerchantRoute, account_branch_id, contracts, route_for
from billing.errors import AccountNumberError
from billing.payments import provider_transactions as ptx
from billing.payments.config import PaymentsConfig
from billing.payments.provider_transactions import ProviderTx, ms

log = logging.getLogger(__name__)
PROVIDER = "payme"

# error codes
WRONG_AMOUNT = -31001
TX_NOT_FOUND = -31003
CANNOT_CANCEL = -31007
CANNOT_PERFORM = -31008
ACCOUNT_NOT_FOUND = -31050
ACCOUNT_INVALID = -31051
ACCOUNT_CLOSED = -31052
AUTH = -32504
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
PARSE_ERROR = -32700
SYSTEM_ERROR = -32400
NOT_POST = -32300
MAX_BODY = 64 * 1024

REASON_TIMEOUT = 4

MESSAGES: dict[int, tuple[str, str, str]] = {  # ru, uz, en
    WRONG_AMOUNT: ("Неверная сумма", "Noto'g'ri summa", "Wrong amount"),
    TX_NOT_FOUND: ("Транзакция не найдена", "Tranzaksiya topilmadi", "Transaction not found"),
    CANNOT_CANCEL: (
        "Невозможно отменить транзакцию",
        "Tranzaksiyani bekor qilib bo'lmaydi",
        "The transaction cannot be cancelled",
    ),
    CANNOT_PERFORM: (
        "Невозможно выполнить операцию",
        "Amalni bajarib bo'lmaydi",
        "The operation cannot be performed",
    ),
    ACCOUNT_NOT_FOUND: (
        "Лицевой счёт не найден",
        "Shaxsiy hisob raqami topilmadi",
        "Account not found",
    ),
    ACCOUNT_INVALID: (
        "Неверный номер лицевого счёта (9 цифр с контрольной цифрой)",
        "Shaxsiy hisob raqami noto'g'ri (nazorat raqami bilan 9 ta raqam)",
        "Invalid account number (9 digits with a check digit)",
    ),
    ACCOUNT_CLOSED: (
        "Лицевой счёт закрыт",
        "Shaxsiy hisob yopilgan",
        "The account is closed",
    ),
    AUTH: ("Недостаточно привилегий", "Ruxsat yetarli emas", "Insufficient privileges"),
    INVALID_REQUEST: (
        "Неверный JSON-RPC запрос",
        "Noto'g'ri JSON-RPC so'rov",
        "Invalid JSON-RPC request",
    ),
    METHOD_NOT_FOUND: ("Метод не найден", "Usul topilmadi", "Method not found"),
    PARSE_ERROR: ("Ошибка разбора JSON", "JSON tahlil xatosi", "Parse error"),
    SYSTEM_ERROR: ("Системная ошибка", "Tizim xatosi", "System error"),
    NOT_POST: (
        "Метод запроса должен быть POST",
        "So'rov usuli POST bo'lishi kerak",
        "The request method must be POST",
    ),
}


class PaymeError(Exception):
    """An error answer of the protocol (not a failure of ours; it is the reply)."""

    def __init__(self, code: int, data: str | None = None, detail: str = "") -> None:
        super().__init__(f"payme error {code}: {detail}")
        self.code = code
        self.data = data
        self.detail = detail

    def body(self, req_id: Any) -> dict[str, Any]:
        ru, uz, en = MESSAGES[self.code]
        err: dict[str, Any] = {"code": self.code, "message": {"ru": ru, "uz": uz, "en": en}}
        if self.data is not None:
            err["data"] = self.data
        return {"jsonrpc": "2.0", "id": req_id, "error": err}


def _ok(req_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


# ------------------------------------------------------------------ auth
def _keys(
    conn: psycopg.Connection[Any], merchant_id: str | None, configured: str | None
) -> list[str]:
    """A cash desk's keys: the one Payme set with ChangePassword (payme_keys) wins over the
    configured one."""
    keys: list[str] = []
    if merchant_id:
        row = conn.execute(
            "SELECT key FROM payme_keys WHERE merchant_id = %s", (merchant_id,)
        ).fetchone()
        if row is not None:
            keys.append(row[0])
    if not keys and configured:
        keys.append(configured)
    return [k for k in keys if k]


def _current_key(conn: psycopg.Connection[Any], cfg: PaymentsConfig) -> list[str]:
    keys = _keys(
        conn, cfg.payme_merchant_id, cfg.payme_key.get_secret_value() if cfg.payme_key else None
    )
    if cfg.payme_test_key is not None:
        keys.append(cfg.payme_test_key.get_secret_value())
    return [k for k in keys if k]


def check_auth(
    conn: psycopg.Connection[Any], authorization: str | None, cfg: PaymentsConfig
) -> MerchantRoute:
    """Check the Basic auth of a call; the cash desk whose key it carries is the merchant:
    the utility's own (the settings), or a branch's own contract (suvnet branches contract),
    which serves only that branch's accounts."""
    if not authorization:
        raise PaymeError(AUTH, detail="no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise PaymeError(AUTH, detail="not Basic auth")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise PaymeError(AUTH, detail="undecodable credentials") from exc
    login, sep, password = decoded.partition(":")
    branch_contracts = contracts(conn, "payme")
    desks: list[tuple[Contract | None, list[str]]] = [(None, _current_key(conn, cfg))]
    desks += [(c, _keys(conn, c.merchant_id, c.secret)) for c in branch_contracts]
    if not sep or login != "Paycom" or not any(keys for _, keys in desks):
        raise PaymeError(AUTH, detail="wrong login or Payme is not configured")
    for contract, keys in desks:
        if any(hmac.compare_digest(password.encode(), k.encode()) for k in keys):
            return route_for(contract, branch_contracts)
    raise PaymeError(AUTH, detail="wrong key")


# ------------------------------------------------------------------ params
def _param(params: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = params.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise PaymeError(INVALID_REQUEST, detail=f"params.{name} missing or of the wrong type")
    return value


def _amount(params: dict[str, Any], cfg: PaymentsConfig) -> int:
    value = params.get("amount")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise PaymeError(WRONG_AMOUNT, detail=f"amount must be integer tiyin, got {value!r}")
    if not cfg.payme_min_tiyin <= value <= cfg.payme_max_tiyin:
        raise PaymeError(WRONG_AMOUNT, detail=f"amount {value} outside the allowed range")
    return value


def _account(
    conn: psycopg.Connection[Any],
    params: dict[str, Any],
    cfg: PaymentsConfig,
    route: MerchantRoute | None = None,
) -> AccountRef:
    field = cfg.payme_account_field
    acc = params.get("account")
    if not isinstance(acc, dict):
        raise PaymeError(ACCOUNT_NOT_FOUND, field, "params.account must be an object")
    raw = acc.get(field)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = f"{raw:09d}"
    if not isinstance(raw, str) or not raw.strip():
        raise PaymeError(ACCOUNT_NOT_FOUND, field, f"account.{field} missing")
    try:
        num = normalize(raw)  # malformed or a wrong check digit: "invalid", not "not found"
    except AccountNumberError as exc:
        raise PaymeError(ACCOUNT_INVALID, field, str(exc)) from exc
    ref = find_account(conn, num)
    if ref is None or (route is not None and not route.serves(account_branch_id(conn, ref.id))):
        raise PaymeError(ACCOUNT_NOT_FOUND, field, f"no account {num} at this cash desk")
    if ref.status == "closed":
        raise PaymeError(ACCOUNT_CLOSED, field, f"account {num} is closed")
    return ref


def _ext_id(params: dict[str, Any]) -> str:
    ext_id: str = _param(params, "id", str)
    if not 0 < len(ext_id) <= 100 or "\x00" in ext_id:
        raise PaymeError(INVALID_REQUEST, detail="params.id must be 1..100 characters")
    return ext_id


def _tx(conn: psycopg.Connection[Any], params: dict[str, Any]) -> ProviderTx:
    ext_id = _ext_id(params)
    tx = ptx.lock_tx(conn, PROVIDER, ext_id)
    if tx is None:
        raise PaymeError(TX_NOT_FOUND, detail=f"no transaction {ext_id}")
    return tx


def _expired(tx: ProviderTx, now: datetime, cfg: PaymentsConfig) -> bool:
    """True once Payme's 12 hours are over: counted from Payme's own ``time`` of the
    transaction (the ``time`` param of CreateTransaction, its create time in Payme Business),
    not from our create time, which is later when the CreateTransaction reached us late.
    Payme cancels on its side at that moment, so performing later would post money Payme
    has already cancelled. (Our create time is only the fallback for a row without it.)"""
    started = tx.provider_time_ms if tx.provider_time_ms is not None else ms(tx.create_time)
    return ms(now) - started > cfg.payme_timeout_ms


# ------------------------------------------------------------------ methods
class _Ctx:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        cfg: PaymentsConfig,
        now: datetime,
        route: MerchantRoute | None = None,
    ) -> None:
        self.conn = conn
        self.cfg = cfg
        self.now = now
        self.route = route or MerchantRoute(None)

    @property
    def merchant_id(self) -> str | None:
        c = self.route.contract
        return self.cfg.payme_merchant_id if c is None else c.merchant_id


def check_perform(c: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
    _amount(params, c.cfg)
    _account(c.conn, params, c.cfg, c.route)
    return {"allow": True}


def create(c: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
    ext_id = _ext_id(params)
    ptime = _param(params, "time", int)
    tx = ptx.lock_tx(c.conn, PROVIDER, ext_id)
    if tx is None:
        amount = _amount(params, c.cfg)
        account = _account(c.conn, params, c.cfg, c.route)
        if ms(c.now) - ptime > c.cfg.payme_timeout_ms:
            # Payme has already cancelled it by timeout on its side: record nothing
            raise PaymeError(
                CANNOT_PERFORM, detail=f"Payme's time of {ext_id} is more than 12 hours ago"
            )
        tx, created = ptx.insert_tx(
            c.conn,
            provider=PROVIDER,
            ext_id=ext_id,
            account=account,
            amount_tiyin=amount,
            provider_time_ms=ptime,
            now=c.now,
        )
        if created:
            log.info("payme transaction %s created: %s tiyin to %s", ext_id, amount, account.number)
    if tx.state != 1:
        raise PaymeError(CANNOT_PERFORM, detail=f"transaction {ext_id} is in state {tx.state}")
    if _expired(tx, c.now, c.cfg):
        ptx.cancel(c.conn, tx, c.now, REASON_TIMEOUT)
        log.info("payme transaction %s cancelled: timeout", ext_id)
        raise PaymeError(CANNOT_PERFORM, detail=f"transaction {ext_id} timed out")
    return {"create_time": ms(tx.create_time), "transaction": str(tx.id), "state": tx.state}


def perform_tx(c: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
    tx = _tx(c.conn, params)
    if tx.state == 1:
        if _expired(tx, c.now, c.cfg):
            ptx.cancel(c.conn, tx, c.now, REASON_TIMEOUT)
            log.info("payme transaction %s cancelled: timeout", tx.ext_id)
            raise PaymeError(CANNOT_PERFORM, detail=f"transaction {tx.ext_id} timed out")
        tx = ptx.perform(c.conn, tx, c.now)
        log.info("payme transaction %s performed", tx.ext_id)
    elif tx.state != 2:
        raise PaymeError(CANNOT_PERFORM, detail=f"transaction {tx.ext_id} is cancelled")
    return {"transaction": str(tx.id), "perform_time": ms(tx.perform_time), "state": tx.state}


def cancel_tx(c: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
    tx = _tx(c.conn, params)
    reason = params.get("reason")
    if reason is not None and (isinstance(reason, bool) or not isinstance(reason, int)):
        raise PaymeError(INVALID_REQUEST, detail="params.reason must be an integer")
    if tx.state == 2 and not c.cfg.payme_cancel_after_perform:
        raise PaymeError(CANNOT_CANCEL, detail=f"transaction {tx.ext_id} is already performed")
    if tx.state in (1, 2):
        tx = ptx.cancel(c.conn, tx, c.now, reason)
        log.info(
            "payme transaction %s cancelled (state %s, reason %s)", tx.ext_id, tx.state, reason
        )
    return {"transaction": str(tx.id), "cancel_time": ms(tx.cancel_time), "state": tx.state}


def check_tx(c: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
    tx = _tx(c.conn, params)
    return {
        "create_time": ms(tx.create_time),
        "perform_time": ms(tx.perform_time),
        "cancel_time": ms(tx.cancel_time),
        "transaction": str(tx.id),
        "state": tx.state,
        "reason": tx.reason,
    }


def statement(c: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
    t_from = _param(params, "from", int)
    t_to = _param(params, "to", int)
    # this cash desk's transactions: the session sees only its branch's accounts, and the
    # utility's own desk leaves out the branches with a desk of their own
    rows = c.conn.execute(
        """SELECT t.id, t.ext_id, t.provider_time_ms, t.amount_tiyin, t.account_number,
                  t.create_time, t.perform_time, t.cancel_time, t.state, t.reason
           FROM provider_transactions t JOIN accounts a ON a.id = t.account_id
           WHERE t.provider = 'payme' AND t.provider_time_ms BETWEEN %s AND %s
             AND (a.branch_id IS NULL OR NOT a.branch_id = ANY(%s::bigint[]))
           ORDER BY t.provider_time_ms, t.id""",
        (t_from, t_to, [] if c.route.contract else list(c.route.own_contracts)),
    ).fetchall()
    field = c.cfg.payme_account_field
    return {
        "transactions": [
            {
                "id": r[1],
                "time": r[2],
                "amount": r[3],
                "account": {field: r[4]},
                "create_time": ms(r[5]),
                "perform_time": ms(r[6]),
                "cancel_time": ms(r[7]),
                "transaction": str(r[0]),
                "state": r[8],
                "reason": r[9],
                "receivers": None,
            }
            for r in rows
        ]
    }


def change_password(c: _Ctx, params: dict[str, Any]) -> dict[str, Any]:
    password = _param(params, "password", str)
    if not password.strip() or not c.merchant_id:
        raise PaymeError(INVALID_REQUEST, detail="empty password or no merchant id configured")
    c.conn.execute(
        """INSERT INTO payme_keys (merchant_id, key, changed_at) VALUES (%s, %s, %s)
           ON CONFLICT (merchant_id) DO UPDATE SET key = EXCLUDED.key,
                                                   changed_at = EXCLUDED.changed_at""",
        (c.merchant_id, password, c.now),
    )
    log.warning("payme cash-desk key changed by Payme (ChangePassword)")
    return {"success": True}


METHODS: dict[str, Callable[[_Ctx, dict[str, Any]], dict[str, Any]]] = {
    "CheckPerformTransaction": check_perform,
    "CreateTransaction": create,
    "PerformTransaction": perform_tx,
    "CancelTransaction": cancel_tx,
    "CheckTransaction": check_tx,
    "GetStatement": statement,
    "ChangePassword": change_password,
}


def _dispatch(req: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
        raise PaymeError(INVALID_REQUEST, detail="no method")
    params = req.get("params")
    if not isinstance(params, dict):
        raise PaymeError(INVALID_REQUEST, detail="params must be an object")
    method = METHODS.get(req["method"])
    if method is None:
        raise PaymeError(METHOD_NOT_FOUND, req["method"][:100], "unknown method")
    return method(ctx, params)


def handle(
    conn: psycopg.Connection[Any],
    body: bytes,
    authorization: str | None,
    cfg: PaymentsConfig,
    now: datetime,
) -> dict[str, Any]:
    """Answer one Merchant API call (the JSON body of the HTTP 200 reply)."""
    if len(body) > MAX_BODY:
        return PaymeError(INVALID_REQUEST, detail="request body too large").body(None)
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        return PaymeError(PARSE_ERROR).body(None)
    req_id = req.get("id") if isinstance(req, dict) else None
    try:
        route = check_auth(conn, authorization, cfg)
        route.enter(conn)  # the merchant's branch (the session had no login's scope)
        return _ok(req_id, _dispatch(req, _Ctx(conn, cfg, now, route)))
    except PaymeError as err:
        if err.code == AUTH:
            log.warning("payme call refused: %s", err.detail)
        return err.body(req_id)

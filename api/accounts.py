"""User accounts, logins, tokens and customer activation (thin SQL shell over api.security)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row, tuple_row

from api.errors import (
    ConflictError,
    InvalidError,
    NotAuthenticatedError,
    NotFoundError,
    TooManyAttemptsError,
)
from api.security import (
    REFRESH_TTL,
    Principal,
    RateLimitPolicy,
    Role,
    dummy_hash,
    hash_password,
    login_blocked,
    make_access_token,
    make_refresh_token,
    new_one_time_code,
    password_problem,
    read_refresh_token,
    verify_password,
)

log = logging.getLogger(__name__)

CODE_TTL = timedelta(days=7)
USER_COLUMNS = "id, username, full_name, role, account_no, active, created_at"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    principal: Principal

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "role": self.principal.role.value,
            "username": self.principal.username,
        }


def _principal(row: dict[str, Any]) -> Principal:
    return Principal(int(row["id"]), row["username"], Role(row["role"]), row["account_no"])


async def create_user(
    conn: AsyncConnection[Any],
    *,
    username: str,
    password: str,
    role: Role,
    full_name: str = "",
    account_no: str | None = None,
) -> dict[str, Any]:
    """Insert a user; the password is stored as an argon2 hash."""
    username = username.strip()
    if not username or len(username) > 64:
        raise InvalidError("the user name must have 1 to 64 characters")
    problem = password_problem(password)
    if problem:
        raise InvalidError(problem)
    if role is Role.CUSTOMER and not account_no:
        raise InvalidError("a customer user needs an account number")
    if role is not Role.CUSTOMER:
        account_no = None
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"""INSERT INTO api_users (username, full_name, role, password_hash, account_no)
                    VALUES (%s, %s, %s, %s, %s) RETURNING {USER_COLUMNS}""",
                (username, full_name, role.value, hash_password(password), account_no),
            )
            row = await cur.fetchone()
    except errors.UniqueViolation as exc:
        raise ConflictError(f"a user named {username!r} already exists") from exc
    assert row is not None
    log.info("user created", extra={"username": username, "role": role.value})
    return row


async def issue_tokens(
    conn: AsyncConnection[Any], p: Principal, secret: str, now: datetime
) -> TokenPair:
    refresh, jti = make_refresh_token(p.user_id, secret, now)
    await conn.execute(
        "INSERT INTO api_refresh_tokens (jti, user_id, issued_at, expires_at) "
        "VALUES (%s, %s, %s, %s)",
        (jti, p.user_id, now, now + REFRESH_TTL),
    )
    return TokenPair(make_access_token(p, secret, now), refresh, p)


async def login(
    conn: AsyncConnection[Any],
    *,
    username: str,
    password: str,
    ip: str,
    secret: str,
    now: datetime,
    policy: RateLimitPolicy,
    customer: bool | None = None,
) -> TokenPair:
    """Check a password (rate limited per user name and per address) and issue tokens.

    ``customer``: True accepts only customers (the cabinet), False only staff, None either.
    Every attempt is recorded; a failed one is committed before the error is raised so that
    it counts for the rate limit whatever the caller does next.
    """
    username = username.strip()
    since = now - policy.window
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT ts FROM api_login_attempts WHERE username = %s AND ts > %s AND NOT success",
            (username, since),
        )
        user_fails = [r[0] for r in await cur.fetchall()]
        await cur.execute(
            "SELECT ts FROM api_login_attempts WHERE ip = %s AND ts > %s AND NOT success",
            (ip, since),
        )
        ip_fails = [r[0] for r in await cur.fetchall()]
    wait = login_blocked(user_fails, ip_fails, now, policy)
    if wait:
        raise TooManyAttemptsError(
            f"too many failed logins; try again in {wait} seconds", retry_after_s=wait
        )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {USER_COLUMNS}, password_hash FROM api_users WHERE username = %s",
            (username,),
        )
        row = await cur.fetchone()
    ok = verify_password(row["password_hash"] if row else dummy_hash(), password)
    if row is not None and (
        not row["active"]
        or (customer is True and row["role"] != Role.CUSTOMER)
        or (customer is False and row["role"] == Role.CUSTOMER)
    ):
        ok = False
    await conn.execute(
        "INSERT INTO api_login_attempts (ts, username, ip, success) VALUES (%s, %s, %s, %s)",
        (now, username, ip, ok),
    )
    if not ok or row is None:
        await conn.commit()  # the failed attempt must count even though we raise
        raise NotAuthenticatedError("wrong user name or password")
    return await issue_tokens(conn, _principal(row), secret, now)


async def refresh(conn: AsyncConnection[Any], token: str, secret: str, now: datetime) -> TokenPair:
    """Rotate a refresh token: the old one is revoked, a new pair is issued."""
    user_id, jti = read_refresh_token(token, secret, now)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE api_refresh_tokens SET revoked_at = %s "
            "WHERE jti = %s AND user_id = %s AND revoked_at IS NULL AND expires_at > %s "
            "RETURNING jti",
            (now, jti, user_id, now),
        )
        if await cur.fetchone() is None:
            raise NotAuthenticatedError("the refresh token was already used, revoked or expired")
        await cur.execute(
            f"SELECT {USER_COLUMNS} FROM api_users WHERE id = %s AND active", (user_id,)
        )
        row = await cur.fetchone()
    if row is None:
        raise NotAuthenticatedError("the user is disabled")
    return await issue_tokens(conn, _principal(row), secret, now)


async def revoke(conn: AsyncConnection[Any], token: str, secret: str, now: datetime) -> None:
    try:
        _, jti = read_refresh_token(token, secret, now)
    except NotAuthenticatedError:
        return
    await conn.execute(
        "UPDATE api_refresh_tokens SET revoked_at = %s WHERE jti = %s AND revoked_at IS NULL",
        (now, jti),
    )


async def issue_customer_code(
    conn: AsyncConnection[Any], account_no: str, issued_by: int | None, now: datetime
) -> tuple[str, datetime]:
    """A new one-time code for an account (older unused codes stop working)."""
    account_no = account_no.strip()
    if not account_no or len(account_no) > 32:
        raise InvalidError("the account number must have 1 to 32 characters")
    code = new_one_time_code()
    await conn.execute(
        "UPDATE customer_codes SET used_at = %s WHERE account_no = %s AND used_at IS NULL",
        (now, account_no),
    )
    expires = now + CODE_TTL
    await conn.execute(
        "INSERT INTO customer_codes (account_no, code_hash, issued_at, expires_at, issued_by) "
        "VALUES (%s, %s, %s, %s, %s)",
        (account_no, hash_password(code), now, expires, issued_by),
    )
    return code, expires


async def activate_customer(
    conn: AsyncConnection[Any],
    *,
    account_no: str,
    code: str,
    password: str,
    ip: str,
    now: datetime,
    policy: RateLimitPolicy,
) -> dict[str, Any]:
    """Set a customer's password with a one-time code; creates the login on first use."""
    account_no = account_no.strip()
    key = f"code:{account_no}"
    async with conn.cursor(row_factory=tuple_row) as cur:
        since = now - policy.window
        await cur.execute(
            "SELECT ts FROM api_login_attempts WHERE username = %s AND ts > %s AND NOT success",
            (key, since),
        )
        fails = [r[0] for r in await cur.fetchall()]
        await cur.execute(
            "SELECT ts FROM api_login_attempts WHERE ip = %s AND ts > %s AND NOT success",
            (ip, since),
        )
        ip_fails = [r[0] for r in await cur.fetchall()]
    wait = login_blocked(fails, ip_fails, now, policy)
    if wait:
        raise TooManyAttemptsError(
            f"too many wrong codes; try again in {wait} seconds", retry_after_s=wait
        )
    problem = password_problem(password)
    if problem:
        raise InvalidError(problem)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, code_hash FROM customer_codes WHERE account_no = %s AND used_at IS NULL "
            "AND expires_at > %s ORDER BY issued_at DESC LIMIT 1",
            (account_no, now),
        )
        row = await cur.fetchone()
    ok = row is not None and verify_password(row["code_hash"], code.strip())
    await conn.execute(
        "INSERT INTO api_login_attempts (ts, username, ip, success) VALUES (%s, %s, %s, %s)",
        (now, key, ip, ok),
    )
    if not ok or row is None:
        await conn.commit()  # the failed attempt must count even though we raise
        raise NotAuthenticatedError("the account number or the one-time code is wrong or expired")
    await conn.execute("UPDATE customer_codes SET used_at = %s WHERE id = %s", (now, row["id"]))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE api_users SET password_hash = %s, password_set_at = %s, active = true "
            f"WHERE account_no = %s RETURNING {USER_COLUMNS}",
            (hash_password(password), now, account_no),
        )
        user = await cur.fetchone()
    if user is None:
        user = await create_user(
            conn,
            username=account_no,
            password=password,
            role=Role.CUSTOMER,
            account_no=account_no,
        )
    return user


async def get_user(conn: AsyncConnection[Any], user_id: int) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {USER_COLUMNS} FROM api_users WHERE id = %s", (user_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no user with id {user_id}")
    return row


def new_request_id() -> str:
    return uuid.uuid4().hex

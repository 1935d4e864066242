"""Logins: the users of the API and the web pages (table ``api_users``: staff and customers),
their passwords, tokens, sessions and the customers' first-password codes. A thin SQL shell
over the pure rules in :mod:`api.security`.

These are *login* users; the customers' billing accounts (number, address, balance) are the
billing package's (:mod:`billing.accounts`, :mod:`billing.queries`)."""

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
    ForbiddenError,
    InvalidError,
    NotAuthenticatedError,
    NotFoundError,
    TooManyAttemptsError,
)
from api.security import (
    APP_ROLE,
    NO_BRANCH_PROBLEM,
    REFRESH_REUSE_GRACE,
    REFRESH_TTL,
    LoginFailures,
    Principal,
    RateLimitPolicy,
    Role,
    dummy_hash,
    hash_password,
    login_blocked,
    make_access_token,
    make_refresh_token,
    new_one_time_code,
    password_check,
    read_refresh_token,
    scope_problem,
    token_problem,
    verify_password,
)
from suvnet.listing import Page, Where, fetch_all, fetch_page

log = logging.getLogger(__name__)

CODE_TTL = timedelta(days=7)
USER_COLUMNS = "id, username, full_name, role, account_no, active, created_at"
AUTH_COLUMNS = f"{USER_COLUMNS}, token_version, branch_id, regional"
USER_SQL = f"SELECT {USER_COLUMNS} FROM api_users"  # noqa: S608 - constant column list
AUTH_SQL = f"SELECT {AUTH_COLUMNS} FROM api_users"  # noqa: S608 - constant column list
LOGIN_SQL = f"SELECT {AUTH_COLUMNS}, password_hash FROM api_users WHERE username = %s"  # noqa: S608 - constant column list
INSERT_SQL = (
    "INSERT INTO api_users (username, full_name, role, password_hash, account_no, branch_id, "  # noqa: S608 - constant column list
    f"regional) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {USER_COLUMNS}"
)
SET_CUSTOMER_PASSWORD_SQL = (
    "UPDATE api_users SET password_hash = %s, password_set_at = %s, active = true "  # noqa: S608 - constant column list
    f"WHERE account_no = %s RETURNING {USER_COLUMNS}"
)
CHECK_SQL = (
    "SELECT role, account_no, active, token_version, branch_id, regional "
    "FROM api_users WHERE id = %s"
)
"""The per-request token check: one primary-key lookup."""
CHECK_AND_SCOPE_SQL = (
    "SELECT role, account_no, active, token_version, branch_id, regional, "
    "set_config('role', %s, false), set_config('suvnet.branches', %s, false) "
    "FROM api_users WHERE id = %s"
)
"""The token check that also gives the connection the caller's scope (api.deps), in the same
round trip; the scope is the token's, so a token that fails the check leaves nothing open."""
VISIBLE_USER = (
    "((SELECT suvnet_scope_all()) OR branch_id = ANY ((SELECT suvnet_scope_branches())::bigint[]))"
)
"""The users a session sees: all of them, or those of its branches (a branch administrator
manages the users of their branch). The logins themselves are not under row-level security:
a login looks its user up before anyone's scope is known."""
SCOPE_SQL = "SELECT suvnet_scope_all(), suvnet_scope_branches()"
"""What the connection's session sees (api.deps.scope_connection set it)."""


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


def principal_of(row: dict[str, Any]) -> Principal:
    """The principal of a user row (selected with :data:`AUTH_COLUMNS`); a regional user's
    and a customer's have no branch. A staff user with neither a branch nor the regional
    scope gets none: they are refused with a message saying how to fix it."""
    if scope_problem(row["role"], row["branch_id"], row["regional"]) is not None:
        raise NotAuthenticatedError(NO_BRANCH_PROBLEM, code="no_branch")
    regional = row["regional"] or row["role"] == Role.CUSTOMER.value
    return Principal(
        int(row["id"]),
        row["username"],
        Role(row["role"]),
        row["account_no"],
        int(row["token_version"]),
        None if regional or row["branch_id"] is None else int(row["branch_id"]),
    )


def _refuse_password(password: str, *, role: Role, username: str) -> None:
    problem = password_check(password, staff=role is not Role.CUSTOMER, username=username)
    if problem is not None:
        raise InvalidError(problem.message, code=problem.code)


async def check_principal(conn: AsyncConnection[Any], p: Principal, *, scope: bool = False) -> None:
    """Refuse a token whose user is gone, disabled, has another role, account or branch, or
    whose token version is not the user's current one. One primary-key lookup.

    ``scope``: the same statement also gives ``conn`` the caller's scope (the role
    suvnet_app and ``suvnet.branches``, see :func:`api.deps.scope_connection`)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        if scope:
            await cur.execute(CHECK_AND_SCOPE_SQL, (APP_ROLE, p.branches, p.user_id))
        else:
            await cur.execute(CHECK_SQL, (p.user_id,))
        row = await cur.fetchone()
    problem = token_problem(p, None if row is None else tuple(row)[:6])
    if problem is not None:
        raise NotAuthenticatedError(problem)


@dataclass(frozen=True)
class SessionScope:
    """What a connection's session sees: every branch, or these branches."""

    all: bool
    branches: tuple[int, ...]

    def covers(self, branch_id: int | None) -> bool:
        return self.all or (branch_id is not None and branch_id in self.branches)


async def session_scope(conn: AsyncConnection[Any]) -> SessionScope:
    """The scope the connection runs with (set by :func:`api.deps.scope_connection`; a
    session that never had one, such as the command line's, sees every branch)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(SCOPE_SQL)
        row = await cur.fetchone()
    assert row is not None
    return SessionScope(bool(row[0]), tuple(int(b) for b in row[1] or ()))


async def _new_user_scope(
    conn: AsyncConnection[Any], role: Role, branch_id: int | None, regional: bool | None
) -> tuple[int | None, bool]:
    """(branch_id, regional) of a new user, or a refusal.

    A staff user belongs to one branch or to the region. Given neither: a user made in a
    one-branch session (a branch administrator's) belongs to that branch; an installation
    without branches has only regional users, as before branches existed; otherwise the
    creation is refused. A branch administrator makes users of their own branch only."""
    if role is Role.CUSTOMER:
        return None, True
    if branch_id is not None and regional:
        raise InvalidError(
            "a user belongs to one branch or to the region, not both", code="branch_conflict"
        )
    scope = await session_scope(conn)
    if branch_id is None and not regional and not scope.all and len(scope.branches) == 1:
        branch_id = scope.branches[0]
    if branch_id is not None:
        if not scope.covers(branch_id):
            raise ForbiddenError("a branch administrator makes users of their own branch only")
        async with conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute("SELECT 1 FROM branches WHERE id = %s", (branch_id,))
            if await cur.fetchone() is None:
                raise InvalidError(f"no branch with id {branch_id}", code="no_such_branch")
        return branch_id, False
    if not scope.all:
        raise ForbiddenError("a branch administrator makes users of their own branch only")
    if regional:
        return None, True
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT EXISTS (SELECT 1 FROM branches)")
        row = await cur.fetchone()
    if row is not None and row[0]:
        raise InvalidError(
            "a staff user needs a branch or the regional scope: this installation has "
            "branches (suvnet users add NAME --branch CODE, or --regional)",
            code="branch_required",
        )
    return None, True


async def create_user(
    conn: AsyncConnection[Any],
    *,
    username: str,
    password: str,
    role: Role,
    full_name: str = "",
    account_no: str | None = None,
    branch_id: int | None = None,
    regional: bool | None = None,
) -> dict[str, Any]:
    """Insert a user; the password is stored as an argon2 hash. A staff user belongs to
    ``branch_id`` or to the region (``regional``); see :func:`_new_user_scope` for what
    happens when neither is given."""
    username = username.strip()
    if not username or len(username) > 64:
        raise InvalidError("the user name must have 1 to 64 characters")
    _refuse_password(password, role=role, username=username)
    if role is Role.CUSTOMER and not account_no:
        raise InvalidError("a customer user needs an account number")
    if role is not Role.CUSTOMER:
        account_no = None
    branch_id, is_regional = await _new_user_scope(conn, role, branch_id, regional)
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                INSERT_SQL,
                (
                    username,
                    full_name,
                    role.value,
                    hash_password(password),
                    account_no,
                    branch_id,
                    is_regional,
                ),
            )
            row = await cur.fetchone()
    except errors.UniqueViolation as exc:
        raise ConflictError(f"a user named {username!r} already exists") from exc
    assert row is not None
    log.info("user created", extra={"username": username, "role": role.value})
    return row


async def _issue(
    conn: AsyncConnection[Any],
    p: Principal,
    secret: str,
    now: datetime,
    family: uuid.UUID | None = None,
) -> TokenPair:
    refresh, jti = make_refresh_token(p.user_id, secret, now)
    await conn.execute(
        "INSERT INTO api_refresh_tokens (jti, user_id, issued_at, expires_at, family) "
        "VALUES (%s, %s, %s, %s, %s)",
        (jti, p.user_id, now, now + REFRESH_TTL, family or jti),
    )
    return TokenPair(make_access_token(p, secret, now), refresh, p)


async def issue_tokens(
    conn: AsyncConnection[Any], p: Principal, secret: str, now: datetime
) -> TokenPair:
    """A new session (a new refresh-token family) for the user of ``p``. The tokens carry the
    user's current role, account and token version as stored, whatever ``p`` says."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(AUTH_SQL + " WHERE id = %s", (p.user_id,))
        row = await cur.fetchone()
    if row is None or not row["active"]:
        raise NotAuthenticatedError("the user does not exist or is disabled")
    return await _issue(conn, principal_of(row), secret, now)


async def _recent_failures(
    conn: AsyncConnection[Any], key: str, ip: str, now: datetime, policy: RateLimitPolicy
) -> LoginFailures:
    since = now - policy.window
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT ts, ip = %s FROM api_login_attempts "
            "WHERE username = %s AND ts > %s AND NOT success",
            (ip, key, since),
        )
        by_user = await cur.fetchall()
        await cur.execute(
            "SELECT ts FROM api_login_attempts WHERE ip = %s AND ts > %s AND NOT success",
            (ip, since),
        )
        ip_fails = [r[0] for r in await cur.fetchall()]
        await cur.execute(
            "SELECT EXISTS (SELECT 1 FROM api_login_attempts WHERE username = %s AND ip = %s "
            "AND success AND ts > %s)",
            (key, ip, now - policy.known_source_for),
        )
        known = await cur.fetchone()
    return LoginFailures(
        user_and_ip=[r[0] for r in by_user if r[1]],
        ip=ip_fails,
        user=[r[0] for r in by_user],
        known_source=bool(known and known[0]),
    )


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
    """Check a password (rate limited, see :class:`RateLimitPolicy`) and issue tokens.

    ``customer``: True accepts only customers (the cabinet), False only staff, None either.
    Every attempt is recorded; a failed one is committed before the error is raised so that
    it counts for the rate limit whatever the caller does next.
    """
    username = username.strip()
    wait = login_blocked(await _recent_failures(conn, username, ip, now, policy), now, policy)
    if wait:
        raise TooManyAttemptsError(
            f"too many failed logins; try again in {wait} seconds", retry_after_s=wait
        )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            LOGIN_SQL,
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
    return await _issue(conn, principal_of(row), secret, now)


async def refresh(conn: AsyncConnection[Any], token: str, secret: str, now: datetime) -> TokenPair:
    """Rotate a refresh token: the old one is revoked, a new pair of the same family issued.

    A token presented again after it was rotated means that two parties hold it (a copy was
    stolen): the whole family is revoked, the newest token included, and the user's token
    version goes up so that the access tokens made from it stop working too. Within
    :data:`REFRESH_REUSE_GRACE` of the rotation it is only refused (two requests of one
    browser renewing the same session at once).
    """
    user_id, jti = read_refresh_token(token, secret, now)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT user_id, family, revoked_at, rotated_at, expires_at "
            "FROM api_refresh_tokens WHERE jti = %s FOR UPDATE",
            (jti,),
        )
        tok = await cur.fetchone()
    if tok is None or tok["user_id"] != user_id:
        raise NotAuthenticatedError("the refresh token was already used, revoked or expired")
    if tok["revoked_at"] is not None:
        rotated = tok["rotated_at"]
        if rotated is not None and now - rotated > REFRESH_REUSE_GRACE:
            await _revoke_family(conn, tok["family"], now)
            await bump_token_version(conn, user_id)
            await conn.commit()  # the revocation stands although we raise
            log.warning(
                "refresh token reused after rotation: session family revoked",
                extra={"user_id": user_id, "family": str(tok["family"])},
            )
            raise NotAuthenticatedError(
                "this refresh token was already used once; for safety the session it belongs "
                "to has been ended: log in again"
            )
        raise NotAuthenticatedError("the refresh token was already used, revoked or expired")
    if tok["expires_at"] <= now:
        raise NotAuthenticatedError("the refresh token was already used, revoked or expired")
    await conn.execute(
        "UPDATE api_refresh_tokens SET revoked_at = %s, rotated_at = %s WHERE jti = %s",
        (now, now, jti),
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(AUTH_SQL + " WHERE id = %s AND active", (user_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotAuthenticatedError("the user is disabled")
    return await _issue(conn, principal_of(row), secret, now, family=tok["family"])


async def _revoke_family(conn: AsyncConnection[Any], family: uuid.UUID, now: datetime) -> None:
    await conn.execute(
        "UPDATE api_refresh_tokens SET revoked_at = %s WHERE family = %s AND revoked_at IS NULL",
        (now, family),
    )


async def bump_token_version(conn: AsyncConnection[Any], user_id: int) -> None:
    """Every access token of the user stops working (the next request is refused)."""
    await conn.execute(
        "UPDATE api_users SET token_version = token_version + 1 WHERE id = %s", (user_id,)
    )


async def end_sessions(conn: AsyncConnection[Any], user_id: int, now: datetime) -> None:
    """Log the user out everywhere: every refresh token revoked, every access token dead."""
    await conn.execute(
        "UPDATE api_refresh_tokens SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL",
        (now, user_id),
    )
    await bump_token_version(conn, user_id)


async def revoke(conn: AsyncConnection[Any], token: str, secret: str, now: datetime) -> None:
    """Log out: the session of this refresh token (its family) is revoked, and the user's
    access tokens stop working. Other sessions renew their access token from their own
    refresh token (the web pages do it by themselves)."""
    try:
        user_id, jti = read_refresh_token(token, secret, now, allow_expired=True)
    except NotAuthenticatedError:
        return
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT family FROM api_refresh_tokens WHERE jti = %s AND user_id = %s",
            (jti, user_id),
        )
        row = await cur.fetchone()
    if row is None:
        return
    await _revoke_family(conn, row[0], now)
    await bump_token_version(conn, user_id)


async def issue_customer_code(
    conn: AsyncConnection[Any], account_no: str, issued_by: int | None, now: datetime
) -> tuple[str, datetime]:
    """A new one-time code for an account (older unused codes stop working)."""
    account_no = account_no.strip()
    if not account_no or len(account_no) > 32:
        raise InvalidError("the account number must have 1 to 32 characters")
    # the account must be one the issuer sees (their branch's): a code for another branch's
    # account would open that account's cabinet to whoever holds it
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT 1 FROM accounts WHERE number = %s", (account_no,))
        if await cur.fetchone() is None:
            raise NotFoundError(f"no account {account_no}")
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
    wait = login_blocked(await _recent_failures(conn, key, ip, now, policy), now, policy)
    if wait:
        raise TooManyAttemptsError(
            f"too many wrong codes; try again in {wait} seconds", retry_after_s=wait
        )
    _refuse_password(password, role=Role.CUSTOMER, username=account_no)
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
            SET_CUSTOMER_PASSWORD_SQL,
            (hash_password(password), now, account_no),
        )
        user = await cur.fetchone()
    if user is not None:
        # a new password: whoever held the old one is logged out
        await end_sessions(conn, int(user["id"]), now)
    else:
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
        await cur.execute(f"{USER_SQL} WHERE id = %s AND {VISIBLE_USER}", (user_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no user with id {user_id}")
    return row


async def get_user_by_name(conn: AsyncConnection[Any], username: str) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(USER_SQL + " WHERE username = %s", (username.strip(),))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no user named {username!r}")
    return row


async def update_user(
    conn: AsyncConnection[Any],
    user_id: int,
    *,
    now: datetime,
    full_name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Change a user; returns the row (:data:`USER_COLUMNS`) before and after.

    A new role, disabling and a new password take effect at once: the token version goes up,
    so the user's access tokens are refused from the next request on. Disabling and a new
    password also revoke every refresh token (logged out everywhere); after a role change the
    next refresh gives tokens with the new role.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{USER_SQL} WHERE id = %s AND {VISIBLE_USER} FOR UPDATE", (user_id,))
        before = await cur.fetchone()
    if before is None:
        raise NotFoundError(f"no user with id {user_id}")
    current_role = Role(before["role"])
    sets: list[str] = []
    args: list[Any] = []
    if full_name is not None:
        sets.append("full_name = %s")
        args.append(full_name)
    if role is not None:
        if (role is Role.CUSTOMER) != (current_role is Role.CUSTOMER):
            raise InvalidError("a staff user cannot become a customer or the other way round")
        sets.append("role = %s")
        args.append(role.value)
    if active is not None:
        sets.append("active = %s")
        args.append(active)
    if password is not None:
        _refuse_password(password, role=role or current_role, username=before["username"])
        sets.append("password_hash = %s, password_set_at = %s")
        args += [hash_password(password), now]
    if not sets:
        return before, before
    logout_everywhere = password is not None or (active is False and before["active"])
    if logout_everywhere or (role is not None and role is not current_role):
        sets.append("token_version = token_version + 1")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE api_users SET {', '.join(sets)} WHERE id = %s RETURNING {USER_COLUMNS}",  # noqa: S608 - the SET list is made of this function's constants
            [*args, user_id],
        )
        after = await cur.fetchone()
    assert after is not None
    if logout_everywhere:
        await conn.execute(
            "UPDATE api_refresh_tokens SET revoked_at = %s "
            "WHERE user_id = %s AND revoked_at IS NULL",
            (now, user_id),
        )
    return before, after


async def list_users(
    conn: AsyncConnection[Any], pg: Page, *, role: Role | None = None, q: str | None = None
) -> dict[str, Any]:
    """A page of users (:data:`USER_COLUMNS`) by id, filtered by role and part of the name."""
    w = Where().add(VISIBLE_USER).eq("role", None if role is None else role.value)
    if q:
        w.add("(username ILIKE %s OR full_name ILIKE %s)", f"%{q}%", f"%{q}%")
    return await fetch_page(conn, USER_SQL, w, "id", pg)


async def all_users(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every user (:data:`USER_COLUMNS`, with ``regional`` and their branch's ``code`` as
    ``branch``) by id."""
    return await fetch_all(
        conn,
        "SELECT u.id, u.username, u.full_name, u.role, u.account_no, u.active, u.created_at, "
        "u.regional, b.code AS branch FROM api_users u LEFT JOIN branches b ON b.id = u.branch_id "
        "ORDER BY u.id",
    )


async def require_regional(conn: AsyncConnection[Any]) -> None:
    """Refuse (403) unless the session sees every branch: moving users between branches is
    the regional office's."""
    if not (await session_scope(conn)).all:
        raise ForbiddenError("only a regional administrator moves users between branches")


async def branch_id_of(conn: AsyncConnection[Any], code: str) -> int:
    """The id of the branch ``code`` the session sees (422 ``no_such_branch`` otherwise)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT id FROM branches WHERE code = %s", (code.strip().upper(),))
        row = await cur.fetchone()
    if row is None:
        raise InvalidError(f"no branch {code!r}", code="no_such_branch")
    return int(row[0])


async def set_scope(
    conn: AsyncConnection[Any], user_id: int, *, branch_id: int | None, regional: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Put a staff user in a branch (``branch_id``) or in the region (``regional``); returns
    the row before and after. Their tokens stop working at once (the token version goes up):
    the next login gives tokens of the new scope."""
    if (branch_id is None) != regional:
        raise InvalidError("give either a branch or the regional scope", code="branch_conflict")
    await require_regional(conn)
    cols = f"{USER_COLUMNS}, branch_id, regional"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {cols} FROM api_users WHERE id = %s AND {VISIBLE_USER} FOR UPDATE",  # noqa: S608 - constants
            (user_id,),
        )
        before = await cur.fetchone()
        if before is None:
            raise NotFoundError(f"no user with id {user_id}")
        if before["role"] == Role.CUSTOMER.value:
            raise InvalidError("customers belong to no branch: their account does")
        try:
            await cur.execute(
                "UPDATE api_users SET branch_id = %s, regional = %s, "  # noqa: S608 - constants
                f"token_version = token_version + 1 WHERE id = %s RETURNING {cols}",
                (branch_id, regional, user_id),
            )
        except errors.ForeignKeyViolation as exc:
            raise InvalidError(f"no branch with id {branch_id}", code="no_such_branch") from exc
        after = await cur.fetchone()
    assert after is not None
    return before, after

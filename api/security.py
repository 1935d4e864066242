"""Pure security core: roles, password hashing, JWT tokens, CSRF tokens, login rate limits.

Nothing here touches the database or the network; time is passed in as ``now``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.errors import NotAuthenticatedError


class Role(StrEnum):
    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    TECHNICIAN = "technician"
    BILLING_CLERK = "billing_clerk"
    CASHIER = "cashier"
    ACCOUNTANT = "accountant"
    LAWYER = "lawyer"
    VIEWER = "viewer"
    CUSTOMER = "customer"


STAFF: frozenset[Role] = frozenset(r for r in Role if r is not Role.CUSTOMER)
"""Every role except customer."""

# Endpoint groups and the roles allowed to use them; the single source of the role matrix.
READ_REGISTRY = STAFF
WRITE_REGISTRY = frozenset({Role.ADMIN, Role.TECHNICIAN})
SEND_COMMANDS = frozenset({Role.ADMIN, Role.DISPATCHER, Role.TECHNICIAN})
MANAGE_USERS = frozenset({Role.ADMIN})
READ_AUDIT = frozenset({Role.ADMIN, Role.ACCOUNTANT})
ISSUE_CUSTOMER_CODES = frozenset({Role.ADMIN, Role.BILLING_CLERK})
CUSTOMER_SELF = frozenset({Role.CUSTOMER})
READ_BILLING = frozenset(
    {
        Role.ADMIN,
        Role.BILLING_CLERK,
        Role.CASHIER,
        Role.ACCOUNTANT,
        Role.LAWYER,
        Role.VIEWER,
    }
)
RUN_BILLING = frozenset({Role.ADMIN, Role.BILLING_CLERK})
REPORTS = frozenset(
    {Role.ADMIN, Role.ACCOUNTANT, Role.LAWYER, Role.BILLING_CLERK, Role.DISPATCHER, Role.VIEWER}
)
ALARMS_READ = STAFF
ALARMS_HANDLE = frozenset({Role.ADMIN, Role.DISPATCHER, Role.TECHNICIAN})

# --------------------------------------------------------------------------------- passwords

_hasher = PasswordHasher()
MIN_PASSWORD_LEN = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LEN:
        return f"the password must have at least {MIN_PASSWORD_LEN} characters"
    if len(password) > 256:
        return "the password must have at most 256 characters"
    if password.strip() != password:
        return "the password must not start or end with spaces"
    return None


@functools.cache
def dummy_hash() -> str:
    """A hash that lets a login for an unknown user cost as much as one for a known user
    (made on first use, not at import: hashing takes a noticeable fraction of a second)."""
    return _hasher.hash("suvnet-dummy-password")


# ------------------------------------------------------------------------------------ tokens

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=14)
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    username: str
    role: Role
    account_no: str | None = None

    @property
    def is_customer(self) -> bool:
        return self.role is Role.CUSTOMER


def make_access_token(p: Principal, secret: str, now: datetime) -> str:
    claims: dict[str, Any] = {
        "sub": str(p.user_id),
        "usr": p.username,
        "role": p.role.value,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + ACCESS_TTL).timestamp()),
    }
    if p.account_no is not None:
        claims["acc"] = p.account_no
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def make_refresh_token(user_id: int, secret: str, now: datetime) -> tuple[str, uuid.UUID]:
    jti = uuid.uuid4()
    claims = {
        "sub": str(user_id),
        "typ": "refresh",
        "jti": str(jti),
        "iat": int(now.timestamp()),
        "exp": int((now + REFRESH_TTL).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), jti


def _decode(token: str, secret: str, now: datetime, typ: Literal["access", "refresh"]) -> Any:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # expiry is checked below against the injected clock, not the library's
            options={"require": ["exp", "sub", "typ"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise NotAuthenticatedError("the token is invalid") from exc
    if claims.get("typ") != typ:
        raise NotAuthenticatedError(f"this is not {'an' if typ == 'access' else 'a'} {typ} token")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= int(now.timestamp()):
        raise NotAuthenticatedError("the token has expired; log in again")
    return claims


class TokenCache:
    """Verified access tokens, so a token's signature is checked once, not on every request.

    Keyed by the exact token text and the secret: a hit means this very string was verified
    with this very key. Only tokens that passed verification are kept, with their expiry,
    which is still checked against ``now`` on every hit. At most ``size`` entries; the least
    recently used go first when it is full (overflow policy: evict, never refuse).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[Principal, int]] = OrderedDict()

    def get(self, token: str, secret: str) -> tuple[Principal, int] | None:
        key = (secret, token)
        hit = self._items.get(key)
        if hit is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread
                self._items.move_to_end(key)
        return hit

    def put(self, token: str, secret: str, principal: Principal, exp: int) -> None:
        self._items[(secret, token)] = (principal, exp)
        self._items.move_to_end((secret, token))
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


access_tokens = TokenCache()
"""The process-wide cache used by :func:`read_access_token`."""


def read_access_token(
    token: str, secret: str, now: datetime, cache: TokenCache | None = access_tokens
) -> Principal:
    """The caller named by a valid, unexpired access token (verified once per token)."""
    hit = cache.get(token, secret) if cache is not None else None
    if hit is not None:
        principal, exp = hit
        if exp <= int(now.timestamp()):
            raise NotAuthenticatedError("the token has expired; log in again")
        return principal
    claims = _decode(token, secret, now, "access")
    try:
        role = Role(claims["role"])
        principal = Principal(int(claims["sub"]), str(claims["usr"]), role, claims.get("acc"))
    except (KeyError, ValueError) as exc:
        raise NotAuthenticatedError("the token is invalid") from exc
    if cache is not None:
        cache.put(token, secret, principal, int(claims["exp"]))
    return principal


def read_refresh_token(token: str, secret: str, now: datetime) -> tuple[int, uuid.UUID]:
    claims = _decode(token, secret, now, "refresh")
    try:
        return int(claims["sub"]), uuid.UUID(str(claims["jti"]))
    except (KeyError, ValueError) as exc:
        raise NotAuthenticatedError("the token is invalid") from exc


# -------------------------------------------------------------------------------------- CSRF


def make_csrf_token(secret: str) -> str:
    """A random token with its HMAC: sent as a cookie and repeated in every form."""
    nonce = secrets.token_urlsafe(18)
    mac = hmac.new(secret.encode(), b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{nonce}.{mac}"


def csrf_ok(secret: str, cookie: str | None, form_value: str | None) -> bool:
    if not cookie or not form_value or not hmac.compare_digest(cookie, form_value):
        return False
    nonce, _, mac = cookie.partition(".")
    want = hmac.new(secret.encode(), b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return hmac.compare_digest(mac, want)


# ------------------------------------------------------------------------------ rate limiting


@dataclass(frozen=True)
class RateLimitPolicy:
    """Failed logins allowed per user name and per client address in a sliding window."""

    window: timedelta = timedelta(minutes=15)
    max_failures_per_user: int = 5
    max_failures_per_ip: int = 30


def login_blocked(
    user_failures: list[datetime],
    ip_failures: list[datetime],
    now: datetime,
    policy: RateLimitPolicy,
) -> int:
    """Seconds to wait before the next attempt (0: allowed). Failures are timestamps."""
    since = now - policy.window
    waits = [0]
    for fails, limit in (
        (user_failures, policy.max_failures_per_user),
        (ip_failures, policy.max_failures_per_ip),
    ):
        recent = sorted(t for t in fails if t > since)
        if len(recent) >= limit:
            # the window frees up when the oldest counted failure drops out of it
            oldest = recent[len(recent) - limit]
            waits.append(max(1, int((oldest + policy.window - now).total_seconds()) + 1))
    return max(waits)


# --------------------------------------------------------------------------- one-time codes


def new_one_time_code() -> str:
    """An 8-digit code for a customer's first password (read out or printed at the office)."""
    return f"{secrets.randbelow(10**8):08d}"

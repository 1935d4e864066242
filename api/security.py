"""Pure security core: roles, password hashing, JWT tokens, CSRF tokens, login rate limits.

Nothing here touches the database or the network; time is passed in as ``now``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
import string
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
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
_ROLE_VALUES = frozenset(r.value for r in Role)

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
CASHIER_DESK = frozenset({Role.CASHIER, Role.ACCOUNTANT, Role.ADMIN})
"""Take desk payments, print receipts, void one's own payments of the day, one's shift."""
VOID_ANY = frozenset({Role.ACCOUNTANT, Role.ADMIN})
"""Void any desk payment; see any cashier's shift."""
STATEMENTS = frozenset({Role.ACCOUNTANT, Role.ADMIN, Role.BILLING_CLERK})
"""Upload bank statements, work the review queue."""
REPORT_ROLES: dict[str, frozenset[Role]] = {
    "accounting": frozenset({Role.ADMIN, Role.ACCOUNTANT, Role.BILLING_CLERK, Role.VIEWER}),
    "finance": frozenset({Role.ADMIN, Role.ACCOUNTANT, Role.VIEWER}),
    "legal": frozenset({Role.ADMIN, Role.LAWYER, Role.ACCOUNTANT}),
    "customer_service": frozenset({Role.ADMIN, Role.BILLING_CLERK, Role.VIEWER}),
    "technical": frozenset({Role.ADMIN, Role.DISPATCHER, Role.TECHNICIAN, Role.VIEWER}),
}
"""Each department report and the roles that may read it (the report API and its page)."""

# --------------------------------------------------------------------------------- passwords

_hasher = PasswordHasher()
MIN_PASSWORD_LEN = 8
MIN_STAFF_PASSWORD_LEN = 10
STAFF_PASSPHRASE_LEN = 16
"""Staff passwords of at least this length need not mix character classes (passphrases)."""
MIN_DIGITS_ONLY_LEN = 12
MAX_PASSWORD_LEN = 256
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-passwords.txt"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords, lower case (loaded on first use)."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


@dataclass(frozen=True)
class PasswordProblem:
    """Why a new password is refused: ``code`` for programs, ``message`` for people."""

    code: str
    message: str


def _char_classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def _run_free_length(text: str) -> int:
    """Characters that do not continue a run of equal steps ("aaa", "abc", "987")."""
    return sum(
        1
        for i, c in enumerate(text)
        if i < 2
        or ord(c) - ord(text[i - 1]) != ord(text[i - 1]) - ord(text[i - 2])
        or abs(ord(c) - ord(text[i - 1])) > 1
    )


def password_check(
    password: str, *, staff: bool = False, username: str | None = None
) -> PasswordProblem | None:
    """Why a new password is refused, or None when it is acceptable.

    Every password: 8 to 256 characters, no spaces at either end, not one of the bundled
    common passwords (api/data/common-passwords.txt, compared in lower case, also with digits
    and symbols at either end removed: "Parol2024!" counts as "parol"), not the user name,
    not only digits unless 12 or more, and not mostly repeats or sequences ("aaaa", "abcd").
    Staff (every role but customer): at least 10 characters and two character classes
    (lower case, upper case, digits, other), or a passphrase of 16 characters or more.
    """
    n = len(password)
    if n < MIN_PASSWORD_LEN:
        return PasswordProblem(
            "password_too_short", f"the password must have at least {MIN_PASSWORD_LEN} characters"
        )
    if n > MAX_PASSWORD_LEN:
        return PasswordProblem(
            "password_too_long", f"the password must have at most {MAX_PASSWORD_LEN} characters"
        )
    if password.strip() != password:
        return PasswordProblem("password_spaces", "the password must not start or end with spaces")
    if staff and n < MIN_STAFF_PASSWORD_LEN:
        return PasswordProblem(
            "password_too_short",
            f"a staff password must have at least {MIN_STAFF_PASSWORD_LEN} characters",
        )
    lowered = password.lower()
    core = lowered.strip(string.digits + string.punctuation + " ")
    common = common_passwords()
    if lowered in common or core in common:
        return PasswordProblem(
            "password_too_common",
            "this password is one of the most common ones (or one with digits added); "
            "choose another",
        )
    name = (username or "").strip().lower()
    if len(name) >= 3 and name in lowered:
        return PasswordProblem(
            "password_contains_username", "the password must not contain the user name"
        )
    if password.isdigit() and n < MIN_DIGITS_ONLY_LEN:
        return PasswordProblem(
            "password_too_simple",
            f"a password of digits only must have at least {MIN_DIGITS_ONLY_LEN} of them; "
            "add letters",
        )
    if len(set(password)) < 4 or _run_free_length(password) < MIN_PASSWORD_LEN - 2:
        return PasswordProblem(
            "password_too_simple",
            "the password is mostly repeats or sequences (like 'aaaa' or 'abcd')",
        )
    if staff and n < STAFF_PASSPHRASE_LEN and _char_classes(password) < 2:
        return PasswordProblem(
            "password_too_simple",
            "a staff password needs two kinds of characters (lower case, upper case, digits, "
            f"other), or at least {STAFF_PASSPHRASE_LEN} characters",
        )
    return None


def password_problem(
    password: str, *, staff: bool = False, username: str | None = None
) -> str | None:
    """The message of :func:`password_check`, or None when the password is acceptable."""
    problem = password_check(password, staff=staff, username=username)
    return None if problem is None else problem.message


@functools.cache
def dummy_hash() -> str:
    """A hash that lets a login for an unknown user cost as much as one for a known user
    (made on first use, not at import: hashing takes a noticeable fraction of a second)."""
    return _hasher.hash("suvnet-dummy-password")


# ------------------------------------------------------------------------------------ tokens

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=14)
REFRESH_REUSE_GRACE = timedelta(seconds=20)
"""A rotated refresh token presented again within this time is refused without revoking its
family: two requests of one browser racing to renew the same session, not a theft."""
ALGORITHM = "HS256"
FIRST_TOKEN_VERSION = 1
"""``api_users.token_version`` of a new user (the column default, migration 0501)."""


APP_ROLE = "suvnet_app"
"""The database role every API request runs as (``SET ROLE``): it owns no table, so the
row-level security policies of migration 0801 apply to it (docs/branches.md)."""
ALL_BRANCHES = "*"
"""``suvnet.branches`` of a session that sees every branch."""
NO_BRANCHES = ""
"""``suvnet.branches`` of a session that sees no branch's data (requests without a login)."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller.

    ``token_version`` is the user's version when the token was made; the API compares it
    with ``api_users.token_version`` on every request (api.users.check_principal).
    ``branch_id`` is the staff user's branch; None for a regional user (and customers), who
    sees every branch. It is compared with the users table on every request as well.
    """

    user_id: int
    username: str
    role: Role
    account_no: str | None = None
    token_version: int = FIRST_TOKEN_VERSION
    branch_id: int | None = None

    @property
    def is_customer(self) -> bool:
        return self.role is Role.CUSTOMER

    @property
    def branches(self) -> str:
        """The data this caller sees, as the database setting ``suvnet.branches`` takes it:
        ``*`` every branch (regional staff; customers, whose every query is of their own
        account), else the branch's id (docs/branches.md)."""
        if self.branch_id is None or self.role is Role.CUSTOMER:
            return ALL_BRANCHES
        return str(self.branch_id)


def make_access_token(p: Principal, secret: str, now: datetime) -> str:
    claims: dict[str, Any] = {
        "sub": str(p.user_id),
        "usr": p.username,
        "role": p.role.value,
        "ver": p.token_version,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + ACCESS_TTL).timestamp()),
    }
    if p.account_no is not None:
        claims["acc"] = p.account_no
    if p.branch_id is not None:
        claims["br"] = p.branch_id
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


def _decode(
    token: str,
    secret: str,
    now: datetime,
    typ: Literal["access", "refresh"],
    *,
    allow_expired: bool = False,
) -> Any:
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
    if not isinstance(exp, int) or (not allow_expired and exp <= int(now.timestamp())):
        raise NotAuthenticatedError("the token has expired; log in again")
    return claims


NO_BRANCH_PROBLEM = (
    "this user belongs to no branch and is not regional: an administrator must give them a "
    "branch (suvnet users set-branch NAME BRANCH) or the regional scope (--regional)"
)


def scope_problem(role: str, branch_id: int | None, regional: bool) -> str | None:
    """Why a user with this role and scope may not log in (None: they may). A staff user
    belongs to one branch or to the region; one with neither (say, their branch was deleted)
    is refused until an administrator places them."""
    if role != Role.CUSTOMER.value and branch_id is None and not regional:
        return NO_BRANCH_PROBLEM
    return None


def token_problem(p: Principal, user: tuple[Any, ...] | None) -> str | None:
    """Why the token of ``p`` no longer stands, given its user's row
    ``(role, account_no, active, token_version, branch_id, regional)`` (None: no such user);
    None when it stands. (A row without the last two is a regional user's.)
    """
    if user is None:
        return "the token's user does not exist; log in again"
    role, account_no, active, version, *scope = user
    branch_id, regional = scope if scope else (None, True)
    if not active:
        return "the user is disabled"
    if version != p.token_version:
        return (
            "the token was revoked (logout, new password, changed role or a disabled login); "
            "log in again"
        )
    if role != p.role.value or account_no != p.account_no:
        return "the token does not match the user's role or account; log in again"
    problem = scope_problem(role, branch_id, regional)
    if problem is not None:
        return problem
    if (None if regional or role == Role.CUSTOMER.value else branch_id) != p.branch_id:
        return "the token does not match the user's branch; log in again"
    return None


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
    version = claims.get("ver")
    account = claims.get("acc")
    branch = claims.get("br")
    if (
        type(version) is not int
        or (account is not None and not isinstance(account, str))
        or (branch is not None and type(branch) is not int)
        or claims.get("role") not in _ROLE_VALUES
    ):
        raise NotAuthenticatedError("the token is invalid; log in again")
    try:
        principal = Principal(
            int(claims["sub"]), str(claims["usr"]), Role(claims["role"]), account, version, branch
        )
    except (KeyError, ValueError) as exc:
        raise NotAuthenticatedError("the token is invalid; log in again") from exc
    if cache is not None:
        cache.put(token, secret, principal, int(claims["exp"]))
    return principal


def read_refresh_token(
    token: str, secret: str, now: datetime, *, allow_expired: bool = False
) -> tuple[int, uuid.UUID]:
    """The user id and token id of a refresh token (``allow_expired``: for logging out)."""
    claims = _decode(token, secret, now, "refresh", allow_expired=allow_expired)
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
    """Failed logins allowed in a sliding window, counted three ways.

    * per user name from one address (``max_failures_per_user_and_ip``): the first limit an
      attacker meets; it blocks only that address for that name, so guessing ``admin``'s
      password from one machine does not lock the real admin out elsewhere;
    * per address, any names (``max_failures_per_ip``): one machine trying many names;
    * per user name from every address (``max_failures_per_user``): a guess spread over many
      addresses. It does not apply to an address from which that user logged in successfully
      within ``known_source_for`` (the user's own office or phone), so even then the real
      user keeps getting in from a known place.
    """

    window: timedelta = timedelta(minutes=15)
    max_failures_per_user_and_ip: int = 5
    max_failures_per_ip: int = 30
    max_failures_per_user: int = 100
    known_source_for: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class LoginFailures:
    """Failed attempts (timestamps) that count for one login attempt."""

    user_and_ip: list[datetime]
    """this user name from this address"""
    ip: list[datetime]
    """any user name from this address"""
    user: list[datetime]
    """this user name from any address"""
    known_source: bool = False
    """the user logged in successfully from this address recently"""


def _wait(fails: list[datetime], limit: int, now: datetime, window: timedelta) -> int:
    recent = sorted(t for t in fails if t > now - window)
    if len(recent) < limit:
        return 0
    # the window frees up when the oldest counted failure drops out of it
    oldest = recent[len(recent) - limit]
    return max(1, int((oldest + window - now).total_seconds()) + 1)


def login_blocked(failures: LoginFailures, now: datetime, policy: RateLimitPolicy) -> int:
    """Seconds to wait before the next attempt (0: allowed)."""
    waits = [
        _wait(failures.user_and_ip, policy.max_failures_per_user_and_ip, now, policy.window),
        _wait(failures.ip, policy.max_failures_per_ip, now, policy.window),
    ]
    if not failures.known_source:
        waits.append(_wait(failures.user, policy.max_failures_per_user, now, policy.window))
    return max(waits)


# --------------------------------------------------------------------------- one-time codes


def new_one_time_code() -> str:
    """An 8-digit code for a customer's first password (read out or printed at the office)."""
    return f"{secrets.randbelow(10**8):08d}"

"""Pure parts: tokens, passwords, CSRF, rate-limit arithmetic, resolution choice, money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.commands import command_problem, parse_mqtt_url
from api.errors import NotAuthenticatedError
from api.i18n import format_som, pick_language
from api.security import (
    LoginFailures,
    Principal,
    RateLimitPolicy,
    Role,
    common_passwords,
    csrf_ok,
    hash_password,
    login_blocked,
    make_access_token,
    make_csrf_token,
    make_refresh_token,
    password_check,
    password_problem,
    read_access_token,
    read_refresh_token,
    token_problem,
    verify_password,
)
from suvnet.registry_queries import choose_resolution

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "k" * 40


def test_password_hash_roundtrip() -> None:
    h = hash_password("correct-horse-9")
    assert h.startswith("$argon2")
    assert verify_password(h, "correct-horse-9")
    assert not verify_password(h, "correct-horse-8")
    assert not verify_password("not-a-hash", "x")


@pytest.mark.parametrize(
    ("pw", "ok"),
    [
        ("short", False),
        ("kitob-ozod", True),
        (" spaced-out ", False),
        ("x" * 257, False),
        # common passwords, also with digits or symbols around them
        ("12345678", False),
        ("password1", False),
        ("Qwerty123!", False),
        ("parol2024", False),
        ("gfhjkm12", False),  # "пароль" typed on an English keyboard
        ("йцукен2020", False),
        ("Suvnet2026", False),
        # repeats, sequences, digits only
        ("aaaaaaaaaa", False),
        ("abcdefghij", False),
        ("20011987", False),
        ("998901234567", True),
    ],
)
def test_password_rules(pw: str, ok: bool) -> None:
    assert (password_problem(pw) is None) is ok


@pytest.mark.parametrize(
    ("pw", "username", "code"),
    [
        ("kitob-oz1", "ali", "password_too_short"),  # 10 needed for staff
        ("kitobozodlar", "ali", "password_too_simple"),  # one character class, < 16
        ("kitobozodlarkutubxonasi", "ali", None),  # a long passphrase may be lower case
        ("Kitobozodlar", "ali", None),
        ("ozod-dilnoza-7", "dilnoza", "password_contains_username"),
        ("Admin12345", "ali", "password_too_common"),
    ],
)
def test_staff_password_rules(pw: str, username: str, code: str | None) -> None:
    problem = password_check(pw, staff=True, username=username)
    assert (problem.code if problem else None) == code
    if code == "password_too_short":  # the same password is fine for a customer
        assert password_check(pw, staff=False, username=username) is None


def test_common_password_list_is_bundled() -> None:
    common = common_passwords()
    assert len(common) > 10_000
    assert {"123456", "qwerty", "parol", "password1", "suvnet", "gfhjkm"} <= common
    assert all(p == p.lower() for p in common)


def test_access_token_roundtrip_and_expiry() -> None:
    p = Principal(7, "ali", Role.CASHIER)
    tok = make_access_token(p, KEY, T0)
    assert read_access_token(tok, KEY, T0 + timedelta(minutes=14)) == p
    with pytest.raises(NotAuthenticatedError, match="expired"):
        read_access_token(tok, KEY, T0 + timedelta(minutes=15))
    with pytest.raises(NotAuthenticatedError):
        read_access_token(tok, "other" * 10, T0)


def test_refresh_token_is_not_an_access_token() -> None:
    tok, jti = make_refresh_token(5, KEY, T0)
    assert read_refresh_token(tok, KEY, T0) == (5, jti)
    with pytest.raises(NotAuthenticatedError, match="not an access token"):
        read_access_token(tok, KEY, T0)
    access = make_access_token(Principal(5, "x", Role.ADMIN), KEY, T0)
    with pytest.raises(NotAuthenticatedError, match="not a refresh token"):
        read_refresh_token(access, KEY, T0)


def test_customer_token_carries_account() -> None:
    p = Principal(9, "000000018", Role.CUSTOMER, "000000018")
    assert read_access_token(make_access_token(p, KEY, T0), KEY, T0).account_no == "000000018"


def test_csrf() -> None:
    tok = make_csrf_token(KEY)
    assert csrf_ok(KEY, tok, tok)
    assert not csrf_ok(KEY, tok, None)
    assert not csrf_ok(KEY, tok, make_csrf_token(KEY))
    forged = "abc.def"
    assert not csrf_ok(KEY, forged, forged)
    assert not csrf_ok("x" * 40, tok, tok)


def test_login_blocked_counts_only_the_window() -> None:
    pol = RateLimitPolicy(
        window=timedelta(minutes=15),
        max_failures_per_user_and_ip=3,
        max_failures_per_ip=10,
        max_failures_per_user=20,
    )

    def blocked(pair: list[datetime], ip: list[datetime], user: list[datetime]) -> int:
        return login_blocked(LoginFailures(pair, ip, user), T0, pol)

    fails = [T0 - timedelta(minutes=m) for m in (1, 2, 3)]
    wait = blocked(fails, fails, fails)
    # the oldest counted failure (3 min ago) leaves the window in 12 minutes
    assert 12 * 60 <= wait <= 12 * 60 + 1
    assert blocked(fails[:2], fails[:2], fails[:2]) == 0
    old = [T0 - timedelta(minutes=m) for m in (16, 17, 18)]
    assert blocked(old, old, old) == 0
    many_ip = [T0 - timedelta(seconds=s) for s in range(10)]
    assert blocked([], many_ip, []) > 0


def test_failures_from_elsewhere_do_not_block_this_address() -> None:
    """Three failures per name and address: an attacker at one address is stopped there,
    the same name from another address still gets in; only many failures from many
    addresses block the name, and never from an address the user logged in from before."""
    pol = RateLimitPolicy(
        max_failures_per_user_and_ip=3, max_failures_per_ip=10, max_failures_per_user=20
    )
    attacker = [T0 - timedelta(seconds=s) for s in range(3)]
    assert login_blocked(LoginFailures(attacker, attacker, attacker), T0, pol) > 0
    assert login_blocked(LoginFailures([], [], attacker), T0, pol) == 0  # the real user
    botnet = [T0 - timedelta(seconds=s) for s in range(25)]
    assert login_blocked(LoginFailures([], [], botnet), T0, pol) > 0
    assert login_blocked(LoginFailures([], [], botnet, known_source=True), T0, pol) == 0


def test_token_problem_compares_the_user_row() -> None:
    p = Principal(5, "ali", Role.CASHIER, None, 3)
    assert token_problem(p, ("cashier", None, True, 3)) is None
    assert "does not exist" in (token_problem(p, None) or "")
    assert "disabled" in (token_problem(p, ("cashier", None, False, 3)) or "")
    assert "revoked" in (token_problem(p, ("cashier", None, True, 4)) or "")
    assert "role" in (token_problem(p, ("viewer", None, True, 3)) or "")
    c = Principal(6, "000000018", Role.CUSTOMER, "000000018", 1)
    assert "account" in (token_problem(c, ("customer", "000000026", True, 1)) or "")


def test_access_token_without_version_is_refused() -> None:
    import jwt

    claims = {"sub": "5", "usr": "ali", "role": "admin", "typ": "access", "exp": 2**40}
    with pytest.raises(NotAuthenticatedError, match="invalid"):
        read_access_token(jwt.encode(claims, KEY, algorithm="HS256"), KEY, T0, None)
    claims["ver"] = 1
    assert read_access_token(jwt.encode(claims, KEY, algorithm="HS256"), KEY, T0, None) == (
        Principal(5, "ali", Role.ADMIN, None, 1)
    )


@pytest.mark.parametrize(
    ("hours", "res"),
    [
        (1, "raw"),
        (6, "raw"),
        (7, "5m"),
        (72, "5m"),
        (73, "1h"),
        (30 * 24, "1h"),
        (93 * 24, "1h"),
        (94 * 24, "1d"),
        (365 * 24, "1d"),
    ],
)
def test_choose_resolution(hours: int, res: str) -> None:
    assert choose_resolution(T0, T0 + timedelta(hours=hours)).resolution == res


def test_choose_resolution_explicit_and_bad() -> None:
    q = choose_resolution(T0, T0 + timedelta(days=300), "5m")
    assert (q.resolution, q.table) == ("5m", "readings_5m")
    with pytest.raises(ValueError, match="later"):
        choose_resolution(T0, T0)
    with pytest.raises(ValueError, match="resolution"):
        choose_resolution(T0, T0 + timedelta(hours=1), "2m")


def test_format_som() -> None:
    assert format_som(1_234_567) == "12\u202f345,67"
    assert format_som(-5) == "-0,05"
    assert format_som(0) == "0,00"


def test_pick_language() -> None:
    assert pick_language(None, None) == "uz"
    assert pick_language("ru", "en") == "ru"
    assert pick_language("xx", "uz_Cyrl") == "uz_Cyrl"
    assert pick_language(None, "zz") == "uz"


def test_command_problem() -> None:
    assert command_problem("write", "setpoint", 2.5, []) is None
    assert "only setpoints" in (command_problem("write", "analog", 2.5, []) or "")
    assert "does not exist" in (command_problem("write", None, 2.5, []) or "")
    assert "needs a value" in (command_problem("write", "setpoint", None, []) or "")
    assert command_problem("schedule", None, None, [("06:00", 3.0)]) is None
    assert "at least one" in (command_problem("schedule", None, None, []) or "")


def test_parse_mqtt_url() -> None:
    a = parse_mqtt_url("mqtts://u%40x:p@broker:8884")
    assert (a.host, a.port, a.username, a.password, a.tls) == ("broker", 8884, "u@x", "p", True)
    assert parse_mqtt_url("mqtt://127.0.0.1").port == 1883


def test_token_validity_follows_the_injected_clock() -> None:
    """Expiry (and issue time) are judged by the clock passed in, not the wall clock: a
    token made long ago is valid at that time, one made far ahead is valid then."""
    p = Principal(3, "tester", Role.VIEWER)
    for at in (datetime(2001, 5, 1, tzinfo=UTC), datetime(2100, 5, 1, tzinfo=UTC)):
        token = make_access_token(p, KEY, at)
        assert read_access_token(token, KEY, at + timedelta(minutes=1), None) == p
        with pytest.raises(NotAuthenticatedError, match="expired"):
            read_access_token(token, KEY, at + timedelta(minutes=16), None)

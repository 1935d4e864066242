"""Mosquitto password and ACL files from the gateway registry (``suvnet mqtt acl``).

Every allowed gateway (``gateways.allowed``) gets a broker user named by its code that may

* publish only its own ``telemetry``, ``state`` (birth, last will, health) and ``cmd/result``;
* read only its own ``cmd`` and ``ack``.

Office services get their own users: ``suvnet-ingest`` reads telemetry and state and
publishes acks, ``suvnet-api`` publishes commands and reads their results and the states,
``suvnet-office`` (alarms, diagnostics, the demo) may read and write everything under the
topic root. Anonymous clients get nothing (``allow_anonymous false`` in mosquitto.conf).

Client ids are tied to users (no session takeover). MQTT lets a new connection with a
client id that is already connected throw the old one off; a broker that only checks the
password would let gw-north's credentials connect as ``gw-south`` (or as an ingest worker)
and disconnect it, again and again. Mosquitto has no per-user client-id rule, so:

* the gateways have a listener of their own (8883, TLS) with ``use_username_as_clientid
  true``: whatever client id a gateway sends, the broker uses its user name, so a gateway's
  credentials can only ever hold or replace that gateway's own session;
* the office services have another listener (1883, inside the office network) where several
  processes share one user (ingest workers, API workers, health checks) and keep client ids
  of their own, all starting with ``suvnet-`` (:data:`OFFICE_ID_PREFIX`), a prefix no gateway
  code may have, so no gateway's forced id can equal an office client's id;
* ``per_listener_settings true`` gives each listener its own password file: gateways are in
  ``gateways.passwd`` (8883 only), the services in ``passwd`` (1883 only). A gateway password
  does not open the office listener, where client ids are free.

:func:`check_broker_conf` finds a mosquitto.conf that breaks these rules.

Passwords: a user already in an existing password file keeps its hash, so running the
command again changes nothing for gateways already installed (a ``passwd`` of the older
layout, which held gateways too, is read as well: its gateways move to ``gateways.passwd``
with their hashes). New users get a random password, written once to
``new-credentials.txt`` (mode 0600) for the technician. Users no longer in the registry (a
gateway removed or not allowed) are dropped. Hashes use Mosquitto 2's PBKDF2-SHA512 format
(``$7$``), the same as ``mosquitto_passwd`` writes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from dashboards.errors import AclError

PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")

OFFICE_ID_PREFIX = "suvnet-"
"""Office users and office client ids start with this; gateway codes may not."""
ACL_FILE = "acl"
OFFICE_USERS_FILE = "passwd"
"""Office services' password file: the office listener (1883) only."""
GATEWAY_USERS_FILE = "gateways.passwd"
"""Gateways' password file: the gateway listener (8883, ``use_username_as_clientid``) only."""

Access = Literal["read", "write", "readwrite"]
Kind = Literal["gateway", "office"]


@dataclass(frozen=True)
class Rule:
    access: Access
    topic: str


@dataclass(frozen=True)
class BrokerUser:
    name: str
    rules: tuple[Rule, ...]
    comment: str = ""
    kind: Kind = "office"


def hash_password(
    password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """The Mosquitto 2 password-file hash of ``password`` (``$7$iterations$salt$hash``)."""
    if not password:
        raise AclError("an MQTT password must not be empty")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    dk = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """True if ``hashed`` (``$7$`` format) is the hash of ``password``."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise AclError("not a Mosquitto PBKDF2-SHA512 ($7$) hash")
    salt = base64.b64decode(parts[3])
    return secrets.compare_digest(hash_password(password, salt, int(parts[2])), hashed)


def gateway_user(code: str, root: str = "suvnet") -> BrokerUser:
    if not _USER_RE.match(code):
        raise AclError(f"gateway code {code!r} cannot be a broker user name")
    if code.lower().startswith(OFFICE_ID_PREFIX):
        # its forced client id could then equal an office client's id (e.g. an ingest worker)
        raise AclError(
            f"gateway code {code!r} starts with {OFFICE_ID_PREFIX!r}, which is kept for the "
            "office services' MQTT client ids: rename the gateway"
        )
    base = f"{root}/v1/{code}"
    return BrokerUser(
        code,
        (
            Rule("write", f"{base}/telemetry"),
            Rule("write", f"{base}/state"),
            Rule("write", f"{base}/cmd/result"),
            Rule("read", f"{base}/cmd"),
            Rule("read", f"{base}/ack"),
            # values shared between gateways (a PRV controller on another gateway's sensor)
            Rule("write", f"{base}/value/#"),
            Rule("read", f"{root}/v1/+/value/#"),
        ),
        comment=f"gateway {code}",
        kind="gateway",
    )


def service_users(root: str = "suvnet") -> tuple[BrokerUser, ...]:
    v1 = f"{root}/v1"
    return (
        BrokerUser(
            "suvnet-ingest",
            (
                Rule("read", f"{v1}/+/telemetry"),
                Rule("read", f"$share/ingest/{v1}/+/telemetry"),
                Rule("read", f"{v1}/+/state"),
                Rule("write", f"{v1}/+/ack"),
            ),
            comment="ingest workers (shared subscription group 'ingest')",
        ),
        BrokerUser(
            "suvnet-api",
            (
                Rule("write", f"{v1}/+/cmd"),
                Rule("read", f"{v1}/+/cmd/result"),
                Rule("read", f"{v1}/+/state"),
            ),
            comment="the API: setpoint commands and their results",
        ),
        BrokerUser(
            "suvnet-office",
            (
                Rule("readwrite", f"{root}/#"),
                Rule("readwrite", f"$share/+/{root}/#"),
                Rule("read", "$SYS/#"),
            ),
            comment="alarms workers, diagnostics, health checks: everything under the root",
        ),
    )


def render_acl(users: Sequence[BrokerUser]) -> str:
    """The Mosquitto ACL file text (``acl_file``)."""
    lines = [
        "# Mosquitto ACL written by `suvnet mqtt acl` from the gateway registry.",
        "# Do not edit by hand: run the command again after changing gateways.",
        "",
    ]
    names = [u.name for u in users]
    if len(set(names)) != len(names):
        raise AclError(f"duplicate broker user names in {names}")
    for u in users:
        if u.comment:
            lines.append(f"# {u.comment}")
        lines.append(f"user {u.name}")
        lines += [f"topic {r.access} {r.topic}" for r in u.rules]
        lines.append("")
    return "\n".join(lines)


def parse_password_file(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed:
            raise AclError(f"password file line {n}: expected user:hash")
        out[user] = hashed
    return out


@dataclass(frozen=True)
class PasswordPlan:
    text: str
    new_credentials: Mapping[str, str]  # user -> clear password, only for new users
    removed: tuple[str, ...]


def plan_passwords(
    users: Sequence[BrokerUser],
    existing: Mapping[str, str],
    *,
    fixed: Mapping[str, str] | None = None,
    new_password: Any = None,
) -> PasswordPlan:
    """Keep existing hashes, create new users, drop users that are gone.

    ``fixed`` sets given users' passwords explicitly (e.g. the services', from the
    environment); ``new_password`` makes the random password for a new user (a callable).
    """
    fixed = fixed or {}
    make = new_password or (lambda: secrets.token_urlsafe(18))
    lines: list[str] = []
    created: dict[str, str] = {}
    for u in users:
        if u.name in fixed:
            old = existing.get(u.name)
            keep = old is not None and check_password(fixed[u.name], old)
            lines.append(f"{u.name}:{old if keep else hash_password(fixed[u.name])}")
        elif u.name in existing:
            lines.append(f"{u.name}:{existing[u.name]}")
        else:
            pw = str(make())
            created[u.name] = pw
            lines.append(f"{u.name}:{hash_password(pw)}")
    keep_names = {u.name for u in users}
    removed = tuple(sorted(n for n in existing if n not in keep_names))
    return PasswordPlan("\n".join(lines) + "\n", created, removed)


def registry_gateways(conn: psycopg.Connection[Any]) -> list[str]:
    """Codes of the gateways allowed to send telemetry."""
    try:
        rows = conn.execute("SELECT code FROM gateways WHERE allowed ORDER BY code").fetchall()
    except psycopg.Error as exc:
        raise AclError(f"cannot read the gateway registry: {exc}") from exc
    return [str(r[0]) for r in rows]


def all_users(gateways: Iterable[str], root: str) -> list[BrokerUser]:
    return [*service_users(root), *(gateway_user(g, root) for g in gateways)]


@dataclass(frozen=True)
class AclFiles:
    acl: Path
    passwd: Path
    """The office services' password file (office listener)."""
    gateway_passwd: Path
    """The gateways' password file (gateway listener)."""
    credentials: Path | None
    created: tuple[str, ...]
    removed: tuple[str, ...]


def _read_passwords(*paths: Path) -> dict[str, str]:
    """Every user:hash of the existing files (a user in several keeps its first hash)."""
    out: dict[str, str] = {}
    for path in paths:
        if path.exists():
            for user, hashed in parse_password_file(path.read_text()).items():
                out.setdefault(user, hashed)
    return out


def write_files(
    out: Path,
    gateways: Iterable[str],
    *,
    root: str = "suvnet",
    fixed: Mapping[str, str] | None = None,
) -> AclFiles:
    """Write ``out/acl``, ``out/passwd`` (office services) and ``out/gateways.passwd`` (and
    ``out/new-credentials.txt`` if users are new). Nothing is written if a gateway code is
    unusable (:class:`AclError` names it)."""
    users = all_users(gateways, root)
    acl_text = render_acl(users)
    office = [u for u in users if u.kind == "office"]
    gws = [u for u in users if u.kind == "gateway"]
    acl_path, cred_path = out / ACL_FILE, out / "new-credentials.txt"
    pw_path, gw_path = out / OFFICE_USERS_FILE, out / GATEWAY_USERS_FILE
    try:
        out.mkdir(parents=True, exist_ok=True)
        # gateways.passwd first: an office user of that name would be an error anyway, and
        # a ``passwd`` of the older layout still holds the gateways' hashes
        existing = _read_passwords(gw_path, pw_path)
        office_plan = plan_passwords(office, existing, fixed=fixed)
        gw_plan = plan_passwords(gws, existing, fixed=fixed)
        created = {**office_plan.new_credentials, **gw_plan.new_credentials}
        _write_private(acl_path, acl_text, 0o644)
        _write_private(pw_path, office_plan.text, 0o600)
        _write_private(gw_path, gw_plan.text, 0o600)
        if created:
            body = "".join(f"{u} {pw}\n" for u, pw in sorted(created.items()))
            header = (
                "# New MQTT users and their passwords (user password), written once.\n"
                "# Put each on its gateway (SUVNET_MQTT_URL=mqtts://user:password@broker:8883),\n"
                "# then delete this file.\n"
            )
            old = cred_path.read_text() if cred_path.exists() else header
            _write_private(cred_path, old + body, 0o600)
    except OSError as exc:
        raise AclError(f"cannot write the broker files in {out}: {exc}") from exc
    names = {u.name for u in users}
    return AclFiles(
        acl_path,
        pw_path,
        gw_path,
        cred_path if created else None,
        tuple(sorted(created)),
        tuple(sorted(n for n in existing if n not in names)),
    )


def _write_private(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# ------------------------------------------------------------------ mosquitto.conf check
@dataclass
class _Listener:
    where: str
    options: dict[str, str]


def _listeners(text: str) -> tuple[dict[str, str], list[_Listener]]:
    """Global options and the listener blocks of a mosquitto.conf (``include_dir`` is not
    followed: check the included files too)."""
    glob: dict[str, str] = {}
    blocks: list[_Listener] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "listener":
            blocks.append(_Listener(f"line {n} (listener {value})", {}))
        elif blocks:
            blocks[-1].options[key] = value
        else:
            glob[key] = value
    return glob, blocks


def check_broker_conf(text: str) -> list[str]:
    """The problems of a mosquitto.conf against the rules above (empty: none).

    * ``per_listener_settings true`` (each listener its own password file);
    * no listener lets anonymous clients in;
    * the gateways' password file is used only on listeners with
      ``use_username_as_clientid true`` (no session takeover);
    * the office password file is never on such a listener (several office processes share
      one user and would throw each other off), nor on the same listener as the gateways'.
    """
    glob, blocks = _listeners(text)
    problems: list[str] = []
    if glob.get("per_listener_settings", "false").lower() != "true":
        problems.append(
            "per_listener_settings is not true: the password files would apply to every "
            "listener, so a gateway's password would open the office listener, where client "
            "ids are not tied to users"
        )
    if not blocks:
        problems.append("no listener is configured")
    for b in blocks:
        o = b.options
        pw = Path(o.get("password_file", "")).name
        forced = o.get("use_username_as_clientid", "false").lower() == "true"
        if o.get("allow_anonymous", "false").lower() == "true":
            problems.append(f"{b.where}: allow_anonymous true lets anyone in")
        if not pw and o.get("allow_anonymous", "false").lower() != "false":
            problems.append(f"{b.where}: no password_file")
        if pw and "acl_file" not in o:
            problems.append(f"{b.where}: a password_file but no acl_file (every topic open)")
        if pw == GATEWAY_USERS_FILE and not forced:
            problems.append(
                f"{b.where}: gateways log in here without use_username_as_clientid true, so one "
                "gateway's password can take over another client's session"
            )
        if pw == OFFICE_USERS_FILE and forced:
            problems.append(
                f"{b.where}: use_username_as_clientid true on the office listener: ingest "
                "workers and other services sharing a user would throw each other off"
            )
        if pw and pw not in (GATEWAY_USERS_FILE, OFFICE_USERS_FILE):
            problems.append(
                f"{b.where}: password_file {pw!r} is not one written by `suvnet mqtt acl` "
                f"({OFFICE_USERS_FILE!r} for the office, {GATEWAY_USERS_FILE!r} for gateways)"
            )
    return problems

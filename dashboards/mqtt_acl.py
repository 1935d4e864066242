"""Mosquitto password and ACL files from the gateway registry (``suvnet mqtt acl``).

Every allowed gateway (``gateways.allowed``) gets a broker user named by its code that may

* publish only its own ``telemetry``, ``state`` (birth, last will, health) and ``cmd/result``;
* read only its own ``cmd`` and ``ack``.

Office services get their own users: ``suvnet-ingest`` reads telemetry and state and
publishes acks, ``suvnet-api`` publishes commands and reads their results and the states,
``suvnet-office`` (alarms, diagnostics, the demo) may read and write everything under the
topic root. Anonymous clients get nothing (``allow_anonymous false`` in mosquitto.conf).

Passwords: a user already in the existing password file keeps its hash, so running the
command again changes nothing for gateways already installed. New users get a random
password, written once to ``new-credentials.txt`` (mode 0600) for the technician. Users no
longer in the registry (a gateway removed or not allowed) are dropped. Hashes use Mosquitto
2's PBKDF2-SHA512 format (``$7$``), the same as ``mosquitto_passwd`` writes.
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

Access = Literal["read", "write", "readwrite"]


@dataclass(frozen=True)
class Rule:
    access: Access
    topic: str


@dataclass(frozen=True)
class BrokerUser:
    name: str
    rules: tuple[Rule, ...]
    comment: str = ""


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
    base = f"{root}/v1/{code}"
    return BrokerUser(
        code,
        (
            Rule("write", f"{base}/telemetry"),
            Rule("write", f"{base}/state"),
            Rule("write", f"{base}/cmd/result"),
            Rule("read", f"{base}/cmd"),
            Rule("read", f"{base}/ack"),
        ),
        comment=f"gateway {code}",
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
    credentials: Path | None
    created: tuple[str, ...]
    removed: tuple[str, ...]


def write_files(
    out: Path,
    gateways: Iterable[str],
    *,
    root: str = "suvnet",
    fixed: Mapping[str, str] | None = None,
) -> AclFiles:
    """Write ``out/acl`` and ``out/passwd`` (and ``out/new-credentials.txt`` if users are new)."""
    users = all_users(gateways, root)
    acl_path, pw_path, cred_path = out / "acl", out / "passwd", out / "new-credentials.txt"
    try:
        out.mkdir(parents=True, exist_ok=True)
        existing = parse_password_file(pw_path.read_text()) if pw_path.exists() else {}
        plan = plan_passwords(users, existing, fixed=fixed)
        _write_private(acl_path, render_acl(users), 0o644)
        _write_private(pw_path, plan.text, 0o600)
        if plan.new_credentials:
            body = "".join(f"{u} {pw}\n" for u, pw in sorted(plan.new_credentials.items()))
            header = (
                "# New MQTT users and their passwords (user password), written once.\n"
                "# Put each on its gateway (SUVNET_MQTT_URL=mqtts://user:password@broker...),\n"
                "# then delete this file.\n"
            )
            old = cred_path.read_text() if cred_path.exists() else header
            _write_private(cred_path, old + body, 0o600)
    except OSError as exc:
        raise AclError(f"cannot write the broker files in {out}: {exc}") from exc
    return AclFiles(
        acl_path,
        pw_path,
        cred_path if plan.new_credentials else None,
        tuple(sorted(plan.new_credentials)),
        plan.removed,
    )


def _write_private(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)

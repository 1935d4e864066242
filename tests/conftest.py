"""Shared test fixtures: real PostgreSQL and real MQTT.

* PostgreSQL: ``SUVNET_TEST_DATABASE_URL`` (a server URL whose user may create databases), else
  127.0.0.1:5432 when it answers, else the embedded PostgreSQL. A template database is migrated
  once per migration set; every test module gets a fresh clone of it.
* MQTT: ``SUVNET_TEST_MQTT_URL``, else Mosquitto on 127.0.0.1:1883 when it answers, else the
  embedded broker. Every test gets its own topic root, so tests never see each other's messages.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from suvnet.migrate import load_migrations, migrate


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def with_dbname(url: str, dbname: str) -> str:
    """Replace the database name of a PostgreSQL URL."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a PostgreSQL server database we may use to create and drop databases."""
    env = os.environ.get("SUVNET_TEST_DATABASE_URL")
    if env:
        return env
    if _answers("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    from suvnet.embedded import embedded_postgres_url

    home = Path(tempfile.gettempdir()) / "suvnet-test-embedded"
    return embedded_postgres_url(home, "postgres")


def end_sessions(admin: psycopg.Connection[Any], dbname: str, timeout: float = 10.0) -> int:
    """End every session connected to ``dbname`` (e.g. TimescaleDB's background scheduler)
    and wait until they are gone; return how many were ended."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    ).fetchall()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchone()
        if left == (0,):
            break
        time.sleep(0.05)
    return len(rows)


def seal_template(admin: psycopg.Connection[Any], dbname: str) -> None:
    """Make ``dbname`` a template that nobody connects to: no new sessions (TimescaleDB's
    launcher also skips such a database), and the ones still open are ended. Copying a
    database fails while any session is connected to it."""
    admin.execute(f'ALTER DATABASE "{dbname}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    end_sessions(admin, dbname)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> str:
    """Name of a database holding the current migrations, used as a template. It is sealed
    (``IS_TEMPLATE true ALLOW_CONNECTIONS false``) so that no session, TimescaleDB's
    background scheduler included, can block the copies."""
    digest = hashlib.sha256(
        "".join(f"{m.version}:{m.checksum}" for m in load_migrations()).encode()
    ).hexdigest()[:12]
    name = f"suvnet_tpl_{digest}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(4242)")
        try:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                tmp = f"{name}_build_{uuid.uuid4().hex[:6]}"
                admin.execute(f'CREATE DATABASE "{tmp}"')
                with psycopg.connect(with_dbname(pg_server_url, tmp), autocommit=True) as c:
                    migrate(c)
                # the scheduler TimescaleDB started for it would block the rename
                admin.execute(f'ALTER DATABASE "{tmp}" WITH ALLOW_CONNECTIONS false')
                end_sessions(admin, tmp)
                admin.execute(f'ALTER DATABASE "{tmp}" RENAME TO "{name}"')
            # also seals a template left by an older run that still took connections
            seal_template(admin, name)
        finally:
            admin.execute("SELECT pg_advisory_unlock(4242)")
    return name


def create_test_db(pg_server_url: str, template: str) -> str:
    """A new database copied from ``template``. Sessions still connected to the template (an
    older, unsealed one) are ended first, as the copy needs it to itself."""
    name = f"suvnet_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        for attempt in range(5):
            try:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 4:
                    raise
                end_sessions(admin, template)
    return name


def drop_test_db(pg_server_url: str, name: str) -> None:
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database for this test module."""
    name = create_test_db(pg_server_url, template_db)
    try:
        yield with_dbname(pg_server_url, name)
    finally:
        drop_test_db(pg_server_url, name)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the module's database."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh, empty (not migrated) database."""
    name = f"suvnet_e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(pg_server_url, name)
    finally:
        drop_test_db(pg_server_url, name)


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """URL of a running MQTT broker (Mosquitto on 127.0.0.1:1883 when it answers)."""
    env = os.environ.get("SUVNET_TEST_MQTT_URL")
    if env:
        yield env
        return
    if _answers("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    from suvnet.embedded import EmbeddedBroker

    broker = EmbeddedBroker()
    yield broker.start()
    broker.stop()


@pytest.fixture
def topic_root() -> str:
    """A topic root unique to this test (``t<hex>/suvnet``)."""
    return f"t{uuid.uuid4().hex[:10]}/suvnet"


@pytest.fixture(scope="session", autouse=True)
def _compiled_ingest_scanner() -> None:
    """Compile ingest's numba scanner once, before any test starts an ingest worker: on a
    fresh clone the first compile takes about 10 s (later runs load it from the disk cache),
    which would otherwise fall inside the first test that waits for rows."""
    from ingest.validate import warm_up_scanner

    warm_up_scanner()

"""Ordered SQL migrations with a version table and an advisory lock.

Migrations are the files ``suvnet/migrations/NNNN_name.sql``. Number ranges are kept per area
so that packages can add theirs independently: 0001-0099 core, 0100-0199 ingest,
0200-0299 billing, 0300-0399 payments, 0400-0499 alarms, 0500-0599 api, 0600-0699 dashboards,
0700-0799 assets.
Each file runs in its own transaction together with its row in ``schema_migrations``; a
session-level advisory lock makes two processes that start together apply each file once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from suvnet.errors import MigrationError

log = logging.getLogger(__name__)

LOCK_KEY = 0x5356_4E45_5400  # "SVNET"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: Any
    duration_ms: int


def load_migrations() -> list[Migration]:
    """All migrations shipped with suvnet, in version order."""
    out: list[Migration] = []
    seen: dict[int, str] = {}
    for entry in resources.files("suvnet.migrations").iterdir():
        m = _NAME_RE.match(entry.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in seen:
            raise MigrationError(
                f"two migrations share version {version}: {seen[version]}, {entry.name}"
            )
        seen[version] = entry.name
        out.append(Migration(version, m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(out, key=lambda mig: mig.version)


def _ensure_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version     integer PRIMARY KEY,
               name        text NOT NULL,
               checksum    text NOT NULL,
               applied_at  timestamptz NOT NULL DEFAULT now(),
               duration_ms integer NOT NULL
           )"""
    )


def applied(conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute(
        "SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations "
        "ORDER BY version"
    ).fetchall()
    return [AppliedMigration(*r) for r in rows]


def pending(conn: psycopg.Connection[Any]) -> list[Migration]:
    done = {a.version for a in applied(conn)}
    return [m for m in load_migrations() if m.version not in done]


PRELOAD_FIX = (
    "add it to shared_preload_libraries in postgresql.conf "
    "(shared_preload_libraries = 'timescaledb'; keep any library already listed there, "
    "comma-separated), then restart PostgreSQL"
)


@dataclass(frozen=True)
class StorageChoice:
    """How readings will be stored, decided before the migration that creates them."""

    timescaledb: bool
    warning: str | None = None

    @property
    def setting(self) -> str:
        """The value handed to the migrations (``suvnet.timescaledb``)."""
        return "on" if self.timescaledb else "off"


def choose_storage(mode: str, available: bool, preloaded: bool) -> StorageChoice:
    """The storage mode for ``SUVNET_TIMESCALEDB`` = ``mode`` on a server where the extension
    is ``available`` (installed: pg_available_extensions) and ``preloaded`` (in
    shared_preload_libraries). TimescaleDB that is installed but not preloaded cannot be
    used: ``CREATE EXTENSION`` then ends the session with a FATAL error. ``auto`` falls back
    to plain PostgreSQL with a warning; ``on`` fails saying what to change."""
    if mode not in ("auto", "on", "off"):
        raise MigrationError(f"SUVNET_TIMESCALEDB must be auto, on or off, not {mode!r}")
    if mode == "off":
        return StorageChoice(False)
    if not available:
        if mode == "on":
            raise MigrationError(
                "SUVNET_TIMESCALEDB=on but the timescaledb extension is not available on this "
                "server: install TimescaleDB for this PostgreSQL version, or set "
                "SUVNET_TIMESCALEDB=auto to use plain PostgreSQL"
            )
        return StorageChoice(False)
    if not preloaded:
        if mode == "on":
            raise MigrationError(
                "SUVNET_TIMESCALEDB=on but the timescaledb extension is installed on this server "
                f"without being preloaded: {PRELOAD_FIX}. Nothing was changed."
            )
        return StorageChoice(
            False,
            "TimescaleDB is installed on this server but not preloaded, so readings are "
            f"stored in plain PostgreSQL. To use TimescaleDB, {PRELOAD_FIX}, before the first "
            "'suvnet db migrate' of a new database (the mode of an existing one does not change).",
        )
    return StorageChoice(True)


def parse_preload(setting: str) -> list[str]:
    """The library names in a shared_preload_libraries value ("'$libdir/timescaledb.so', x"
    gives ['timescaledb', 'x'])."""
    out: list[str] = []
    for item in setting.split(","):
        name = item.strip().strip("'\"").rsplit("/", 1)[-1]
        name = name.removesuffix(".so")
        if name:
            out.append(name)
    return out


def server_timescaledb(conn: psycopg.Connection[Any]) -> tuple[bool, bool]:
    """(available, preloaded) for the server behind ``conn``."""
    avail = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    try:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        preloaded = row is not None and "timescaledb" in parse_preload(str(row[0]))
    except psycopg.errors.InsufficientPrivilege:
        # the setting is for superusers: the loader's own settings show that it is loaded
        row = conn.execute(
            "SELECT count(*) FROM pg_settings "
            "WHERE name LIKE 'timescaledb.%' AND vartype <> 'string'"
        ).fetchone()
        preloaded = row is not None and int(row[0]) > 0
    return avail is not None, preloaded


POSTGIS_ENV = "SUVNET_POSTGIS"
"""The environment variable read when :func:`migrate` is given no ``postgis`` mode."""


def choose_spatial(mode: str, available: bool) -> bool:
    """Whether the asset register keeps its geometries in PostGIS (True) or in the portable
    form (WKB and bounding boxes, spatial queries in shapely), for ``SUVNET_POSTGIS`` = ``mode``
    on a server where the postgis extension is ``available`` (PostGIS needs no preload).
    ``on`` without PostGIS fails saying what to install; ``auto`` falls back quietly."""
    if mode not in ("auto", "on", "off"):
        raise MigrationError(f"{POSTGIS_ENV} must be auto, on or off, not {mode!r}")
    if mode == "off":
        return False
    if not available:
        if mode == "on":
            raise MigrationError(
                f"{POSTGIS_ENV}=on but the postgis extension is not available on this server: "
                "install PostGIS for this PostgreSQL version (Debian: postgresql-15-postgis-3), "
                f"or set {POSTGIS_ENV}=auto to keep geometries in the portable form"
            )
        return False
    return True


def server_postgis(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server behind ``conn`` has the postgis extension installed."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
    return row is not None


def _spatial_decided(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('assets') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _storage_decided(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('readings') IS NOT NULL").fetchone()
    return bool(row and row[0])


def migrate(
    conn: psycopg.Connection[Any],
    *,
    timescaledb: str = "auto",
    on_step: Callable[[Migration], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    postgis: str | None = None,
) -> list[Migration]:
    """Apply every pending migration; return those applied by this call.

    ``conn`` must be in autocommit mode: each migration gets its own transaction.
    ``timescaledb`` is ``auto``, ``on`` or ``off``; while the readings table does not exist
    yet, :func:`choose_storage` turns it into the mode the migrations use (a warning, if any,
    is logged and passed to ``on_warning``).
    ``postgis`` is ``auto``, ``on`` or ``off`` (None: the ``SUVNET_POSTGIS`` environment
    variable, else ``auto``); while the asset register does not exist yet,
    :func:`choose_spatial` decides whether its geometries live in PostGIS (``on`` refuses a
    server without it before anything is written). The migrations read the decision as
    ``suvnet.postgis``.
    """
    if not conn.autocommit:
        raise MigrationError("migrate() needs an autocommit connection")
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        if not _storage_decided(conn):  # before anything is written: 'on' may refuse
            choice = choose_storage(timescaledb, *server_timescaledb(conn))
            if choice.warning:
                log.warning("%s", choice.warning)
                if on_warning is not None:
                    on_warning(choice.warning)
            timescaledb = choice.setting
        spatial = "off"
        if not _spatial_decided(conn):
            wanted = postgis if postgis is not None else os.environ.get(POSTGIS_ENV, "auto")
            spatial = (
                "on" if choose_spatial(wanted.strip().lower(), server_postgis(conn)) else "off"
            )
        _ensure_table(conn)
        known = {m.version: m for m in load_migrations()}
        for a in applied(conn):
            mig = known.get(a.version)
            if mig is not None and mig.checksum != a.checksum:
                log.warning(
                    "migration %04d_%s was changed after it was applied (checksum differs)",
                    a.version,
                    a.name,
                )
        done: list[Migration] = []
        for mig in pending(conn):
            t0 = time.perf_counter()
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT set_config('suvnet.timescaledb', %s, true), "
                        "set_config('suvnet.postgis', %s, true)",
                        (timescaledb, spatial),
                    )
                    conn.execute(mig.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum, duration_ms) "
                        "VALUES (%s, %s, %s, %s)",
                        (
                            mig.version,
                            mig.name,
                            mig.checksum,
                            int((time.perf_counter() - t0) * 1000),
                        ),
                    )
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {mig.version:04d}_{mig.name} failed and was rolled back: "
                    f"{str(exc).strip()}"
                ) from exc
            log.info("applied migration %04d_%s", mig.version, mig.name)
            done.append(mig)
            if on_step is not None:
                on_step(mig)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


@dataclass(frozen=True)
class DbStatus:
    server_version: str
    storage_mode: str
    timescaledb_version: str | None
    timescaledb_available: bool
    applied: list[AppliedMigration]
    pending: list[Migration]
    database_size_bytes: int
    readings_size_bytes: int
    readings_rows_estimate: int
    partitions: int


def status(conn: psycopg.Connection[Any]) -> DbStatus:
    """What ``suvnet db status`` reports: mode, versions and sizes."""
    server = conn.execute("SHOW server_version").fetchone()
    avail = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    installed = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    mode = "not migrated"
    readings_size = 0
    rows_est = 0
    partitions = 0
    meta = conn.execute("SELECT to_regclass('suvnet_meta') IS NOT NULL").fetchone()
    if meta and meta[0]:
        row = conn.execute("SELECT value FROM suvnet_meta WHERE key = 'storage_mode'").fetchone()
        if row:
            mode = str(row[0])
    has_readings = conn.execute("SELECT to_regclass('readings') IS NOT NULL").fetchone()
    if has_readings and has_readings[0]:
        if mode == "timescaledb":
            r = conn.execute("SELECT hypertable_size('readings')").fetchone()
            readings_size = int(r[0] or 0) if r else 0
            c = conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks "
                "WHERE hypertable_name = 'readings'"
            ).fetchone()
            partitions = int(c[0]) if c else 0
        else:
            r = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0), count(*) "
                "FROM pg_inherits WHERE inhparent = 'readings'::regclass"
            ).fetchone()
            if r:
                readings_size, partitions = int(r[0]), int(r[1])
        e = conn.execute(
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c "
            "WHERE c.oid = 'readings'::regclass OR c.oid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'readings'::regclass)"
        ).fetchone()
        rows_est = int(e[0]) if e else 0
    dbsize = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return DbStatus(
        server_version=str(server[0]) if server else "?",
        storage_mode=mode,
        timescaledb_version=str(installed[0]) if installed else None,
        timescaledb_available=avail is not None,
        applied=applied(conn),
        pending=pending(conn),
        database_size_bytes=int(dbsize[0]) if dbsize else 0,
        readings_size_bytes=readings_size,
        readings_rows_estimate=rows_est,
        partitions=partitions,
    )

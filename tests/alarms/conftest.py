"""Fixtures for the alarm tests: a small registry in a real migrated database."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Site:
    zone_id: int
    device_id: int
    pressure_point: int
    flags_point: int


def make_site(db: psycopg.Connection[Any], tag: str, *, min_bar: float = 1.5) -> Site:
    z = db.execute(
        "INSERT INTO zones (code, name, min_service_pressure_bar) VALUES (%s, %s, %s) RETURNING id",
        (f"Z{tag}", f"zone {tag}", min_bar),
    ).fetchone()
    assert z is not None
    g = db.execute(
        "INSERT INTO gateways (code, zone_id) VALUES (%s, %s) RETURNING id", (f"gw{tag}", z[0])
    ).fetchone()
    assert g is not None
    d = db.execute(
        "INSERT INTO devices (code, gateway_id, kind, profile, zone_id) "
        "VALUES (%s, %s, 'pressure_sensor', 'generic', %s) RETURNING id",
        (f"PS{tag}", g[0], z[0]),
    ).fetchone()
    assert d is not None
    p = db.execute(
        "INSERT INTO points (device_id, name, unit) VALUES (%s, 'pressure', 'bar') RETURNING id",
        (d[0],),
    ).fetchone()
    f = db.execute(
        "INSERT INTO points (device_id, name, kind) VALUES (%s, 'flags', 'bitfield') RETURNING id",
        (d[0],),
    ).fetchone()
    assert p is not None and f is not None
    return Site(int(z[0]), int(d[0]), int(p[0]), int(f[0]))


def add_rule(db: psycopg.Connection[Any], code: str, kind: str, **kw: Any) -> int:
    cols = ["code", "kind", *kw]
    vals = [code, kind] + [json.dumps(v) if k == "params" else v for k, v in kw.items()]
    row = db.execute(
        f"INSERT INTO alarm_rules ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
        "RETURNING id",
        vals,
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_readings(
    db: psycopg.Connection[Any], point_id: int, rows: Iterable[tuple[datetime, float | None, int]]
) -> None:
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (ts, point_id, value, quality) VALUES (%s, %s, %s, %s)",
            [(ts, point_id, v, q) for ts, v, q in rows],
        )


def one(db: psycopg.Connection[Any], sql: str, args: Any = ()) -> tuple[Any, ...]:
    """The single row a query must return."""
    row = db.execute(sql, args).fetchone()
    assert row is not None, sql
    return tuple(row)


@pytest.fixture
def site_factory(db: psycopg.Connection[Any]) -> Any:
    counter = {"n": 0}

    def make(**kw: Any) -> Site:
        import uuid

        counter["n"] += 1
        return make_site(db, uuid.uuid4().hex[:8], **kw)

    return make


def add_route(db: psycopg.Connection[Any], channel: str, target: str, **kw: Any) -> int:
    """A notification route (``kw``: its other columns); its id."""
    cols = ["channel", "target", *kw]
    row = one(
        db,
        f"INSERT INTO alarm_routes ({', '.join(cols)}) "
        f"VALUES ({', '.join(['%s'] * len(cols))}) RETURNING id",
        [channel, target, *kw.values()],
    )
    return int(row[0])


class Mailbox:
    """An aiosmtpd handler that keeps what it was sent: (from, to, raw message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server on a free local port: (port, its mailbox)."""
    box = Mailbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, box
    ctl.stop()


@dataclass
class Receiver:
    """A local HTTP server that records requests; the first ``fail`` requests get HTTP 500."""

    fail: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                if rec.fail > 0:
                    rec.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                out = json.dumps({"ok": True, "id": len(rec.requests), "message": "done"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out.encode())

            def log_message(self, *args: Any) -> None:
                pass

        return H


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP server (a webhook's or the Bot API's stand-in) recording requests."""
    rec = Receiver()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), rec.handler())
    rec.url = f"http://127.0.0.1:{srv.server_address[1]}"
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield rec
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def no_routes(db: psycopg.Connection[Any]) -> None:
    """The database is shared by the module: start a test without routes or outbox."""
    db.execute("DELETE FROM alarm_notifications")
    db.execute("DELETE FROM alarm_routes")

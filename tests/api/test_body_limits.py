"""Request bodies are capped before anything parses them, a 422 never echoes a large input,
and a lone UTF-16 surrogate in JSON is a clear 422, not a 500 (issue 13, items 5 and 7).

The size tests run the app in a real uvicorn and talk to it over a raw socket, so that a body
can be streamed in chunks (no Content-Length) and the sending stops when the server answers.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.limits import BodyLimits, clip_echo, lone_surrogate_at
from api.security import Role
from suvnet.settings import load_settings
from tests.api.conftest import NOW, SECRET, Clock, LiveServer, User, bearer

MIB = 1024 * 1024
BODY_CAP = 1 * MIB  # the default of SUVNET_MAX_BODY_BYTES
UPLOAD_CAP = 3 * MIB  # SUVNET_MAX_UPLOAD_BYTES, small for the test


@pytest.fixture(scope="module")
def limited(db_url: str, users: dict[Role, User]) -> Iterator[tuple[LiveServer, BodyLimits]]:
    settings = load_settings(
        database_url=db_url,
        secret_key=SECRET,
        db_pool_min=1,
        db_pool_max=4,
        max_upload_bytes=UPLOAD_CAP,
    )
    assert settings.max_body_bytes == BODY_CAP
    app = create_app(settings, clock=Clock(NOW))
    with LiveServer(app) as srv:
        yield srv, app.state.suvnet.body_limits


def stream_post(
    port: int,
    path: str,
    total: int,
    content_type: str,
    *,
    chunk: bytes = b"x" * 65536,
    head: bytes = b"",
    headers: str = "",
) -> tuple[int, dict[str, Any], int]:
    """POST ``total`` bytes in chunked encoding (no Content-Length); stop sending as soon as
    the server answers or closes. Returns (status, JSON body, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Transfer-Encoding: chunked\r\n{headers}\r\n".encode()
        )
        sent = 0
        piece = head
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server answered (or closed) before the body was complete
            data = piece or chunk
            piece = b""
            try:
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(data)
        else:
            # the whole body may be in the socket buffers before the server has read enough
            # of it to refuse it: then it has answered and closed by the time the last chunk
            # goes, as when a chunk meets the close above
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"0\r\n\r\n")
        return (*read_response(sock), sent)
    finally:
        sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    raw = b""
    while b"\r\n\r\n" not in raw:
        got = sock.recv(65536)
        assert got, f"the server closed without an answer: {raw!r}"
        raw += got
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(fields.get("content-length", "0"))
    while len(rest) < length:
        got = sock.recv(65536)
        if not got:
            break
        rest += got
    return status, json.loads(rest[:length] or b"{}")


def test_a_streamed_json_body_without_token_stops_at_the_cap(
    limited: tuple[LiveServer, BodyLimits],
) -> None:
    """The issue's case: a huge POST to the cashier endpoint with no token. The server
    answers 413 after reading at most the cap; no handler gets more than the cap, and the
    process's memory does not grow by the size of the body."""
    srv, limits = limited
    before = limits.refused
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        status, body, sent = stream_post(
            srv.port,
            "/api/v1/payments/cashier",
            64 * MIB,
            "application/json",
            head=b'{"account": "000000018", "amount": "1", "request_key": "',
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413
    assert body["error"] == "too_large" and "1 MiB" in body["detail"]
    assert sent < 32 * MIB  # the server stopped reading: the client could not send it all
    assert limits.largest_passed <= BODY_CAP
    assert limits.refused == before + 1
    assert peak < 16 * MIB, f"memory peak {peak / MIB:.1f} MiB while refusing the body"


def test_a_declared_large_body_is_refused_before_it_is_sent(
    limited: tuple[LiveServer, BodyLimits],
) -> None:
    srv, limits = limited
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(
            b"POST /api/v1/auth/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
        )
        status, body = read_response(sock)
        assert sock.recv(1) == b""  # and the connection is closed
    finally:
        sock.close()
    assert status == 413 and body["error"] == "too_large"
    assert limits.largest_passed <= UPLOAD_CAP


def test_a_form_body_is_capped_while_it_streams(limited: tuple[LiveServer, BodyLimits]) -> None:
    """A body that streams through to the handler (a form, not JSON) is cut off by the read
    that passes the cap."""
    srv, limits = limited
    status, body, sent = stream_post(
        srv.port,
        "/api/v1/auth/token",
        16 * MIB,
        "application/x-www-form-urlencoded",
        head=b"username=u_admin&password=",
    )
    assert status == 413 and body["error"] == "too_large"
    assert sent < 16 * MIB
    assert limits.largest_passed <= UPLOAD_CAP


def multipart(size: int) -> tuple[bytes, str]:
    boundary = "suvnet-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        'filename="statement.csv"\r\nContent-Type: text/csv\r\n\r\n'
    ).encode()
    body += b"a" * size + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_statement_uploads_have_the_larger_limit(
    limited: tuple[LiveServer, BodyLimits], users: dict[Role, User]
) -> None:
    srv, _ = limited
    body, ctype = multipart(2 * MIB)  # over the JSON cap, under the upload cap
    r = httpx.post(
        f"{srv.url}/api/v1/payments/statements",
        content=body,
        headers={"content-type": ctype},
        timeout=30,
    )
    assert r.status_code == 401  # read, then refused for want of a login
    big, ctype = multipart(4 * MIB)
    r = httpx.post(
        f"{srv.url}/api/v1/payments/statements",
        content=big,
        headers={"content-type": ctype, **bearer(users[Role.ACCOUNTANT])},
        timeout=30,
    )
    assert r.status_code == 413 and "3 MiB" in r.json()["detail"]
    # streamed without Content-Length: cut off while the form is parsed
    status, answer, _ = stream_post(
        srv.port, "/api/v1/payments/statements", 8 * MIB, ctype, head=big[:300]
    )
    assert status == 413 and answer["error"] == "too_large"


async def test_a_422_does_not_echo_a_large_input(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 900_000})
    assert r.status_code == 422
    assert len(r.content) < 2000
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "refresh_token"]
    assert err["input"].endswith("… (900000 characters)") and len(err["input"]) < 250
    # a missing field quotes the whole body: clipped too
    r = await client.post(
        "/api/v1/payments/cashier",
        json={"amount": "1", "junk": ["y" * 5000] * 50},
        headers=bearer(users[Role.CASHIER]),
    )
    assert r.status_code == 422 and len(r.content) < 4000


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/refresh", b'{"refresh_token": "\\ud800"}'),
        ("/api/v1/auth/logout", b'{"refresh_token": "abc\\udfff"}'),
        ("/api/v1/customers/activate", b'{"account_no": "1", "code": "\\ud800", "password": "x"}'),
        ("/api/v1/auth/token", b'{"username": "\\ud800", "password": "x"}'),
    ],
)
async def test_a_lone_surrogate_is_a_clear_422(
    client: httpx.AsyncClient, users: dict[Role, User], path: str, body: bytes
) -> None:
    r = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "surrogate" in r.json()["detail"]


async def test_a_lone_surrogate_at_the_cashier_desk(
    app: FastAPI, client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    r = await client.post(
        "/api/v1/payments/cashier",
        content=b'{"account": "\\ud800", "amount": "100"}',
        headers={"content-type": "application/json", **bearer(users[Role.CASHIER])},
    )
    assert r.status_code == 422 and "surrogate" in r.json()["detail"]
    # a proper pair (an emoji) is text like any other: refused for what it says, not a 422
    r = await client.post(
        "/api/v1/auth/refresh",
        content=b'{"refresh_token": "\\ud83d\\ude00"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "at"),
    [
        (b'"\\ud800"', 1),
        (b'"ok \\udc00"', 4),
        (b'"\\ud800\\ud800\\udc00"', 1),
        (b'"\\ud800x\\udc00"', 1),
        (b'"\\ud83d\\ude00"', None),
        (b'"\\\\ud800"', None),  # an escaped backslash, then plain text
        (b'"\\\\\\ud800"', 3),
        (b'{"a": "\\n\\u0041"}', None),
        (b'"\\ud800\\n"', 1),
    ],
)
def test_lone_surrogate_at(body: bytes, at: int | None) -> None:
    assert lone_surrogate_at(body) == at
    if at is None:
        # what the check lets through encodes fine
        json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")
    else:
        with pytest.raises(UnicodeEncodeError):
            json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")


def test_clip_echo() -> None:
    assert clip_echo("short") == "short"
    assert clip_echo("z" * 201) == "z" * 200 + "… (201 characters)"
    deep = clip_echo({"a": [{"b": {"c": ["x" * 1000]}}]})
    assert len(json.dumps(deep)) < 300
    many = clip_echo(list(range(100)))
    assert isinstance(many, list) and len(many) == 11 and many[-1] == "… 90 more"

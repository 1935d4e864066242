"""Request hardening before any handler runs: body size limits and text that is not Unicode.

:class:`BodyLimitMiddleware` is the outermost piece of the app (after Starlette's error
handler). For every request with a body it

* answers **413** at once when ``Content-Length`` says the body is larger than the limit,
  without reading it, and closes the connection;
* counts the bytes as they arrive (a body without ``Content-Length``, sent in chunks, is
  counted too) and stops at the limit: a JSON body is read up to the limit here and handed
  on as a whole; any other body (forms, file uploads) streams through and the read that
  passes the limit fails with :class:`BodyTooLargeError`, answered 413;
* refuses (**422**) a JSON body with a lone UTF-16 surrogate escape such as ``"\\ud800"``:
  Python's JSON reader accepts it, but the text cannot be encoded, and the handler, JWT or
  the database would fail on it with a 500.

The limit is ``SUVNET_MAX_BODY_BYTES`` (1 MiB), and ``SUVNET_MAX_UPLOAD_BYTES`` (25 MiB) for
the file-upload paths in :data:`UPLOAD_PATHS`. A body is never read before this check, so an
unauthenticated 200 MB POST costs the server at most the limit in memory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATHS: frozenset[str] = frozenset(
    {
        "/api/v1/payments/statements",  # bank statement upload (API)
        "/staff/payments/statements",  # bank statement upload (back-office page)
    }
)
"""Paths that take files: they get the larger upload limit."""

OWN_PARSER_PATHS: frozenset[str] = frozenset({"/api/payme"})
"""Paths that parse their JSON themselves and answer bad JSON in their own protocol (Payme's
JSON-RPC parse error; its parser, orjson, refuses lone surrogates): no surrogate check here."""

_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


class BodyTooLargeError(HTTPException):
    """A request body passed its limit while a handler was reading it (answered 413).

    A Starlette ``HTTPException`` on purpose: FastAPI lets those through its body parsing
    (any other exception there becomes a 400), and the app's handler for this class answers
    with the usual ``{"error": ..., "detail": ...}``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    return f"the request body is larger than the limit of {_size(limit)}"


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def lone_surrogate_at(body: bytes) -> int | None:
    """Byte offset of the first ``\\uD800``-``\\uDFFF`` escape of a JSON text that is not
    part of a high-low pair, or None. Escaped backslashes (``\\\\u...``) are not escapes."""
    if b"\\u" not in body:
        return None
    pending: tuple[int, int] | None = None  # (start, end) of a high surrogate escape
    for m in _ESCAPE.finditer(body):
        if pending is not None and m.start() != pending[1]:
            return pending[0]
        code = int(m.group(1), 16) if m.group(1) is not None else None
        if code is not None and 0xD800 <= code <= 0xDBFF:
            if pending is not None:
                return pending[0]
            pending = (m.start(), m.end())
        elif code is not None and 0xDC00 <= code <= 0xDFFF:
            if pending is None:
                return m.start()
            pending = None
        elif pending is not None:
            return pending[0]
    return None if pending is None else pending[0]


@dataclass
class BodyLimits:
    """The limits, and two counters an operator (or a test) can read."""

    max_body_bytes: int
    max_upload_bytes: int
    upload_paths: frozenset[str] = UPLOAD_PATHS
    refused: int = 0
    """requests answered 413"""
    largest_passed: int = 0
    """the most bytes of one request body that were handed to the app"""

    def limit_for(self, path: str) -> int:
        return self.max_upload_bytes if path in self.upload_paths else self.max_body_bytes


def _is_json(content_type: bytes) -> bool:
    # FastAPI reads a body without a content type as JSON too
    media = content_type.split(b";", 1)[0].strip().lower()
    return not media or media == b"application/json" or media.endswith(b"+json")


async def send_json(
    send: Send, status: int, body: dict[str, object], *, close: bool = False
) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    if close:
        # the rest of the body is not read: the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class BodyLimitMiddleware:
    """See the module documentation."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        content_type = b""
        chunked = False
        for k, v in scope["headers"]:
            if k == b"content-length":
                length = v
            elif k == b"content-type":
                content_type = v
            elif k == b"transfer-encoding":
                chunked = True
        if length is None and not chunked:  # no body (GET and most others)
            await self.app(scope, receive, send)
            return
        limits = self.limits
        limit = limits.limit_for(scope["path"])
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_json(
                    send,
                    400,
                    {"error": "bad_request", "detail": "the Content-Length header is not a number"},
                    close=True,
                )
                return
            if declared > limit:
                await self._too_large(send, limit)
                return
            if declared == 0:
                await self.app(scope, receive, send)
                return
        if _is_json(content_type):
            await self._buffered(scope, receive, send, limit)
        else:
            await self._streamed(scope, receive, send, limit)

    async def _too_large(self, send: Send, limit: int) -> None:
        self.limits.refused += 1
        await send_json(
            send, 413, {"error": "too_large", "detail": too_large_message(limit)}, close=True
        )

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Read the whole JSON body here (at most ``limit`` bytes), check it, hand it on."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        bad = None if scope["path"] in OWN_PARSER_PATHS else lone_surrogate_at(body)
        if bad is not None:
            await send_json(
                send,
                422,
                {
                    "error": "invalid",
                    "detail": f"the JSON text has a lone UTF-16 surrogate escape at byte {bad} "
                    "(such as \\ud800 without its pair): send valid Unicode text",
                },
            )
            return
        self.limits.largest_passed = max(self.limits.largest_passed, size)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect as usual

        await self.app(scope, replay, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Count the body as the app reads it; fail the read that passes the limit."""
        size = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLargeError(limit)
                self.limits.largest_passed = max(self.limits.largest_passed, size)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if size > limit:
                    self.limits.refused += 1
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if started:
                raise
            await self._too_large(send, limit)


MAX_ECHO_CHARS = 200
"""A validation error (422) repeats at most this much of each value it quotes."""
_MAX_ECHO_ITEMS = 10
_MAX_ECHO_DEPTH = 3


def clip_echo(value: object, depth: int = 0) -> object:
    """A short copy of an input quoted back in a validation error: strings cut to
    :data:`MAX_ECHO_CHARS` characters, lists and mappings to their first items, nesting to a
    few levels. A request never gets a large part of itself echoed back."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: MAX_ECHO_CHARS * 4]).decode("utf-8", "replace")
    if isinstance(value, str):
        if len(value) <= MAX_ECHO_CHARS:
            return value
        return f"{value[:MAX_ECHO_CHARS]}… ({len(value)} characters)"
    if depth >= _MAX_ECHO_DEPTH and isinstance(value, dict | list | tuple):
        return "…"
    if isinstance(value, dict):
        out = {
            str(clip_echo(k, depth + 1)): clip_echo(v, depth + 1)
            for k, v in list(value.items())[:_MAX_ECHO_ITEMS]
        }
        if len(value) > _MAX_ECHO_ITEMS:
            out["…"] = f"{len(value) - _MAX_ECHO_ITEMS} more"
        return out
    if isinstance(value, list | tuple):
        items = [clip_echo(v, depth + 1) for v in value[:_MAX_ECHO_ITEMS]]
        if len(value) > _MAX_ECHO_ITEMS:
            items.append(f"… {len(value) - _MAX_ECHO_ITEMS} more")
        return items
    return value

"""Keeps web sessions alive: an expired or revoked access cookie is renewed with the
refresh cookie.

The access token in the session cookie lasts 15 minutes; the refresh token (14 days) is
rotated on each use, in the database, so any API worker can renew a session. An access
cookie that is still valid but no longer stands against the users table (the user logged
out on another device, or the role changed: the token version went up) is renewed too, so
that the page goes on with the current role instead of sending the user to the login form;
a disabled user's refresh fails and the page asks for a login. This is a plain ASGI
middleware (no per-request task group): requests without a refresh cookie, such as every API
call with a Bearer token, and requests for static files pass straight through.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import users
from api.deps import (
    CHECKED_KEY,
    REFRESH_COOKIE,
    SESSION_COOKIE,
    AppState,
    check_on_own_connection,
)
from api.errors import NotAuthenticatedError
from api.security import ACCESS_TTL, REFRESH_TTL, read_access_token

log = logging.getLogger(__name__)
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
NO_SESSION_PATHS = ("/static/", "/api/docs-static/", "/health")
"""Paths that never need a login: their requests do not renew sessions."""


def _cookies(scope: Scope) -> dict[str, str]:
    for k, v in scope["headers"]:
        if k == b"cookie":
            return cookie_parser(v.decode("latin-1"))
    return {}


def _cookie_header(name: str, value: str, *, max_age: int, secure: bool) -> bytes:
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    jar[name]["max-age"] = max_age
    jar[name]["path"] = "/"
    jar[name]["httponly"] = True
    jar[name]["samesite"] = "lax"
    if secure:
        jar[name]["secure"] = True
    return jar.output(header="").strip().encode("latin-1")


class WebMiddleware:
    """Security headers on every answer, and renewal of expired page sessions."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: list[tuple[bytes, bytes]] = list(SECURITY_HEADERS)
        renewed = await self._renew(scope)
        if renewed is not None:
            extra += renewed

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # raw (lower-case) header list: no per-response Headers object
                raw = list(message.get("headers", ()))
                present = {k.lower() for k, _ in raw}
                raw += [(k, v) for k, v in extra if k == b"set-cookie" or k not in present]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _renew(self, scope: Scope) -> list[tuple[bytes, bytes]] | None:
        st = self.state
        if (
            st.pool is None
            or scope["path"].startswith(NO_SESSION_PATHS)
            or any(k == b"authorization" for k, _ in scope["headers"])
        ):
            return None
        cookies = _cookies(scope)
        refresh = cookies.get(REFRESH_COOKIE)
        if not refresh:
            return None
        access = cookies.get(SESSION_COOKIE)
        if access:
            try:
                principal = read_access_token(access, st.secret, st.clock())
                await check_on_own_connection(st, principal)
                # still valid: the login check of the request need not look again
                scope.setdefault("state", {})[CHECKED_KEY] = (access, principal)
                return None
            except NotAuthenticatedError:
                pass
        try:
            async with st.pool.connection() as conn:
                pair = await users.refresh(conn, refresh, st.secret, st.clock())
        except NotAuthenticatedError:
            return None  # the page sends the visitor to its login
        scope.setdefault("state", {})[CHECKED_KEY] = (pair.access_token, pair.principal)
        # the request goes on with the new tokens, as if the browser had sent them
        cookies[SESSION_COOKIE] = pair.access_token
        cookies[REFRESH_COOKIE] = pair.refresh_token
        header = "; ".join(f"{k}={v}" for k, v in cookies.items()).encode("latin-1")
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"cookie"] + [
            (b"cookie", header)
        ]
        secure = st.secure_cookies
        return [
            (
                b"set-cookie",
                _cookie_header(
                    SESSION_COOKIE,
                    pair.access_token,
                    max_age=int(ACCESS_TTL.total_seconds()),
                    secure=secure,
                ),
            ),
            (
                b"set-cookie",
                _cookie_header(
                    REFRESH_COOKIE,
                    pair.refresh_token,
                    max_age=int(REFRESH_TTL.total_seconds()),
                    secure=secure,
                ),
            ),
        ]

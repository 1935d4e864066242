"""Keeps web sessions alive: an expired access cookie is renewed with the refresh cookie.

The access token in the session cookie lasts 15 minutes; the refresh token (14 days) is
rotated on each use, in the database, so any API worker can renew a session.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie

from fastapi import Request
from fastapi.responses import Response

from api import accounts
from api.deps import REFRESH_COOKIE, SESSION_COOKIE, get_state
from api.errors import NotAuthenticatedError
from api.security import read_access_token

log = logging.getLogger(__name__)


def _needs_refresh(token: str | None, secret: str, request: Request) -> bool:
    if not token:
        return True
    try:
        read_access_token(token, secret, get_state(request).clock())
    except NotAuthenticatedError:
        return True
    return False


async def refresh_session(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    st = get_state(request)
    refresh = request.cookies.get(REFRESH_COOKIE)
    if (
        refresh is None
        or st.pool is None
        or "authorization" in request.headers
        or not _needs_refresh(request.cookies.get(SESSION_COOKIE), st.secret, request)
    ):
        return await call_next(request)
    try:
        async with st.pool.connection() as conn:
            pair = await accounts.refresh(conn, refresh, st.secret, st.clock())
    except NotAuthenticatedError:
        return await call_next(request)  # the page sends the visitor to its login
    # the request goes on with the new access token, as if the browser had sent it
    jar = SimpleCookie()
    for name, value in request.cookies.items():
        if name not in (SESSION_COOKIE, REFRESH_COOKIE):
            jar[name] = value
    jar[SESSION_COOKIE] = pair.access_token
    jar[REFRESH_COOKIE] = pair.refresh_token
    cookie_header = "; ".join(f"{k}={m.value}" for k, m in jar.items()).encode("latin-1")
    request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"cookie"] + [
        (b"cookie", cookie_header)
    ]
    response = await call_next(request)
    from api.web.common import set_session

    set_session(response, request, pair.access_token, pair.refresh_token)
    return response

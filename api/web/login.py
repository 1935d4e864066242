"""The login and logout pages of the back office (/staff) and of the customer cabinet
(/cabinet): one code path for both audiences, set up for each by :func:`add_login_routes`
with its :class:`LoginPages`. The login is rate-limited and checked by :func:`api.users.login`;
a staff login cannot open the cabinet nor a customer the back office."""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
# handlers that add_login_routes defines, and they name values of the LoginPages given.

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from api import users
from api.deps import REFRESH_COOKIE, Conn, State, client_ip, get_state, require
from api.errors import NotAuthenticatedError, TooManyAttemptsError
from api.security import Role
from api.web.common import clear_session, form_csrf_ok, render, safe_next, set_session


@dataclass(frozen=True)
class LoginPages:
    """The login of one audience's pages."""

    prefix: str
    """Where the pages live: ``/staff`` or ``/cabinet``."""
    template: str
    """The login form's template."""
    field: str
    """The form field (and template variable) of the login name."""
    field_max: int
    """Its longest accepted value."""
    customer: bool
    """True: only customers may log in here; False: only staff."""
    roles: Iterable[Role]
    """Who may log out here."""

    @property
    def home(self) -> str:
        return self.prefix + "/"


async def login_form(
    request: Request,
    conn: Conn,
    pages: LoginPages,
    *,
    login: str,
    password: str,
    csrf_token: str,
    next_url: str,
) -> Response:
    """CSRF check, rate-limited login, then the session cookies and a redirect (to ``next``
    when it is a local path, else home), or the form again with the reason."""
    if not form_csrf_ok(request, csrf_token):
        return render(request, pages.template, 403, error="csrf", **{pages.field: login})
    st = get_state(request)
    try:
        pair = await users.login(
            conn,
            username=login,
            password=password,
            ip=client_ip(request),
            secret=st.secret,
            now=st.clock(),
            policy=st.rate_limit,
            customer=pages.customer,
        )
    except TooManyAttemptsError:
        return render(request, pages.template, 429, error="locked", **{pages.field: login})
    except NotAuthenticatedError as exc:
        # the right password of a staff login that belongs to no branch: say so (branches)
        error = "no_branch" if exc.code == "no_branch" else "wrong"
        return render(request, pages.template, 401, error=error, **{pages.field: login})
    resp = RedirectResponse(safe_next(next_url, pages.home), status_code=303)
    set_session(resp, request, pair.access_token, pair.refresh_token)
    return resp


def add_login_routes(router: APIRouter, pages: LoginPages) -> None:
    """``GET`` and ``POST`` ``login`` and ``POST`` ``logout`` on ``router`` (whose prefix is
    ``pages.prefix``)."""
    who_may_log_out = Depends(require(*pages.roles))

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        return render(request, pages.template, 200, error=None, **{pages.field: ""})

    @router.post("/login")
    async def login_submit(
        *,
        request: Request,
        conn: Conn,
        login: Annotated[str, Form(alias=pages.field, max_length=pages.field_max)],
        password: Annotated[str, Form(max_length=256)],
        csrf_token: Annotated[str, Form(max_length=200)] = "",
        next_url: Annotated[str, Form(alias="next", max_length=500)] = "",
    ) -> Response:
        return await login_form(
            request,
            conn,
            pages,
            login=login,
            password=password,
            csrf_token=csrf_token,
            next_url=next_url,
        )

    @router.post("/logout", dependencies=[who_may_log_out])
    async def logout(*, request: Request, conn: Conn, st: State) -> Response:
        token = request.cookies.get(REFRESH_COOKIE)
        if token:
            await users.revoke(conn, token, st.secret, st.clock())
        resp = RedirectResponse(pages.prefix + "/login", status_code=303)
        clear_session(resp)
        return resp

"""The FastAPI application factory: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from api import readconn
from api.deps import AppState, current_principal, utcnow
from api.errors import ApiError, ForbiddenError, NotAuthenticatedError, TooManyAttemptsError
from api.i18n import CODES as LANGUAGE_CODES
from api.i18n import gettext_for
from api.limits import BodyLimitMiddleware, BodyLimits, BodyTooLargeError, clip_echo
from api.routes import (
    auth,
    billing,
    cashier,
    commands,
    customer_requests,
    payment_callbacks,
    prv,
    register,
    registry,
    reports,
    statements,
)
from api.security import STAFF, Principal, RateLimitPolicy
from api.web import (
    cabinet,
    prv_pages,
    staff,
    staff_billing,
    staff_payments,
    staff_register,
    staff_reports,
    staff_requests,
)
from api.web.common import language
from api.web.session import WebMiddleware
from suvnet.db import database_url, make_async_pool
from suvnet.errors import ConfigError
from suvnet.protocol import Topics
from suvnet.settings import Settings, secret_key_problem

log = logging.getLogger(__name__)
HERE = Path(__file__).parent

DESCRIPTION = """
The suvnet office API. Log in with **POST /api/v1/auth/token** (user name and password; the
"Authorize" button above does it for you) and send the access token as
`Authorization: Bearer <token>`. Access tokens last 15 minutes; get a new pair with
**POST /api/v1/auth/refresh**. Every list takes `limit` and `offset` and answers
`{"items": [...], "total": n, "limit": .., "offset": ..}`. Errors answer
`{"error": "<code>", "detail": "<what went wrong>"}`.
"""


def create_app(
    settings: Settings,
    *,
    db_url: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    rate_limit: RateLimitPolicy | None = None,
    pool_size: int | None = None,
) -> FastAPI:
    """Build the app. The database pool opens when the app starts (lifespan) and closes
    when it stops. ``db_url`` overrides the settings' database (tests); ``clock`` is the
    source of "now" (tests move it)."""
    if settings.mode == "production":
        # Settings refuse such a key already; this guards settings built without validation
        problem = secret_key_problem(settings.secret_key)
        if problem is not None:
            raise ConfigError(problem)
    state = AppState(
        settings=settings,
        db_url=db_url or "",
        topics=Topics(root=settings.topic_root),
        clock=clock,
        rate_limit=rate_limit or RateLimitPolicy(),
        body_limits=BodyLimits(settings.max_body_bytes, settings.max_upload_bytes),
    )

    app = FastAPI(
        title="suvnet API",
        version="1",
        description=DESCRIPTION,
        lifespan=_lifespan(state, pool_size),
        docs_url=None,  # served below from local files: the office may have no internet
        redoc_url=None,
        # public docs: FastAPI serves the description; staff-only: _mount_api_docs does
        openapi_url="/api/openapi.json" if settings.api_docs_access == "public" else None,
    )
    app.state.suvnet = state

    _add_error_handlers(app)
    app.add_middleware(WebMiddleware, state=state)
    # outermost: nothing reads a body before its size is checked
    app.add_middleware(BodyLimitMiddleware, limits=state.body_limits)

    @app.get("/health", tags=["health"], summary="Liveness and database check (no login)")
    async def health() -> dict[str, Any]:
        ok = False
        if state.pool is not None:
            try:
                async with state.pool.connection(timeout=5) as conn:
                    await conn.execute("SELECT 1")
                ok = True
            except Exception:  # noqa: BLE001 - health reports, it does not raise
                ok = False
        out: dict[str, Any] = {"status": "ok" if ok else "degraded", "database": ok}
        replica = readconn.health(state)
        if replica is not None:
            # the replica's state is informative: reads fall back to the primary without it
            out["replica"] = replica
        return out

    _add_routers(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _mount_api_docs(app, settings.api_docs_access)
    return app


Optional = tuple[str, str]
"""A router that needs a package an install may leave out: (module, package)."""
ROUTERS: tuple[APIRouter | Optional, ...] = (
    # the JSON API for programs (api/routes); matched in order: the busiest (balances,
    # readings) come first
    register.router,  # the account search (before billing's /accounts/{number} routes)
    billing.router,
    registry.router,
    ("api.routes.assets", "assets"),
    ("api.routes.work_orders", "assets"),
    auth.router,
    commands.router,
    prv.router,
    ("api.routes.alarms", "alarms"),
    reports.router,
    # the web pages for people (api/web)
    cabinet.router,
    staff_register.router,  # /staff/register: the register pages (before staff's catch-alls)
    staff.router,
    ("api.web.staff_alarms", "alarms"),
    staff_billing.router,
    staff_reports.router,
    prv_pages.router,
    ("api.web.staff_map", "assets"),
    # the payment providers' callbacks, the cashier desk and bank statements, then their pages
    payment_callbacks.router,
    cashier.router,
    statements.router,
    staff_payments.router,
    *(customer_requests.router, staff_requests.router),  # customer requests (issue 15)
)


def _add_routers(app: FastAPI) -> None:
    for router in ROUTERS:
        if isinstance(router, tuple):
            _include_optional(app, *router)
        else:
            app.include_router(router)


def _include_optional(app: FastAPI, module: str, package: str) -> None:
    """The router of ``module``, when ``package`` is installed."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == package or exc.name.startswith(f"{package}.")):
            log.info("%s: off, the %s package is not available", module, package)
            return
        raise
    app.include_router(mod.router)


def _lifespan(
    state: AppState, pool_size: int | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Opens the database pool when the app starts, closes it (and the background jobs)
    when it stops."""
    settings = state.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = state.db_url or database_url(settings)
        state.pool_url = url
        state.pool = await make_async_pool(
            url,
            min_size=settings.db_pool_min,
            max_size=pool_size or settings.db_pool_max,
            name="suvnet-api",
            checkout_timeout_s=settings.db_pool_timeout_s,
        )
        read_url = settings.database_read_url
        if read_url:
            replica = readconn.ReadReplica(read_url, settings)
            await replica.open(state.pool)
            state.replica = replica
            log.info("read replica: %s", replica.status.describe(replica.max_lag_s))
        # what exists after start-up lives as long as the process: keep it out of the
        # garbage collector's full passes (shorter pauses under load)
        gc.collect()
        gc.freeze()
        log.info("api started", extra={"pool_max": pool_size or settings.db_pool_max})
        try:
            yield
        finally:
            for task in list(state.tasks):
                task.cancel()
            if state.tasks:
                await asyncio.wait(list(state.tasks), timeout=10)
            if state.replica is not None:
                await state.replica.close()
                state.replica = None
            await state.pool.close()
            state.pool = None
            if state.sync_pool is not None:
                await asyncio.to_thread(state.sync_pool.close)
                state.sync_pool = None
            log.info("api stopped")

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"error": code, "detail": ...}``; a page (not /api/) that needs
    a login redirects to its login form instead."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if isinstance(exc, NotAuthenticatedError) and not request.url.path.startswith("/api/"):
            login = "/staff/login" if request.url.path.startswith("/staff") else "/cabinet/login"
            target = f"{login}?next={quote(request.url.path)}"
            lang = request.query_params.get("lang")
            if lang in LANGUAGE_CODES:
                target += f"&lang={lang}"
            return RedirectResponse(target, status_code=303)
        headers: dict[str, str] = {}
        if isinstance(exc, NotAuthenticatedError):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, TooManyAttemptsError):
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(
            {"error": exc.code, "detail": exc.message}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(psycopg.errors.DataError)
    async def _data_error(request: Request, exc: psycopg.errors.DataError) -> Response:
        # e.g. a NUL character or an out-of-range number that passed the schema
        return JSONResponse(
            {
                "error": "invalid",
                "detail": f"the database refused a value: {exc.diag.message_primary}",
            },
            status_code=422,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # the fields are named as FastAPI names them, but no input is echoed in full
        errors = [
            {k: clip_echo(v) if k in ("input", "ctx") else v for k, v in e.items()}
            for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid", "detail": jsonable_encoder(errors)}, 422)

    @app.exception_handler(PoolTimeout)
    async def _database_unreachable(request: Request, exc: PoolTimeout) -> Response:
        # no connection within SUVNET_DB_POOL_TIMEOUT_S: the database is away (a restart,
        # the network); say so and when to try again instead of a bare 500
        log.warning("no database connection for %s %s: %s", request.method, request.url.path, exc)
        detail = gettext_for(language(request)).gettext(
            "The database cannot be reached at the moment. Please try again in a minute."
        )
        return JSONResponse(
            {"error": "unavailable", "detail": detail},
            status_code=503,
            headers={"Retry-After": "10"},
        )

    @app.exception_handler(BodyTooLargeError)
    async def _too_large(request: Request, exc: BodyTooLargeError) -> Response:
        return JSONResponse(
            {"error": "too_large", "detail": exc.detail},
            status_code=413,
            headers={"Connection": "close"},  # the rest of the body is not read
        )


async def _staff_for_docs(request: Request) -> Principal:
    """The API docs in ``staff`` mode: any staff login (Bearer token or the back-office
    session cookie); a visitor without one is sent to the staff login (the page) or gets 401
    (the JSON)."""
    principal = await current_principal(request)
    if principal.role not in STAFF:
        raise ForbiddenError("the API documentation is for staff")
    return principal


def _mount_api_docs(app: FastAPI, access: str) -> None:
    """Swagger UI at /api/docs from the swagger-ui-bundle package (no CDN needed).

    ``access`` (SUVNET_API_DOCS, resolved): ``public`` serves /api/docs and
    /api/openapi.json to anyone, ``staff`` to staff logins only, ``off`` not at all.
    """
    if access == "off":
        return
    app.mount("/api/docs-static", StaticFiles(directory=swagger_ui_path), name="api-docs-static")
    if access == "staff":

        @app.get(
            "/api/openapi.json", include_in_schema=False, dependencies=[Depends(_staff_for_docs)]
        )
        async def openapi_json() -> JSONResponse:
            return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs(request: Request) -> Response:
        if access == "staff":
            try:
                await _staff_for_docs(request)
            except NotAuthenticatedError:
                return RedirectResponse("/staff/login?next=/api/docs", status_code=303)
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="suvnet API",
            swagger_js_url="/api/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/api/docs-static/swagger-ui.css",
            swagger_favicon_url="/api/docs-static/favicon-32x32.png",
        )

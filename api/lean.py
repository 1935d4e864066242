"""Lean handlers for the busiest read routes (issue 20).

A route declared with :func:`lean` keeps its ordinary FastAPI endpoint (its signature,
dependencies and documentation in the OpenAPI schema, and the handler that serves every
unusual request), and gets a second, lean handler that serves the common case without
FastAPI's dependency solving and validation: a Bearer-token GET with a well-formed path.
The lean handler does the login check, the branch scope and its one query in a single
round trip (:func:`api.deps.scoped_read`, the same checks as :func:`api.deps.require` and
:func:`api.deps.get_conn`), and answers with the same JSON body. When it returns None (a
page's cookie session, a malformed path, no token), the ordinary handler answers, so the
error messages and edge cases are those of the ordinary route.

The middleware (body limits, security headers) and the app's error handlers apply to both:
the lean handler runs inside the route, where the ordinary one would.

Measured by ``bench/scale.py`` (``cpu_*`` keys, and balance p99 under ingest load).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

LeanHandler = Callable[[Request], Awaitable[Response | None]]


def lean(handler: LeanHandler) -> type[APIRoute]:
    """A route class (``route_class_override``) that tries ``handler`` first and falls back
    to the route's ordinary handler when it returns None."""

    class LeanRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            ordinary = super().get_route_handler()

            async def serve(request: Request) -> Response:
                response = await handler(request)
                return response if response is not None else await ordinary(request)

            return serve

    LeanRoute.__name__ = LeanRoute.__qualname__ = f"LeanRoute[{handler.__name__}]"
    return LeanRoute

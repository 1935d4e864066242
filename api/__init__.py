"""suvnet API: the FastAPI app (REST under /api/v1), auth and roles, customer cabinet and the
staff back office. Build it with :func:`api.app.create_app`."""

from __future__ import annotations

__all__ = ["create_app"]


# ``api.create_app`` is imported on first use, not with the package: ``suvnet users`` and the
# other commands that import api.* start without loading FastAPI and the app (start-up time).
def __getattr__(name: str) -> object:
    if name == "create_app":
        from api.app import create_app

        return create_app
    raise AttributeError(name)

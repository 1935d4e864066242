"""The old home of the SQL listing helpers, now :mod:`suvnet.listing` (and the JSON answers,
now :mod:`api.responses`). Kept only for ``api/reports/builders.py`` until it imports
``suvnet.listing``; then this file is deleted. Nothing else in api/ uses it."""

from __future__ import annotations

from suvnet.listing import fetch_all

__all__ = ["fetch_all"]

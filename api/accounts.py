"""The old name of :mod:`api.users` (the API's login users, not customer accounts).

Kept only so that ``simulator/demo_office.py`` (``from api import accounts``) works until it
imports :mod:`api.users`; then this file is deleted. Nothing in api/ uses it.
"""

from __future__ import annotations

from api.users import create_user

__all__ = ["create_user"]

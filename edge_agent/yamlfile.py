"""Load a YAML file into a pydantic model; errors name the file, the line and the field.

A thin wrapper of :mod:`suvnet.yamlmodel` (which the office uses for the same files): its
:class:`~suvnet.errors.FileFormatError` becomes the edge agent's
:class:`~edge_agent.errors.ProfileError`, as :mod:`edge_agent.profiles` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from edge_agent.errors import ProfileError
from suvnet import yamlmodel
from suvnet.errors import FileFormatError
from suvnet.yamlmodel import field_name, line_of

__all__ = ["compose", "field_name", "line_of", "load_model"]

M = TypeVar("M", bound=BaseModel)


def _edge_error(exc: FileFormatError) -> ProfileError:
    return ProfileError(exc.path, exc.line, exc.field, exc.message)


def compose(path: Path) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its node tree (for lines); a problem raises ProfileError."""
    try:
        return yamlmodel.compose(path)
    except FileFormatError as exc:
        raise _edge_error(exc) from exc


def load_model(path: Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read ``path`` and validate it as ``model``; raise :class:`ProfileError` on the first
    problem with its line and field."""
    try:
        return yamlmodel.load_model(path, model, context)
    except FileFormatError as exc:
        raise _edge_error(exc) from exc

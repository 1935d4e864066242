"""Load a YAML file into a pydantic model; errors name the file, the line and the field.

Used for the device profiles (``suvnet.profiles``), which both the office (site apply) and the
gateway (``edge_agent``) read: it needs nothing beyond pydantic and PyYAML.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from suvnet.errors import FileFormatError

M = TypeVar("M", bound=BaseModel)


def compose(path: Path) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its node tree (for lines); a problem raises FileFormatError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(str(path), None, None, f"cannot read the file: {exc}") from exc
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise FileFormatError(str(path), line, None, f"not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise FileFormatError(str(path), None, None, f"not valid YAML: {exc}") from exc
    return data, node


def line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node on the path ``loc`` (a pydantic error location)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    cur: yaml.Node = node
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(cur, yaml.MappingNode):
            for k, v in cur.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    nxt = v
                    line = k.start_mark.line + 1
                    break
        elif (
            isinstance(cur, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(cur.value)
        ):
            nxt = cur.value[part]
        if nxt is None:
            if isinstance(part, str) and isinstance(cur, yaml.MappingNode):
                continue  # a union tag in the location (e.g. a bus kind), not a key
            break
        cur = nxt
        line = cur.start_mark.line + 1
    return line


def field_name(loc: Sequence[int | str], data: Any) -> str:
    """Readable field path, e.g. ``points[3].address`` or ``points[setpoint_bar].range``."""
    out = ""
    cur = data
    for part in loc:
        if isinstance(part, int):
            label = str(part)
            if isinstance(cur, list) and 0 <= part < len(cur):
                cur = cur[part]
                if isinstance(cur, dict) and isinstance(cur.get("name"), str):
                    label = cur["name"]
            else:
                cur = None
            out += f"[{label}]"
        else:
            if part.startswith(("function-after", "function-before", "function-wrap")):
                continue
            if isinstance(cur, dict) and part not in cur and cur.get("kind") == part:
                continue  # the tag of a tagged union
            out += ("." if out else "") + part
            cur = cur.get(part) if isinstance(cur, dict) else None
    return out


def load_model(path: Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read ``path`` and validate it as ``model``; raise :class:`FileFormatError` on the first
    problem with its line and field."""
    data, node = compose(path)
    if data is None:
        raise FileFormatError(str(path), None, None, "the file is empty")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        msg = err["msg"].removeprefix("Value error, ")
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise FileFormatError(
            str(path), line_of(node, loc), field_name(loc, data) or None, msg
        ) from exc

"""JSON answers serialised by orjson: big listings, and JSON text made by the database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from fastapi.responses import Response


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(doc: Any, status_code: int = 200) -> Response:
    """A JSON response serialised by orjson (datetimes as ISO 8601), for big payloads."""
    return Response(
        orjson.dumps(doc, default=_default), status_code=status_code, media_type="application/json"
    )


def raw_json_response(head: dict[str, Any], key: str, raw: str) -> Response:
    """``head`` plus one member ``key`` whose value is JSON text made by the database."""
    start = orjson.dumps(head, default=_default)[:-1]
    sep = b"," if len(start) > 1 else b""
    body = start + sep + orjson.dumps(key) + b":" + raw.encode() + b"}"
    return Response(body, media_type="application/json")

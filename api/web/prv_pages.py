"""The back office's page of each PRV (docs/pressure-management.md): its mode, limits and time
profile, the live critical-point pressure and setpoint, the state of the last sending to the
gateway, and the forms that switch hand/auto, send again and change the controller (the same
checks, audit and command as the JSON API: :mod:`api.services.prv`). Every staff role may
look; the registry writers may change the configuration, the command senders may switch and
send."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, State, require
from api.errors import ApiError, InvalidError
from api.i18n import local_time
from api.security import READ_REGISTRY, SEND_COMMANDS, WRITE_REGISTRY, Principal
from api.services import prv as svc
from api.web.common import render
from suvnet import prv_queries as pq
from suvnet.prvcontrol import WEEKDAYS, ControlConfig

router = APIRouter(prefix="/staff", include_in_schema=False)
Device = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
Configurer = Annotated[Principal, Depends(require(WRITE_REGISTRY))]
Operator = Annotated[Principal, Depends(require(SEND_COMMANDS))]
NUMBERS = (
    "min_bar",
    "max_bar",
    "safe_bar",
    "setpoint_bar",
    "deadband_bar",
    "max_step_bar",
    "max_rate_bar_per_min",
)
STEP = re.compile(r"^\s*(?:([a-z,\-]+)\s+)?(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\s+([\d.,]+)\s*$")


def profile_text(steps: Sequence[Mapping[str, Any]]) -> str:
    """A time profile as the form shows it: one ``[days] from-to setpoint`` per line."""
    lines = []
    for s in steps:
        days = s.get("days", list(WEEKDAYS))
        prefix = "" if len(days) == len(WEEKDAYS) else ",".join(days) + " "
        lines.append(f"{prefix}{s['from']}-{s['to']} {s['setpoint_bar']:g}")
    return "\n".join(lines)


def _days(text: str | None) -> list[str] | None:
    """``mon,tue`` or ``mon-fri`` -> the weekdays; None: every day."""
    if not text:
        return None
    out: list[str] = []
    for part in text.split(","):
        if "-" in part:
            a, _, b = part.partition("-")
            if a not in WEEKDAYS or b not in WEEKDAYS:
                raise InvalidError(f"profile: unknown days {part!r} (mon, tue, ... sun)")
            i, j = WEEKDAYS.index(a), WEEKDAYS.index(b)
            out += WEEKDAYS[i : j + 1]
        elif part in WEEKDAYS:
            out.append(part)
        else:
            raise InvalidError(f"profile: unknown day {part!r} (mon, tue, ... sun)")
    return out


def parse_profile(text: str) -> list[dict[str, Any]]:
    """The form's profile lines as profile steps; a line that is not one is a 422."""
    steps: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = STEP.match(line.strip().lower())
        if m is None:
            raise InvalidError(f"profile line {n}: {line.strip()!r} is not 'from-to setpoint'")
        step: dict[str, Any] = {"from": m[2], "to": m[3], "setpoint_bar": _number(m[4])}
        days = _days(m[1])
        if days is not None:
            step["days"] = days
        steps.append(step)
    return steps


def _number(text: str) -> float:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError as exc:
        raise InvalidError(f"{text!r} is not a number") from exc


def config_from_form(stored: Mapping[str, Any] | None, form: Mapping[str, str]) -> ControlConfig:
    """The stored configuration with the form's fields on top (sensors, curve and the
    settings the form does not show stay as they are)."""
    doc: dict[str, Any] = dict(stored or {})
    doc["mode"] = form.get("mode", doc.get("mode", "fixed"))
    for key in NUMBERS:
        raw = (form.get(key) or "").strip()
        if raw:
            doc[key] = _number(raw)
        elif key in ("safe_bar", "setpoint_bar"):
            doc.pop(key, None)
    text = form.get("profile") or ""
    if text.strip():
        doc["profile"] = parse_profile(text)
    else:
        doc.pop("profile", None)
    cp = doc.get("critical_point")
    target = (form.get("target_bar") or "").strip()
    if isinstance(cp, dict):
        cp = dict(cp)
        if target:
            cp["target_bar"] = _number(target)
        margin = (form.get("margin_bar") or "").strip()
        if margin:
            cp["margin_bar"] = _number(margin)
        doc["critical_point"] = cp
    elif doc["mode"] == "critical_point":
        raise InvalidError(
            "critical_point: the sensors are set in the site file or through the API"
        )
    return svc.parse_control(doc)


@router.get("/prv")
async def prv_list_page(*, request: Request, who: Reader, conn: Conn) -> Response:
    rows = await pq.prv_list(conn)
    return render(request, "staff_prv.html", who=who, prvs=rows, prv=None)


@router.get("/prv/{device}")
async def prv_page(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    st: State,
    device: Device,
    error: Annotated[str, Query(max_length=500)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    reason: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    view = await svc.view(conn, device, st.clock())
    control = view["control"] or {}
    return render(
        request,
        "staff_prv.html",
        who=who,
        prv=view,
        when=local_time,
        profile_text=profile_text(control.get("profile", [])),
        can_configure=who.role in WRITE_REGISTRY,
        can_operate=who.role in SEND_COMMANDS,
        error=error,
        status=status,
        reason=reason,
    )


def _back(device: str, result: dict[str, Any] | None = None, error: str = "") -> Response:
    query: dict[str, str] = {}
    if error:
        query["error"] = error
    if result is not None:
        sent = result.get("push", result)
        query["status"] = str(sent.get("status") or "")
        if sent.get("reason"):
            query["reason"] = str(sent["reason"])
    suffix = "?" + urlencode(query) if query else ""
    return RedirectResponse(f"/staff/prv/{device}{suffix}", status_code=303)


@router.post("/prv/{device}/auto")
async def prv_auto(
    *, request: Request, who: Operator, conn: Conn, st: State, device: Device
) -> Response:
    form = await request.form()
    auto = str(form.get("auto", "")) == "1"
    try:
        result = await svc.set_auto(svc.Caller(conn, request, who, st), device, auto=auto)
    except ApiError as exc:
        return _back(device, error=exc.message)
    return _back(device, result)


@router.post("/prv/{device}/push")
async def prv_push(
    *, request: Request, who: Operator, conn: Conn, st: State, device: Device
) -> Response:
    try:
        result = await svc.push(svc.Caller(conn, request, who, st), device)
    except ApiError as exc:
        return _back(device, error=exc.message)
    return _back(device, result)


@router.post("/prv/{device}/config")
async def prv_config(
    *, request: Request, who: Configurer, conn: Conn, st: State, device: Device
) -> Response:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        row = await svc.prv_or_404(conn, device)
        cfg = config_from_form(row["config"], fields)
        result = await svc.set_control(svc.Caller(conn, request, who, st), device, cfg)
    except ApiError as exc:
        return _back(device, error=exc.message)
    return _back(device, result)

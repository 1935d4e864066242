"""The back office's network map (``/staff/map``) and asset card (``/staff/assets/{code}``).

The map page is a frame: the map library (Leaflet, vendored into api/static from its npm
package, never a CDN) and api/static/map.js load the layers from the JSON API by bounding
box as the user pans and zooms (:mod:`api.routes.assets`). The asset card is rendered here
from :func:`assets.queries.asset_card`."""

from __future__ import annotations

import json
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from api.deps import Conn, require
from api.errors import NotFoundError
from api.i18n import gettext_for
from api.security import READ_REGISTRY, WRITE_REGISTRY, Principal
from api.services.asset_ops import CRITICAL_NAMES, N_, critical_name
from api.web.common import PAGE_CSP, language, render
from assets import queries as aq
from assets.settings import map_settings

router = APIRouter(prefix="/staff", include_in_schema=False)
Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
TASHKENT = ZoneInfo("Asia/Tashkent")

MAP_WORDS = (
    "Diameter",
    "Material",
    "Age",
    "Condition",
    "Status",
    "History",
    "Open card",
    "Zoom in to see every pipe",
    "pipes shown",
    "Loading...",
    "Open alarms",
    "Latest values",
    "State",
    "unknown",
    "years",
    "mm",
    "No history",
    "Finding",
    "Zone",
    "Install year",
    "Kind",
    "Changed by",
    "Changes",
    "Search",
    "Nothing found.",
    "Tashkent time",
    # valve isolation and the renewal ranking
    "Valve isolation",
    "Isolate",
    "Valves to close",
    "Passed over (cannot be closed)",
    "Subscribers without water",
    "Critical customers",
    "Addresses",
    "Pipes without water, m",
    "Accounts of zone %(zone)s without a service connection in the register: %(n)s",
    "Account",
    "Name",
    "Address",
    "Phone",
    "Clear",
    "Route-map sheet (PDF)",
    "No valve can isolate this pipe: the zone's boundary valves would isolate it.",
    "The isolation cannot be computed for this.",
    "Alarm",
    "Renewal ranking",
    "Rank",
    "Score",
    "Subscribers cut off",
    "Workbook (XLSX)",
)
"""Words map.js shows, translated on the server and handed to it in a data attribute."""
VALVE_ROLES = {
    "close": N_("close"),
    "skipped": N_("cannot be closed"),
    "not_needed": N_("not needed"),
    "already_closed": N_("closed already"),
}
"""A valve's role in an isolation (its tooltip on the map)."""


def map_csp(tile_origin: str | None) -> str:
    """The page policy, with the base map's tile server allowed for images when one is
    configured (everything else stays 'self')."""
    if not tile_origin:
        return PAGE_CSP
    return PAGE_CSP.replace("img-src 'self' data:", f"img-src 'self' data: {tile_origin}")


@router.get("/map")
async def map_page(request: Request, who: Reader, conn: Conn) -> Response:
    lang = language(request)
    tr = gettext_for(lang)
    s = map_settings()
    extent = await aq.extent(conn)
    config = {
        "api": "/api/v1/assets",
        "extent": extent,
        "tiles": s.map_tile_url,
        "attribution": s.map_tile_attribution,
        "words": {w: tr.gettext(w) for w in MAP_WORDS}
        | {f"valve_{k}": tr.gettext(v) for k, v in VALVE_ROLES.items()},
        "lang": lang,
        "critical": {k: critical_name(k, lang) for k in CRITICAL_NAMES},
    }
    resp = render(
        request,
        "staff_map.html",
        who=who,
        config=json.dumps(config, ensure_ascii=False),
        can_edit=who.role in WRITE_REGISTRY,
    )
    resp.headers["Content-Security-Policy"] = map_csp(s.tile_origin)
    return resp


def _fmt_changes(changes: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for field, pair in (changes or {}).items():
        old, new = [*pair, None, None][:2] if isinstance(pair, list) else (None, pair)
        if field == "geom_wkb":
            out.append(("geometry", "", ""))
            continue
        out.append((field, _short(old), _short(new)))
    return out


def _short(v: Any) -> str:
    if v is None:
        return ""
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 60 else s[:57] + "..."


CARD_FIELDS: tuple[tuple[str, str], ...] = (
    ("kind", "Kind"),
    ("system", "System"),
    ("status", "Status"),
    ("name", "Name"),
    ("material", "Material"),
    ("diameter_mm", "Diameter, mm"),
    ("install_year", "Install year"),
    ("depth_m", "Depth, m"),
    ("elevation_m", "Ground level, m"),
    ("invert_start_m", "Invert at the start, m"),
    ("invert_end_m", "Invert at the end, m"),
    ("pressure_class", "Pressure class"),
    ("owner", "Owner"),
    ("condition_grade", "Condition (1 good - 5 bad)"),
    ("cadastral_no", "Cadastral number"),
    ("land_plot", "Land plot"),
    ("accuracy_m", "Survey accuracy, m"),
    ("source_crs", "Surveyed in (CRS)"),
    ("zone", "Zone"),
    ("ref_code", "Element of the hydraulic model"),
    ("account_no", "Account"),
    ("feed_pipe", "Fed by pipe"),
    ("length_m", "Length, m"),
    ("version", "Version"),
)
"""The card's fields and their labels (msgids of the catalogs)."""


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return str(v)


@router.get("/assets/{code}")
async def asset_page(
    request: Request,
    who: Reader,
    conn: Conn,
    code: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")],
) -> Response:
    card = await aq.asset_card(conn, code)
    if card is None:
        raise NotFoundError(f"no asset {code}")
    history = [
        {
            "version": v["version"],
            "op": v["op"],
            "at": v["changed_at"].astimezone(TASHKENT).strftime("%d.%m.%Y %H:%M"),
            "by": v["changed_by"],
            "source": v["source"],
            "changes": _fmt_changes(v["changes"]),
        }
        for v in card["history"]
    ]
    tr = gettext_for(language(request))
    fields = [
        (tr.gettext(label), _value(card[f]))
        for f, label in CARD_FIELDS
        if card.get(f) not in (None, "")
    ]
    return render(
        request,
        "staff_asset.html",
        who=who,
        card=card,
        fields=fields,
        history=history,
        attrs=sorted((k, _short(v)) for k, v in (card.get("attrs") or {}).items()),
        updated_at=card["updated_at"].astimezone(TASHKENT).strftime("%d.%m.%Y %H:%M"),
    )

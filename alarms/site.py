"""The ``alarms:`` section of a site file (``suvnet site apply``).

suvnet's site apply finds this handler through the entry-point group
``suvnet.site_sections`` and calls it inside its own transaction, after the zones, devices
and points of the file are written. The section holds operator ``positions`` and alarm
``rules`` in the same form as a rules file (``suvnet alarms rules load``); rules are matched
by code, validated and stored by the same functions (alarms.store). A bad rule raises a
FileFormatError with the site file, the line and the field, which rolls the whole apply back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alarms.errors import RuleConfigError
from alarms.store import Conn, PositionIn, RuleIn, save_position, save_rule

if TYPE_CHECKING:
    from suvnet.site import SectionContext

_FRIENDLY = {
    "extra_forbidden": "unknown key (misspelt? docs/alarms.md lists the rule keys)",
    "missing": "is required",
}


class AlarmsSection(BaseModel):
    """``alarms:`` in a site file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: list[PositionIn] = Field(default_factory=list)
    rules: list[RuleIn] = Field(default_factory=list)


def _loc(loc: Sequence[Any]) -> tuple[str | int, ...]:
    return tuple(p for p in loc if isinstance(p, str | int))


def _duplicate(items: Sequence[str]) -> tuple[int, int] | None:
    first: dict[str, int] = {}
    for i, code in enumerate(items):
        if code in first:
            return first[code], i
        first[code] = i
    return None


def apply_section(conn: Conn, data: Any, ctx: SectionContext, dry_run: bool) -> None:
    """Create or update the positions and rules of the section (``dry_run``: report only)."""
    del dry_run  # the site apply rolls its transaction back itself
    try:
        section = AlarmsSection.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        msg = _FRIENDLY.get(str(first["type"]), str(first["msg"]))
        raise ctx.error(_loc(first["loc"]), msg) from exc
    for key, codes in (
        ("positions", [p.code for p in section.positions]),
        ("rules", [r.code for r in section.rules]),
    ):
        dup = _duplicate(codes)
        if dup is not None:
            a, b = dup
            raise ctx.error(
                (key, b, "code"),
                f"'{codes[b]}' appears twice (first at {ctx.name}.{key}[{a}].code)",
            )
    for p in section.positions:
        ctx.log.add("alarm positions", p.code, save_position(conn, p))
    _check_zone_signs(conn, ctx)
    for i, rule in enumerate(section.rules):
        try:
            change, _ = save_rule(conn, rule)
        except RuleConfigError as exc:
            raise ctx.error(("rules", i, *(exc.path or ("code",))), str(exc)) from exc
        ctx.log.add("alarm rules", rule.code, change)


def _check_zone_signs(conn: Conn, ctx: SectionContext) -> None:
    """A boundary meter's ``attrs.zone_signs`` names zones by code (a zone id as text is
    still understood), each with 1 (its forward flow goes into the zone) or -1."""
    codes = {str(r[0]) for r in conn.execute("SELECT code FROM zones").fetchall()}
    ids = {str(r[0]) for r in conn.execute("SELECT id FROM zones").fetchall()}
    for g, gw in enumerate(ctx.site.spec.gateways):
        for d, dev in enumerate(gw.devices):
            signs = dev.attrs.get("zone_signs")
            if signs is None:
                continue
            loc: tuple[str | int, ...] = ("gateways", g, "devices", d, "attrs", "zone_signs")
            if not isinstance(signs, dict) or not signs:
                raise ctx.site.error(loc, "zone_signs: give {zone code: 1 or -1, ...}")
            for key, sign in signs.items():
                if str(key) not in codes and str(key) not in ids:
                    raise ctx.site.error(
                        (*loc, str(key)), f"zone_signs: no zone {key!r} (name zones by code)"
                    )
                if sign not in (1, -1):
                    raise ctx.site.error(
                        (*loc, str(key)), f"zone_signs: {key}: {sign!r} is neither 1 nor -1"
                    )

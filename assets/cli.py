"""``suvnet assets ...``: import and export the register, run the network checks, show an
asset's history, the network on a date, and the local coordinate systems."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from assets import service
from assets.errors import AssetError, ImportRefusedError
from assets.files import ReadOptions
from assets.store import Actor
from suvnet.db import connect, database_url
from suvnet.settings import get_settings

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    help=(
        "The asset register of the water and sewer networks (docs/assets.md): import survey "
        "and CAD files in any coordinate system, export GeoPackage and EPANET, run the "
        "network checks, show an asset's history or the network on a date."
    ),
    no_args_is_help=True,
)
crs_app = typer.Typer(help="Local coordinate systems (SK-63 zones and the like).")
app.add_typer(crs_app, name="crs")


def _now() -> datetime:
    return datetime.now(UTC)


def _who() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except OSError:  # pragma: no cover - no user name in the environment
        return "cli"


def _conn() -> psycopg.Connection[Any]:
    return connect(database_url(get_settings()))


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
    raise typer.Exit(1) from exc


@app.command("import")
def import_cmd(  # noqa: PLR0917 - typer options
    path: Annotated[Path, typer.Argument(help=".shp .gpkg .dxf .csv .geojson or .inp")],
    crs: Annotated[
        str | None,
        typer.Option(
            help="CRS of the coordinates: EPSG:nnnn, WGS84, UTM42N, SK42-GK12 or a "
            "local system; required when the file does not say"
        ),
    ] = None,
    layer: Annotated[list[str] | None, typer.Option(help="only these layers")] = None,
    kind: Annotated[str | None, typer.Option(help="kind of features that have none")] = None,
    layer_kind: Annotated[
        list[str] | None, typer.Option(help="LAYER=KIND for layers (also DXF) named otherwise")
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="text encoding of a .dbf")] = None,
    accuracy: Annotated[float | None, typer.Option(help="survey accuracy in metres")] = None,
    prefix: Annotated[str, typer.Option(help="put this in front of every asset id")] = "",
    update: Annotated[bool, typer.Option(help="change assets that exist already")] = False,
    dry_run: Annotated[bool, typer.Option(help="check and count, write nothing")] = False,
) -> None:
    """Import a file into the register: every feature, or nothing (the errors name each
    feature and field)."""
    kinds: dict[str, str] = {}
    for item in layer_kind or []:
        name, _, k = item.partition("=")
        if not k:
            _fail(AssetError(f"--layer-kind must be LAYER=KIND, not {item!r}"))
        kinds[name] = k
    try:
        with _conn() as conn:
            opts = ReadOptions(
                crs=crs,
                kind=kind,
                layers=tuple(layer or ()),
                layer_kinds=kinds,
                encoding=encoding,
                accuracy_m=accuracy,
                prefix=prefix,
            )
            actor = Actor(_who(), f"import: {path.name}", _now())
            res = service.import_file(conn, path, opts, actor, update=update)
            if dry_run:
                conn.rollback()
    except ImportRefusedError as exc:
        err.print(f"[red]{path.name}: {len(exc.problems)} problem(s), nothing was imported[/red]")
        for p in exc.problems[:200]:
            err.print(f"  {p}", highlight=False, markup=False)
        raise typer.Exit(1) from exc
    except AssetError as exc:
        _fail(exc)
    word = "would be" if dry_run else "were"
    console.print(f"{path.name}: {res.summary()} ({word} written)")


@app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Argument(help=".gpkg, .geojson or .inp")],
    crs: Annotated[str, typer.Option(help="CRS of the written coordinates")] = "EPSG:4326",
    at: Annotated[
        str | None, typer.Option(help="the network as it was then (YYYY-MM-DD or ISO time)")
    ] = None,
) -> None:
    """Export the register (or its state on a date) as a GeoPackage (one layer per kind
    group), GeoJSON, or an EPANET model (.inp: the water network)."""
    when = _parse_at(at) if at else None
    try:
        with _conn() as conn:
            counts = service.export_file(
                conn, out, crs=None if out.suffix == ".inp" and crs == "EPSG:4326" else crs, at=when
            )
    except AssetError as exc:
        _fail(exc)
    console.print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _parse_at(text: str) -> datetime:
    try:
        d = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date or time: {text!r}") from exc
    if d.tzinfo is None:
        from zoneinfo import ZoneInfo

        d = d.replace(tzinfo=ZoneInfo("Asia/Tashkent"))
        if len(text) == 10:
            d = d.replace(hour=23, minute=59, second=59)
    return d.astimezone(UTC)


@app.command("check")
def check_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the findings as JSON")] = False,
) -> None:
    """Run the network checks (dangling and unsnapped ends, disconnected parts, zone
    boundaries without a meter or valve, sewers sloping uphill) and keep the report for the
    map."""
    t0 = time.perf_counter()
    with _conn() as conn:
        run_id, findings = service.check_network(conn, now=_now(), by=_who())
    if as_json:
        console.print_json(json.dumps([f.as_dict() for f in findings]))
        return
    table = Table(title=f"network checks (report {run_id}, {time.perf_counter() - t0:.1f} s)")
    for col in ("check", "asset", "where (lon, lat)", "detail"):
        table.add_column(col)
    for f in findings[:500]:
        detail = {k: v for k, v in f.detail.items() if k != "codes"}
        table.add_row(f.check_kind, f.asset_code, f"{f.lon:.6f}, {f.lat:.6f}", json.dumps(detail))
    console.print(table)
    console.print(f"{len(findings)} finding(s)")


@app.command("history")
def history_cmd(code: str) -> None:
    """Every version of one asset: who changed what, when, from where."""
    from assets.store import history

    with _conn() as conn:
        rows = history(conn, code)
    if not rows:
        _fail(AssetError(f"no asset with code {code!r} has any history"))
    table = Table(title=f"asset {code}")
    for col in ("version", "when (Asia/Tashkent)", "who", "source", "changes"):
        table.add_column(col)
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Tashkent")
    for r in rows:
        changes = r["changes"] or {}
        text = (
            "; ".join(f"{k}: {_short(v[0])} -> {_short(v[1])}" for k, v in changes.items())
            or r["op"]
        )
        table.add_row(
            str(r["version"]),
            r["changed_at"].astimezone(tz).strftime("%d.%m.%Y %H:%M"),
            r["changed_by"],
            r["source"],
            text,
        )
    console.print(table)


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 40 else s[:37] + "..."


@crs_app.command("list")
def crs_list() -> None:
    """The coordinate systems an import may name."""
    from assets.crs import ALIASES
    from assets.store import local_crs

    table = Table()
    table.add_column("name")
    table.add_column("is")
    for k, v in ALIASES.items():
        table.add_row(k, v)
    with _conn() as conn:
        for k, v in local_crs(conn).items():
            table.add_row(k, v)
    console.print(table)


@crs_app.command("add")
def crs_add(
    code: str,
    definition: Annotated[str, typer.Argument(help="PROJ string or WKT")],
    name: Annotated[str, typer.Option()] = "",
) -> None:
    """Register a local coordinate system (an SK-63 zone with its survey-office parameters)."""
    from assets.store import add_crs

    try:
        with _conn() as conn:
            add_crs(conn, code, definition, name)
    except AssetError as exc:
        _fail(exc)
    console.print(f"coordinate system {code} saved")


@app.command("qgis-styles")
def qgis_styles(
    style_dir: Annotated[
        Path | None, typer.Argument(help="folder of the .qml files (default: deploy/qgis)")
    ] = None,
) -> None:
    """Store the QGIS styles of the published layers in the database, so that QGIS draws
    each layer styled when it is opened (PostGIS databases only)."""
    from assets.qgis import STYLE_DIR, install_styles

    try:
        with _conn() as conn:
            n = install_styles(conn, style_dir or STYLE_DIR)
    except (AssetError, OSError) as exc:
        _fail(exc)
    console.print(f"{n} layer styles stored (table layer_styles)")

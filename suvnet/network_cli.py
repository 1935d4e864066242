"""``suvnet network ...`` and ``suvnet site ...``: import, export and the site file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from suvnet.errors import FileFormatError
from suvnet.network import ChangeLog

console = Console()

# Imports inside the commands are for start-up time: `suvnet` loads every sub-command's app
# at start, so what only one command needs (wntr, psycopg...) is loaded by
# that command.

app = typer.Typer(
    help=(
        "The water network (pipes, nodes, valves, pumps, zones): import it from an EPANET "
        ".inp file or GeoJSON, export it as GeoJSON for maps (QGIS, Grafana, web maps)."
    ),
    no_args_is_help=True,
)
site_app = typer.Typer(
    help=(
        "The site file: one YAML file describing a village's zones, network, gateways, "
        "devices and their measuring points. See docs/site.md."
    ),
    no_args_is_help=True,
)

_SHOW_NAMES = 12


def print_changes(log: ChangeLog, *, title: str) -> None:
    """A table of created/updated/unchanged per kind, then the names of what changed."""
    table = Table(title=title, title_justify="left")
    table.add_column("what")
    table.add_column("created", justify="right", style="green")
    table.add_column("updated", justify="right", style="yellow")
    table.add_column("unchanged", justify="right", style="dim")
    for kind in log.entries:
        table.add_row(
            kind,
            str(log.count(kind, "created")),
            str(log.count(kind, "updated")),
            str(log.count(kind, "unchanged")),
        )
    console.print(table)
    for kind in log.entries:
        for change in ("created", "updated"):
            names = log.names(kind, change)
            if not names:
                continue
            shown = ", ".join(names[:_SHOW_NAMES])
            more = f" ... and {len(names) - _SHOW_NAMES} more" if len(names) > _SHOW_NAMES else ""
            console.print(f"  {kind} {change}: {shown}{more}")
    if not log.changed:
        console.print("no change: the database already matches.")


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar; yields ``update(done, total)``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _url() -> str:
    from suvnet.db import database_url
    from suvnet.settings import get_settings

    return database_url(get_settings())


@app.command("import")
def import_cmd(  # noqa: PLR0917
    file: Annotated[
        Path,
        typer.Argument(
            help="An EPANET .inp file, or a GeoJSON file (.geojson / .json) of Point nodes, "
            "LineString pipes and Polygon zones.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    zone: Annotated[
        str | None,
        typer.Option(
            "--zone",
            help="Put every imported node (and valve, pump) into this zone (DMA). The zone "
            "must exist already, e.g. from the site file.",
        ),
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code", help="Name of the network in the database (default: the file name)."
        ),
    ] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            "--crs",
            help="Coordinate system of the file's coordinates: 'local' (drawing coordinates, "
            "the usual case for .inp files), 'EPSG:4326' (longitude/latitude) or another "
            "EPSG code such as 'EPSG:32642' (UTM 42N). Default: local for .inp, EPSG:4326 "
            "for GeoJSON.",
        ),
    ] = None,
    prefix: Annotated[
        str,
        typer.Option(
            "--prefix",
            help="Put this text before every node and link ID (for two models that use the "
            "same IDs), e.g. --prefix north-",
        ),
    ] = "",
    assign_zones: Annotated[
        bool,
        typer.Option(
            "--assign-zones",
            help="Put nodes without a zone into the zone whose polygon contains them (the "
            "zones must use the same coordinate system as the network).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change, then roll back.")
    ] = False,
) -> None:
    """Import a network into the registry, creating or updating nodes, pipes, valves and pumps.

    Importing the same file again changes nothing; a changed file updates what differs.
    Nothing is deleted. Everything is written in one transaction.
    """
    import psycopg

    from suvnet.db import connect
    from suvnet.network import (
        assign_zones as assign,
    )
    from suvnet.network import (
        read_geojson,
        read_inp,
        renamed,
        save_network,
        save_zones,
    )
    from suvnet.registry import UnknownReferenceError, list_zones

    if file.suffix.lower() == ".inp":
        networks = [read_inp(file, code=code, crs=crs or "local", zone=zone, prefix=prefix)]
        zones = []
    else:
        geo = read_geojson(file, crs=crs, zone=zone, **({"default_network": code} if code else {}))
        networks, zones = list(geo.networks), list(geo.zones)
        if code and len(networks) > 1:
            raise FileFormatError(
                str(file),
                None,
                "networks",
                f"--code needs one network, the file has {len(networks)}",
            )
        if code or prefix:
            networks = [renamed(n, code or n.info.code, None, prefix) for n in networks]
    total = sum(n.size for n in networks)
    console.print(
        f"{file.name}: {total} elements in {len(networks)} network(s)"
        + (f", {len(zones)} zone(s)" if zones else "")
    )
    log = ChangeLog()
    with connect(_url()) as conn, progress_bar("writing") as update:
        try:
            with conn.transaction(force_rollback=dry_run):
                save_zones(conn, zones, log)
                done = 0

                def step(n: int) -> None:
                    nonlocal done
                    done += n
                    update(done, total)

                for net in networks:
                    if assign_zones:
                        net = assign(net, list_zones(conn))  # noqa: PLW2901
                    save_network(conn, net, log, progress=step)
        except UnknownReferenceError as exc:
            hint = " (create it first, e.g. with suvnet site apply)" if exc.kind == "zone" else ""
            raise FileFormatError(str(file), None, exc.kind, f"{exc}{hint}") from exc
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            diag = exc.diag.message_primary or str(exc)
            raise FileFormatError(
                str(file), None, None, f"the database refused a value: {diag}"
            ) from exc
    print_changes(log, title="network import" + (" (dry run, rolled back)" if dry_run else ""))


@app.command("export")
def export_cmd(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="GeoJSON file to write ('-' writes to standard output)."),
    ],
    zones: Annotated[
        bool,
        typer.Option("--zones", help="Also export the zones (DMA polygons)."),
    ] = False,
    network: Annotated[
        str | None,
        typer.Option("--network", help="Export only this network (default: all)."),
    ] = None,
) -> None:
    """Export the network (nodes, pipes, valves, pumps) as one GeoJSON FeatureCollection.

    Every feature has properties.layer (node, pipe, valve, pump, zone) and properties.code,
    so a map can style the layers apart. The file can be imported again unchanged.
    """
    from suvnet.db import connect
    from suvnet.network import export_geojson

    with connect(_url(), autocommit=True) as conn:
        doc = export_geojson(conn, zones=zones, network=network)
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    if str(out) == "-":
        sys.stdout.write(text + "\n")
        return
    out.write_text(text + "\n", encoding="utf-8")
    n = len(doc["features"])
    console.print(f"wrote {n} features to {out}")


@site_app.command("apply")
def apply_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="The site file (YAML), e.g. deploy/examples/village-site.yaml",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check the file and show what would change; write nothing."),
    ] = False,
) -> None:
    """Create or update zones, network, gateways, devices and points from a site file.

    All in one transaction: a bad file or a bad reference changes nothing. Applying the same
    file twice changes nothing the second time. Nothing is deleted.
    """
    from suvnet.site import apply_site_file

    with progress_bar("writing the network") as update:
        log = apply_site_file(_url(), file, dry_run=dry_run, progress=update)
    print_changes(log, title=f"{file.name}" + (" (dry run, rolled back)" if dry_run else ""))


@site_app.command("check")
def check_cmd(
    file: Annotated[
        Path,
        typer.Argument(help="The site file (YAML).", exists=True, dir_okay=False, readable=True),
    ],
) -> None:
    """Validate a site file without touching the database (syntax, fields, network file)."""
    from suvnet.site import build_network, load_site

    site = load_site(file)
    net = build_network(site)
    devices = sum(len(g.devices) for g in site.spec.gateways)
    console.print(
        f"{file}: OK - {len(site.spec.zones)} zones, "
        f"{net.size if net else 0} network elements, {len(site.spec.gateways)} gateways, "
        f"{devices} devices"
    )

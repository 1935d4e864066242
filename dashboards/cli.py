"""``suvnet dashboards ...`` and ``suvnet mqtt ...`` commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dashboards.errors import DashboardsError
from dashboards.provisioning import DatasourceConfig

console = Console()

# Imports inside the commands are for start-up time: `suvnet` loads every sub-command's app
# at start, so what only one command needs (grafana-client, psycopg...) is loaded by
# that command.

app = typer.Typer(
    help=(
        "Grafana dashboards: write them as JSON with provisioning files (build), or upload "
        "them into a running Grafana (push). Every command takes --lang: uz (Uzbek Latin, "
        "the default, as on the staff pages), uz_Cyrl (Uzbek Cyrillic), ru (Russian) or en "
        "(English)."
    ),
    no_args_is_help=True,
)
mqtt_app = typer.Typer(
    help="MQTT broker administration: Mosquitto users and access rules for the gateways.",
    no_args_is_help=True,
)

_TS_HELP = (
    "Tell Grafana the database has TimescaleDB (faster time grouping with time_bucket). "
    "Turn off for plain PostgreSQL."
)


_LANG_HELP = (
    "Language of the dashboards: uz (Uzbek Latin, the default), uz_Cyrl (Uzbek Cyrillic), "
    "ru (Russian) or en (English). uz keeps the usual dashboard addresses (uid suvnet-zone, "
    "folder suvnet); another language gets its own (suvnet-zone-ru, folder suvnet-ru), so "
    "several languages can be pushed into one Grafana side by side."
)


def _lang(value: str) -> str:
    from dashboards.i18n import check_lang

    try:
        return check_lang(value)
    except DashboardsError as e:
        raise typer.BadParameter(str(e)) from e


LangOption = Annotated[str, typer.Option("--lang", help=_LANG_HELP, callback=_lang)]


def _datasource(url: str | None, timescaledb: bool) -> DatasourceConfig:
    if url:
        return DatasourceConfig.from_url(url, timescaledb=timescaledb)
    return DatasourceConfig(timescaledb=timescaledb)


@app.command("list")
def list_dashboards(lang: LangOption = "uz") -> None:
    """List the dashboards with their uid, title (in --lang) and number of panels."""
    from dashboards.boards import all_dashboards
    from dashboards.i18n import render

    t = Table("uid", "title", "panels", "variables")
    for d in all_dashboards():
        doc = render(d, lang)
        names = ", ".join(v.name for v in d.variables)
        t.add_row(doc["uid"], doc["title"], str(len(d.panels)), names)
    console.print(t)


@app.command("build")
def build_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write into (created if missing).")
    ],
    network: Annotated[
        bool,
        typer.Option(
            "--network/--no-network",
            help="Also export pipes and zone outlines from the registry for the network map "
            "(needs the database).",
        ),
    ] = False,
    datasource_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL as Grafana reaches it (postgresql://user:pass@host:5432/db). "
            "Default: ${SUVNET_GRAFANA_DB_*} placeholders that Grafana fills from its "
            "environment (as in deploy/docker-compose.yml).",
        ),
    ] = None,
    timescaledb: Annotated[
        bool, typer.Option("--timescaledb/--no-timescaledb", help=_TS_HELP)
    ] = True,
    lang: LangOption = "uz",
) -> None:
    """Write the dashboards (JSON, in one --lang) and Grafana provisioning files into a folder.

    Build each language into its own folder; Grafana shows the one mounted."""
    from dashboards.boards import all_dashboards
    from dashboards.provisioning import build, stale_dashboard_files

    geojson = None
    if network:
        from dashboards.network_map import fetch_network
        from suvnet.db import connect, database_url
        from suvnet.settings import get_settings

        with connect(database_url(get_settings()), autocommit=True) as conn:
            geojson = fetch_network(conn)
    boards = all_dashboards()
    res = build(out, boards, _datasource(datasource_url, timescaledb), geojson, lang)
    for p in res.written:
        console.print(f"  wrote {p}")
    if res.unchanged:
        console.print(f"  {len(res.unchanged)} file(s) already up to date")
    if geojson is not None:
        console.print(f"  network map: {len(geojson['features'])} feature(s)")
    for p in stale_dashboard_files(out, boards, lang):
        console.print(f"[yellow]  {p} is not a current dashboard: delete it if unused[/yellow]")
    console.print(f"[green]{len(boards)} dashboards ({lang}) built in {out}[/green]")


_PUSH_HELP = (
    "Create or update the folder, the datasource and every dashboard in a running Grafana.\n\n"
    "Safe to run again: everything has a fixed uid, so it updates in place and never "
    "duplicates; unchanged dashboards are not written.\n\n"
    "--lang chooses the language; push once per language to offer several (each language "
    "has its own folder)."
)


@app.command("push", help=_PUSH_HELP)
def push_cmd(  # noqa: PLR0917 - typer's options are the function's parameters
    grafana_url: Annotated[
        str | None,
        typer.Option(
            help="Grafana address, e.g. http://grafana:3000 (default SUVNET_GRAFANA_URL)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Service-account token (default SUVNET_GRAFANA_TOKEN).", show_default=False
        ),
    ] = None,
    datasource_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL as Grafana reaches it (default SUVNET_DATABASE_URL).",
        ),
    ] = None,
    with_datasource: Annotated[
        bool,
        typer.Option(
            "--datasource/--no-datasource",
            help="Create or update the PostgreSQL datasource too.",
        ),
    ] = True,
    timescaledb: Annotated[
        bool, typer.Option("--timescaledb/--no-timescaledb", help=_TS_HELP)
    ] = True,
    lang: LangOption = "uz",
) -> None:
    from dashboards.boards import all_dashboards
    from dashboards.push import connect, push
    from suvnet.settings import get_settings

    s = get_settings()
    url = grafana_url or s.grafana_url
    if not url:
        raise DashboardsError(
            "no Grafana address: pass --grafana-url or set SUVNET_GRAFANA_URL "
            "(e.g. http://127.0.0.1:3000)"
        )
    ds = None
    if with_datasource:
        db = datasource_url or s.database_url
        if not db:
            raise DashboardsError(
                "no database URL for the Grafana datasource: pass --datasource-url or set "
                "SUVNET_DATABASE_URL (or use --no-datasource)"
            )
        ds = DatasourceConfig.from_url(db, timescaledb=timescaledb)
    api = connect(url, token or s.grafana_token)
    boards = all_dashboards()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("pushing dashboards", total=len(boards))
        report = push(api, boards, ds, progress=lambda _uid: progress.advance(task), lang=lang)
    if ds is not None:
        console.print(f"datasource: {report.datasource}")
    console.print(f"folder: {report.folder}")
    console.print(
        f"dashboards: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged"
    )


_ACL_HELP = (
    "Write Mosquitto's password and ACL files from the gateway registry.\n\n"
    "Each allowed gateway may publish only under its own topics and read only its own "
    "commands and acks. Gateways go into 'gateways.passwd' (the gateway listener, where the "
    "broker uses each user name as the client id, so no gateway can take over another "
    "client's session), the office services into 'passwd' (the office listener). Existing "
    "users keep their passwords; new users get a random one, listed once in "
    "new-credentials.txt. Service passwords come from SUVNET_MQTT_INGEST_PASSWORD, "
    "SUVNET_MQTT_API_PASSWORD and SUVNET_MQTT_OFFICE_PASSWORD when set."
)
_CHECK_HELP = (
    "Check a mosquitto.conf against the suvnet broker rules: per-listener password files, "
    "gateways only on a listener with use_username_as_clientid true, the office services "
    "only on another, no anonymous access. Exits 1 and lists the problems if any."
)


@mqtt_app.command("acl", help=_ACL_HELP)
def acl_cmd(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for the 'acl' and 'passwd' files (mounted by Mosquitto)."
        ),
    ],
    root: Annotated[
        str | None, typer.Option(help="Topic root (default SUVNET_TOPIC_ROOT or 'suvnet').")
    ] = None,
) -> None:
    from dashboards.mqtt_acl import registry_gateways, write_files
    from suvnet.db import connect, database_url
    from suvnet.settings import get_settings

    s = get_settings()
    with connect(database_url(s), autocommit=True) as conn:
        gateways = registry_gateways(conn)
    fixed = {
        user: os.environ[env]
        for user, env in (
            ("suvnet-ingest", "SUVNET_MQTT_INGEST_PASSWORD"),
            ("suvnet-api", "SUVNET_MQTT_API_PASSWORD"),
            ("suvnet-office", "SUVNET_MQTT_OFFICE_PASSWORD"),
        )
        if os.environ.get(env)
    }
    res = write_files(out, gateways, root=root or s.topic_root, fixed=fixed)
    console.print(
        f"wrote {res.acl}, {res.passwd} (3 office services) and {res.gateway_passwd} "
        f"({len(gateways)} gateway(s))"
    )
    if res.created:
        console.print(
            f"[yellow]{len(res.created)} new user(s): their passwords are in {res.credentials}"
            " (give them to the gateways, then delete the file)[/yellow]"
        )
    if res.removed:
        console.print(f"removed users: {', '.join(res.removed)}")
    console.print(
        "Reload the broker to apply: docker compose kill -s HUP mosquitto "
        "(or systemctl reload mosquitto). The broker's mosquitto.conf must use both files "
        "(see deploy/mosquitto/mosquitto.conf; check it with `suvnet mqtt check-conf`)."
    )


@mqtt_app.command("check-conf", help=_CHECK_HELP)
def check_conf_cmd(
    conf: Annotated[Path, typer.Argument(help="The mosquitto.conf to check.")],
) -> None:
    from dashboards.mqtt_acl import check_broker_conf

    try:
        text = conf.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]cannot read {conf}: {exc}[/red]")
        raise typer.Exit(1) from exc
    problems = check_broker_conf(text)
    if problems:
        for problem in problems:
            console.print(f"[red]{problem}[/red]")
        raise typer.Exit(1)
    console.print(f"{conf}: gateways and office services are kept apart; client ids are tied")

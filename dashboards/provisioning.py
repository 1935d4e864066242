"""Grafana provisioning files and the output folder of ``suvnet dashboards build``.

Layout of the output folder (``--out DIR``)::

    DIR/provisioning/datasources/suvnet.yaml   the PostgreSQL datasource (TimescaleDB flag)
    DIR/provisioning/dashboards/suvnet.yaml    a file provider reading DIR/dashboards
    DIR/dashboards/<uid>.json                  one file per dashboard, in one language
    DIR/maps/network.geojson                   pipes and zone outlines (``--network``)

Mount ``provisioning`` at ``/etc/grafana/provisioning``, ``dashboards`` at
``/var/lib/grafana/dashboards/suvnet`` and ``maps`` at ``/usr/share/grafana/public/maps/suvnet``
(deploy/docker-compose.yml does).

One build is one language (``lang``, default Uzbek Latin like the staff pages): the default
language keeps the uids and the folder ``suvnet``; another language gets its own uids
(``suvnet-zone-ru``) and folder (``suvnet-ru``), see :mod:`dashboards.i18n`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from dashboards.errors import DashboardsError
from dashboards.i18n import DEFAULT_LANG, folder_for, render, uid_for
from dashboards.model import DATASOURCE_NAME, DATASOURCE_TYPE, DATASOURCE_UID, Dashboard

FOLDER_UID, FOLDER_TITLE = folder_for(DEFAULT_LANG)
DASHBOARDS_PATH_IN_GRAFANA = "/var/lib/grafana/dashboards/suvnet"


@dataclass(frozen=True)
class DatasourceConfig:
    """How Grafana reaches PostgreSQL. The defaults are Grafana environment placeholders
    (``${VAR}``), filled in by the Grafana container's environment at start."""

    host: str = "${SUVNET_GRAFANA_DB_HOST}"
    database: str = "${SUVNET_GRAFANA_DB_NAME}"
    user: str = "${SUVNET_GRAFANA_DB_USER}"
    password: str | None = "${SUVNET_GRAFANA_DB_PASSWORD}"  # noqa: S105 - a placeholder
    sslmode: str = "disable"
    timescaledb: bool = True
    postgres_version: int = 1500

    @classmethod
    def from_url(cls, url: str, *, timescaledb: bool = True) -> DatasourceConfig:
        """From a ``postgresql://user:password@host:port/db`` URL (as Grafana sees the server)."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise DashboardsError(
                f"the datasource URL must look like postgresql://user:password@host:5432/db, "
                f"not {url!r}"
            )
        db = parts.path.lstrip("/") or "postgres"
        return cls(
            host=f"{parts.hostname}:{parts.port or 5432}",
            database=unquote(db),
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password) if parts.password else None,
            timescaledb=timescaledb,
        )

    def api_body(self) -> dict[str, Any]:
        """The datasource as Grafana's HTTP API takes it."""
        body: dict[str, Any] = {
            "name": DATASOURCE_NAME,
            "uid": DATASOURCE_UID,
            "type": DATASOURCE_TYPE,
            "access": "proxy",
            "url": self.host,
            "user": self.user,
            "database": self.database,
            "isDefault": True,
            "jsonData": {
                "database": self.database,
                "sslmode": self.sslmode,
                "postgresVersion": self.postgres_version,
                "timescaledb": self.timescaledb,
                "maxOpenConns": 10,
                "maxIdleConns": 10,
                "connMaxLifetime": 14400,
                "timeInterval": "1m",
            },
        }
        if self.password is not None:
            body["secureJsonData"] = {"password": self.password}
        return body


def datasource_provisioning(cfg: DatasourceConfig) -> dict[str, Any]:
    body = cfg.api_body()
    body.pop("database")
    body["editable"] = False
    body["version"] = 1
    return {"apiVersion": 1, "datasources": [body]}


def dashboard_provider(lang: str = DEFAULT_LANG) -> dict[str, Any]:
    folder_uid, folder_title = folder_for(lang)
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": folder_uid,
                "orgId": 1,
                "folder": folder_title,
                "folderUid": folder_uid,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {
                    "path": DASHBOARDS_PATH_IN_GRAFANA,
                    "foldersFromFilesStructure": False,
                },
            }
        ],
    }


def dump_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _write(path: Path, text: str) -> bool:
    """Write atomically; return True if the content changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


@dataclass(frozen=True)
class BuildResult:
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]


def build(
    out: Path,
    dashboards: Sequence[Dashboard],
    datasource: DatasourceConfig,
    network_geojson: dict[str, Any] | None = None,
    lang: str = DEFAULT_LANG,
) -> BuildResult:
    """Write the dashboards in ``lang`` and provisioning files into ``out`` (module doc)."""
    files: list[tuple[Path, str]] = [
        (
            out / "provisioning" / "datasources" / "suvnet.yaml",
            yaml.safe_dump(datasource_provisioning(datasource), sort_keys=False),
        ),
        (
            out / "provisioning" / "dashboards" / "suvnet.yaml",
            yaml.safe_dump(dashboard_provider(lang), sort_keys=False),
        ),
    ]
    files += [
        (out / "dashboards" / f"{uid_for(d.uid, lang)}.json", dump_json(render(d, lang)))
        for d in dashboards
    ]
    if network_geojson is not None:
        files.append((out / "maps" / "network.geojson", dump_json(network_geojson)))
    written: list[Path] = []
    unchanged: list[Path] = []
    try:
        for path, text in files:
            (written if _write(path, text) else unchanged).append(path)
    except OSError as exc:
        raise DashboardsError(f"cannot write into {out}: {exc}") from exc
    return BuildResult(tuple(written), tuple(unchanged))


def stale_dashboard_files(
    out: Path, dashboards: Iterable[Dashboard], lang: str = DEFAULT_LANG
) -> list[Path]:
    """Dashboard JSON files in ``out`` that no current dashboard produces (in ``lang``)."""
    keep = {f"{uid_for(d.uid, lang)}.json" for d in dashboards}
    folder = out / "dashboards"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if p.name not in keep)

"""Upsert the dashboards, their folder and the datasource into a running Grafana.

Idempotent: everything is addressed by a fixed uid (datasource ``suvnet-pg``, folder
``suvnet``, dashboards ``suvnet-*``), so pushing again updates in place and never duplicates.
A dashboard whose content is already the same in Grafana is not written again (its version
does not grow). A datasource provisioned from a file is read-only in Grafana and is left as
it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards.errors import PushError
from dashboards.i18n import DEFAULT_LANG, folder_for, render
from dashboards.model import Dashboard
from dashboards.provisioning import FOLDER_TITLE, FOLDER_UID, DatasourceConfig

log = logging.getLogger(__name__)

_VOLATILE = ("id", "version")


@dataclass
class PushReport:
    """What a push did, for the command's summary."""

    datasource: str = ""
    folder: str = ""
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def connect(url: str, token: str | None, timeout: float = 10.0) -> GrafanaApi:
    """A grafana-client API object for ``url`` (a service-account token, or user:pass in URL)."""
    try:
        api: GrafanaApi = GrafanaApi.from_url(url, credential=token, timeout=timeout)
        return api
    except (ValueError, TypeError) as exc:
        raise PushError(f"bad Grafana URL {url!r}: {exc}") from exc


def _status(exc: GrafanaException) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


def _refused(what: str, exc: GrafanaException) -> PushError:
    hint = ""
    if _status(exc) in (401, 403):
        hint = (
            " (check SUVNET_GRAFANA_TOKEN: a service-account token with the Editor role "
            "on dashboards and Admin on datasources)"
        )
    return PushError(f"Grafana refused to {what}: {exc}{hint}")


def _call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except GrafanaException as exc:
        raise _refused(what, exc) from exc
    except Exception as exc:  # connection errors of the HTTP library
        raise PushError(f"cannot reach Grafana to {what}: {exc}") from exc


def _get_or_none(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Like :func:`_call`, but a 404 (not there yet) gives ``None``."""
    try:
        return fn(*args)
    except GrafanaClientError as exc:
        if _status(exc) == 404:
            return None
        raise _refused(what, exc) from exc
    except GrafanaException as exc:
        raise _refused(what, exc) from exc
    except Exception as exc:  # connection errors of the HTTP library
        raise PushError(f"cannot reach Grafana to {what}: {exc}") from exc


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in _VOLATILE}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _strip(a) == _strip(b)


def upsert_datasource(api: GrafanaApi, cfg: DatasourceConfig) -> str:
    body = cfg.api_body()
    uid = body["uid"]
    current = _get_or_none("read the datasource", api.datasource.get_datasource_by_uid, uid)
    if current is None:
        _call("create the datasource", api.datasource.create_datasource, body)
        log.info("datasource created", extra={"uid": uid})
        return "created"
    if current.get("readOnly"):
        log.info("datasource is provisioned from a file: left as it is", extra={"uid": uid})
        return "provisioned (left as it is)"
    _call("update the datasource", api.datasource.update_datasource_by_uid, uid, body)
    return "updated"


def ensure_folder(api: GrafanaApi, uid: str = FOLDER_UID, title: str = FOLDER_TITLE) -> str:
    if _get_or_none("read the folder", api.folder.get_folder, uid) is not None:
        return "exists"
    _call("create the folder", api.folder.create_folder, title, uid)
    log.info("folder created", extra={"uid": uid})
    return "created"


def upsert_dashboard(api: GrafanaApi, dashboard: dict[str, Any], folder_uid: str) -> str:
    uid = dashboard["uid"]
    current = _get_or_none("read a dashboard", api.dashboard.get_dashboard, uid)
    if current is not None:
        meta = current.get("meta", {})
        if meta.get("folderUid") == folder_uid and _same(current.get("dashboard", {}), dashboard):
            return "unchanged"
    body = {
        "dashboard": {**dashboard, "id": None},
        "folderUid": folder_uid,
        "overwrite": True,
        "message": "suvnet dashboards push",
    }
    _call(f"save dashboard {uid}", api.dashboard.update_dashboard, body)
    return "created" if current is None else "updated"


def push(
    api: GrafanaApi,
    dashboards: Sequence[Dashboard],
    datasource: DatasourceConfig | None,
    *,
    folder_uid: str | None = None,
    folder_title: str | None = None,
    progress: Callable[[str], None] | None = None,
    lang: str = DEFAULT_LANG,
) -> PushReport:
    """Upsert the datasource (unless ``None``), the folder and every dashboard, in ``lang``.

    The folder is the language's (``suvnet`` for the default language, ``suvnet-ru`` ...)
    unless given; so is each dashboard's uid (:func:`dashboards.i18n.uid_for`)."""
    default_uid, default_title = folder_for(lang)
    folder_uid = folder_uid or default_uid
    folder_title = folder_title or default_title
    report = PushReport()
    if datasource is not None:
        report.datasource = upsert_datasource(api, datasource)
    report.folder = ensure_folder(api, folder_uid, folder_title)
    for d in dashboards:
        doc = render(d, lang)
        outcome = upsert_dashboard(api, doc, folder_uid)
        getattr(report, outcome).append(doc["uid"])
        if progress is not None:
            progress(doc["uid"])
    return report

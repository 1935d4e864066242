"""``suvnet dashboards push`` through grafana-client against a server that answers like Grafana."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from dashboards.boards import all_dashboards
from dashboards.errors import PushError
from dashboards.provisioning import DatasourceConfig
from dashboards.push import connect, push
from tests.dashboards.fake_grafana import FakeGrafana

TOKEN = "glsa_test_token"
DS = DatasourceConfig.from_url("postgresql://grafana:s3cret@db:5432/suvnet", timescaledb=False)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana(TOKEN) as g:
        yield g


def test_first_push_creates_folder_datasource_and_dashboards(grafana: FakeGrafana) -> None:
    boards = all_dashboards()
    report = push(connect(grafana.url, TOKEN), boards, DS)
    st = grafana.state
    assert report.datasource == "created"
    assert report.folder == "created"
    assert sorted(report.created) == sorted(d.uid for d in boards)
    assert list(st.folders) == ["suvnet"]
    ds = st.datasources["suvnet-pg"]
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["url"] == "db:5432"
    assert ds["user"] == "grafana"
    assert ds["secureJsonData"] == {"password": "s3cret"}
    assert ds["jsonData"]["timescaledb"] is False
    assert ds["jsonData"]["database"] == "suvnet"
    assert set(st.dashboards) == {d.uid for d in boards}
    for d in st.dashboards.values():
        assert d["meta"]["folderUid"] == "suvnet"
        assert d["dashboard"]["version"] == 1
    # the folder exists before the first dashboard is saved into it
    writes = st.writes()
    assert writes.index(("POST", "/api/folders")) < writes.index(("POST", "/api/dashboards/db"))
    assert all(r.auth == f"Bearer {TOKEN}" for r in st.requests)


def test_second_push_updates_in_place_and_never_duplicates(grafana: FakeGrafana) -> None:
    boards = all_dashboards()
    api = connect(grafana.url, TOKEN)
    push(api, boards, DS)
    st = grafana.state
    ids = {uid: d["dashboard"]["id"] for uid, d in st.dashboards.items()}
    st.requests.clear()

    again = push(api, boards, DS)
    assert again.datasource == "updated"
    assert again.folder == "exists"
    assert sorted(again.unchanged) == sorted(d.uid for d in boards)
    assert again.created == again.updated == []
    assert ("POST", "/api/folders") not in st.writes()
    assert ("POST", "/api/datasources") not in st.writes()
    assert ("POST", "/api/dashboards/db") not in st.writes()
    assert len(st.datasources) == 1 and len(st.folders) == 1 and len(st.dashboards) == len(boards)

    # a changed dashboard is saved again under the same uid and id, with a new version
    changed = [dataclasses.replace(boards[0], title=boards[0].title + " (new)"), *boards[1:]]
    third = push(api, changed, DS)
    assert third.updated == [boards[0].uid]
    stored = st.dashboards[boards[0].uid]["dashboard"]
    assert stored["title"].endswith("(new)")
    assert stored["version"] == 2
    assert stored["id"] == ids[boards[0].uid]
    assert len(st.dashboards) == len(boards)


def test_provisioned_datasource_is_left_alone(grafana: FakeGrafana) -> None:
    grafana.state.datasources["suvnet-pg"] = {
        "uid": "suvnet-pg",
        "name": "suvnet PostgreSQL",
        "id": 7,
        "readOnly": True,
        "version": 1,
    }
    report = push(connect(grafana.url, TOKEN), all_dashboards()[:1], DS)
    assert report.datasource == "provisioned (left as it is)"
    assert ("PUT", "/api/datasources/uid/suvnet-pg") not in grafana.state.writes()


def test_push_without_datasource(grafana: FakeGrafana) -> None:
    report = push(connect(grafana.url, TOKEN), all_dashboards(), None)
    assert report.datasource == ""
    assert grafana.state.datasources == {}
    assert len(grafana.state.dashboards) == len(all_dashboards())


def test_wrong_token_is_a_clear_error(grafana: FakeGrafana) -> None:
    with pytest.raises(PushError, match="SUVNET_GRAFANA_TOKEN"):
        push(connect(grafana.url, "wrong"), all_dashboards(), DS)
    assert grafana.state.dashboards == {}


def test_server_error_is_reported(grafana: FakeGrafana) -> None:
    grafana.state.fail_with = 500
    with pytest.raises(PushError, match="Grafana refused"):
        push(connect(grafana.url, TOKEN), all_dashboards(), DS)


def test_unreachable_grafana() -> None:
    with FakeGrafana(TOKEN) as g:
        url = g.url
    with pytest.raises(PushError, match="cannot reach Grafana"):
        push(connect(url, TOKEN, timeout=2), all_dashboards(), DS)


def test_bad_datasource_url() -> None:
    from dashboards.errors import DashboardsError

    with pytest.raises(DashboardsError, match="postgresql://"):
        DatasourceConfig.from_url("mysql://x@y/z")

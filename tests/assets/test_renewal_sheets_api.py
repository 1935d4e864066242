"""The renewal ranking (JSON and XLSX) and the route-map sheets (PDF) through the JSON API, on
the demo village (tests/assets/village.py) against real PostgreSQL.

The workbook is opened with openpyxl and its XML read: a material typed as a formula stays
text. The sheets are read back with pdftotext and checked as a person would look at them
(tests/pdf_layout.py: no word over another, none in the margins); refusals are 4xx in the
reader's language."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from api.app import create_app
from api.i18n import gettext_for
from api.routes.assets import SHEET_ERRORS
from api.security import Role
from assets import isolation_queries
from billing.config import get_billing_config
from tests.api.conftest import Clock, User, api_settings, bearer, insert_user
from tests.assets.conftest import NOW
from tests.assets.village import build_village
from tests.pdf_layout import layout_problems
from tests.pdf_safety import active_content, pdf_text, squash

Village = tuple[str, dict[str, str], dict[Role, User]]
HOSTILE_MATERIAL = '=HYPERLINK("http://evil.example/x","PE")'


@pytest.fixture(scope="module")
def village(db_url: str) -> Village:
    numbers = build_village(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        users = {r: insert_user(conn, f"rs_{r.value}", r) for r in (Role.VIEWER, Role.ADMIN)}
        # a material typed as a formula (a spreadsheet import): must stay text in the workbook
        conn.execute("UPDATE assets SET material = %s WHERE code = 'P-122'", (HOSTILE_MATERIAL,))
    return db_url, numbers, users


@pytest.fixture
async def client(
    village: Village, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("SUVNET_BILLING_UTILITY_NAME", "Yangiobod suv ta'minoti")
    get_billing_config.cache_clear()
    isolation_queries.forget_graphs()
    app = create_app(api_settings(village[0]), clock=Clock(NOW))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.headers.update(bearer(village[2][Role.VIEWER], Clock(NOW)))
            yield c
    get_billing_config.cache_clear()


# ---------------------------------------------------------------------- renewal ranking
async def test_the_ranking_lists_pipes_with_scores_and_reasons(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/assets/renewal", params={"limit": 1000})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["today"] == "2026-06-01" and data["failures"] > 0
    pipes = data["pipes"]
    assert pipes and len(pipes) == data["total"]
    assert [p["rank"] for p in pipes] == list(range(1, len(pipes) + 1))
    scores = [p["score"] for p in pipes]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    top = pipes[0]
    assert top["accounts"] > 0 and top["likelihood_per_year"] > 0
    codes = {x["code"] for x in top["reasons"]}
    assert "cut_off" in codes or "no_isolation" in codes
    # the pipes with repairs say so; the rates come per material, diameter and age class
    assert any(x["code"] == "repairs" for p in pipes for x in p["reasons"])
    assert data["rates"] and all(x["rate_per_km_year"] >= 0 for x in data["rates"])
    assert sum(x["failures"] for x in data["rates"]) == data["failures"]
    r = await client.get("/api/v1/assets/renewal", params={"limit": 3})
    assert [p["code"] for p in r.json()["pipes"]] == [p["code"] for p in pipes[:3]]
    r = await client.get("/api/v1/assets/renewal", headers={"Authorization": ""})
    assert r.status_code == 401


@pytest.mark.parametrize("lang", ["ru", "uz_Cyrl"])
async def test_the_workbook_opens_in_the_language_and_keeps_formulas_as_text(
    client: httpx.AsyncClient, lang: str
) -> None:
    r = await client.get("/api/v1/assets/renewal.xlsx", params={"lang": lang})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "renewal-2026-06-01.xlsx" in r.headers["content-disposition"]
    tr = gettext_for(lang)
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == [tr.gettext("Renewal ranking"), tr.gettext("Failure rates")]
    ws = wb.worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == "Yangiobod suv ta'minoti"
    assert rows[2][:2] == (tr.gettext("Rank"), tr.gettext("Pipe"))
    body = rows[3:]
    json_pipes = (await client.get("/api/v1/assets/renewal", params={"limit": 1000})).json()
    assert [row[1] for row in body] == [p["code"] for p in json_pipes["pipes"]]
    assert all(isinstance(row[0], int) and isinstance(row[11], float | int) for row in body)
    # the material that looks like a formula is a text cell, with Excel's quote prefix
    hostile = [
        ws.cell(row=i, column=4)
        for i in range(4, ws.max_row + 1)
        if ws.cell(row=i, column=2).value == "P-122"
    ]
    assert hostile and hostile[0].value == HOSTILE_MATERIAL
    assert hostile[0].data_type == "s" and hostile[0].quotePrefix
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in z.read(name) and b"<f " not in z.read(name), name
    # the reasons are written out in the language, with no English left in them
    reasons = " ".join(str(row[12]) for row in body)
    assert reasons.strip() and "repairs" not in reasons and "subscribers" not in reasons
    rates = list(wb.worksheets[1].iter_rows(values_only=True))
    assert rates[0][-1] == tr.gettext("Observed") and len(rates) > 1


# ---------------------------------------------------------------------- route-map sheets
async def street_id(village: Village, name: str) -> int:
    with psycopg.connect(village[0]) as conn:
        row = conn.execute("SELECT id FROM streets WHERE name_uz = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def read_back(pdf: bytes, tmp_path: Path, name: str) -> str:
    """The PDF's text (squashed), after checking it lays out cleanly and has no active
    content; the pages are also written as PNGs in ``tmp_path``."""
    assert pdf.startswith(b"%PDF-")
    assert active_content(pdf) == []
    assert layout_problems(pdf, tmp_path, margin_pt=20, name=name) == []
    return squash(pdf_text(tmp_path / f"{name}.pdf"))


async def test_the_streets_a_sheet_can_be_made_of(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/assets/sheets/streets")
    assert r.status_code == 200, r.text
    names = {x["name_uz"] for x in r.json()["items"]}
    assert {"Mustaqillik ko'chasi", "Bog'bon ko'chasi"} <= names
    assert all(x["pipes"] >= 1 for x in r.json()["items"])


@pytest.mark.parametrize(("paper", "lang"), [("A4", "uz"), ("A3", "ru")])
async def test_a_street_sheet(
    client: httpx.AsyncClient, village: Village, tmp_path: Path, paper: str, lang: str
) -> None:
    sid = await street_id(village, "Mustaqillik ko'chasi")
    r = await client.get(
        "/api/v1/assets/sheets.pdf", params={"street": sid, "paper": paper, "lang": lang}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.headers["x-sheets"] == "1"
    text = read_back(r.content, tmp_path, f"street-{paper}")
    tr = gettext_for(lang)
    street = "Mustaqillik ko'chasi" if lang == "uz" else "Мустакиллик"
    for must in (
        "Yangiobod suv ta'minoti",
        tr.gettext("Legend"),
        tr.gettext("Sheet index"),
        "01.06.2026",
        tr.gettext("Sheet %(n)s of %(of)s") % {"n": 1, "of": 1},
    ):
        assert squash(must) in text, must
    assert squash(street) in text or "Mustaqillik" in text
    assert "DN" in text and "P-" in text and "V-" in text  # pipes and their valves


async def test_a_zone_and_a_route(client: httpx.AsyncClient, tmp_path: Path) -> None:
    r = await client.get("/api/v1/assets/sheets.pdf", params={"zone": "DMA-S", "paper": "A3"})
    assert r.status_code == 200, r.text
    text = read_back(r.content, tmp_path, "zone")
    assert "DMA-S" in text and "P-122" in text
    # the shortest way along the network between two valves, and a list of pipes
    r = await client.get(
        "/api/v1/assets/sheets.pdf",
        params={"from": "V-122a", "to": "V-123b", "paper": "A4", "lang": "en"},
    )
    assert r.status_code == 200, r.text
    text = read_back(r.content, tmp_path, "route")
    assert squash("Route: V-122a – V-123b") in text and "P-122" in text
    r = await client.get(
        "/api/v1/assets/sheets.pdf",
        params={"route": "P-122,P-123", "paper": "A4", "scale": 500, "lang": "en"},
    )
    assert r.status_code == 200, r.text
    text = read_back(r.content, tmp_path, "route-list")
    assert "Scale1:500" in text and "P-123" in text


@pytest.mark.parametrize("lang", ["uz", "uz_Cyrl", "ru"])
async def test_bad_requests_are_refused_in_the_readers_language(
    client: httpx.AsyncClient, village: Village, lang: str
) -> None:
    tr = gettext_for(lang)
    sid = await street_id(village, "Mustaqillik ko'chasi")
    scales: dict[str, object] = {"scales": "1:200, 1:500, 1:1000, 1:2000, 1:5000, 1:10000, 1:25000"}
    cases: list[tuple[dict[str, str | int], int, str, dict[str, object]]] = [
        ({}, 422, "no_target", {}),
        ({"street": sid, "zone": "DMA-N"}, 422, "no_target", {}),
        ({"street": sid, "paper": "A5"}, 422, "paper", {}),
        ({"street": sid, "scale": 750}, 422, "scale", scales),
        ({"street": 987654}, 404, "no_street", {"id": 987654}),
        ({"zone": "DMA-X"}, 404, "no_zone", {"zone": "DMA-X"}),
        ({"route": "P-1,<script>"}, 422, "codes", {}),
        ({"from": "V-122a"}, 422, "no_end", {}),
        ({"route": "P-NONE"}, 422, "nothing_to_draw", {}),
        ({"zone": "DMA-N", "paper": "A4", "scale": 200}, 422, "sheet", {}),
    ]
    for params, status, code, values in cases:
        r = await client.get("/api/v1/assets/sheets.pdf", params={**params, "lang": lang})
        assert r.status_code == status, (params, r.text)
        body = r.json()
        assert body["error"] == code, (params, body)
        assert body["detail"] == tr.gettext(SHEET_ERRORS[code]) % values, body
        assert body["detail"] != gettext_for("en").gettext(SHEET_ERRORS[code]) % values
    # the language also comes from the pages' cookie
    client.cookies.set("suvnet_lang", lang)
    r = await client.get("/api/v1/assets/sheets.pdf", params={"paper": "A5"})
    client.cookies.clear()
    assert r.json()["detail"] == tr.gettext(SHEET_ERRORS["no_target"])

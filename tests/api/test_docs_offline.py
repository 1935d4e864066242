"""The API docs page works without internet: Swagger UI is served from local files."""

from __future__ import annotations

import httpx


async def test_swagger_ui_is_served_locally(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/docs")
    assert page.status_code == 200
    assert "/api/docs-static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    js = await client.get("/api/docs-static/swagger-ui-bundle.js")
    assert js.status_code == 200
    assert "SwaggerUIBundle" in js.text
    spec = await client.get("/api/openapi.json")
    assert spec.json()["info"]["title"] == "suvnet API"

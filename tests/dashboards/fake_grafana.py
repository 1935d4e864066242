"""A small HTTP server that answers like Grafana's HTTP API and records every request.

It implements the endpoints ``suvnet dashboards push`` uses, with Grafana's rules: a bearer
token is required, folders and datasources have unique uids (409 on a duplicate), a dashboard
save without ``overwrite`` on an existing uid is refused (412), a save into a missing folder
is refused (400), and every save of a dashboard raises its version.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    auth: str | None


@dataclass
class GrafanaState:
    token: str
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    fail_with: int | None = None
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def writes(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if r.method != "GET"]


class _Handler(BaseHTTPRequestHandler):
    state: GrafanaState

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        st = self.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = json.loads(raw) if raw else {}
        auth = self.headers.get("Authorization")
        st.requests.append(Recorded(method, self.path, body, auth))
        if auth != f"Bearer {st.token}":
            return self._reply(401, {"message": "Unauthorized"})
        if st.fail_with:
            return self._reply(st.fail_with, {"message": "Internal Server Error"})
        parts = self.path.split("?")[0].strip("/").split("/")
        match method, parts:
            case "GET", ["api", "datasources", "uid", uid]:
                ds = st.datasources.get(uid)
                return (
                    self._reply(200, ds)
                    if ds
                    else self._reply(404, {"message": "Data source not found"})
                )
            case "POST", ["api", "datasources"]:
                if body["uid"] in st.datasources or any(
                    d["name"] == body["name"] for d in st.datasources.values()
                ):
                    return self._reply(
                        409, {"message": "data source with the same name already exists"}
                    )
                ds = {**body, "id": st.new_id(), "readOnly": False, "version": 1}
                st.datasources[body["uid"]] = ds
                return self._reply(
                    200, {"datasource": ds, "id": ds["id"], "message": "Datasource added"}
                )
            case "PUT", ["api", "datasources", "uid", uid]:
                old = st.datasources.get(uid)
                if old is None:
                    return self._reply(404, {"message": "Data source not found"})
                if old.get("readOnly"):
                    return self._reply(403, {"message": "Cannot update read-only data source"})
                ds = {**body, "id": old["id"], "readOnly": False, "version": old["version"] + 1}
                st.datasources[uid] = ds
                return self._reply(200, {"datasource": ds, "message": "Datasource updated"})
            case "GET", ["api", "folders", uid]:
                f = st.folders.get(uid)
                return (
                    self._reply(200, f) if f else self._reply(404, {"message": "folder not found"})
                )
            case "POST", ["api", "folders"]:
                uid = body.get("uid")
                if uid in st.folders:
                    return self._reply(
                        409, {"message": "a folder with the same uid already exists"}
                    )
                f = {"id": st.new_id(), "uid": uid, "title": body["title"], "version": 1}
                st.folders[uid] = f
                return self._reply(200, f)
            case "GET", ["api", "dashboards", "uid", uid]:
                d = st.dashboards.get(uid)
                if d is None:
                    return self._reply(404, {"message": "Dashboard not found"})
                return self._reply(200, d)
            case "POST", ["api", "dashboards", "db"]:
                dash = body["dashboard"]
                uid = dash["uid"]
                folder = body.get("folderUid")
                if folder and folder not in st.folders:
                    return self._reply(400, {"message": "folder not found"})
                old = st.dashboards.get(uid)
                if old is not None and not body.get("overwrite"):
                    return self._reply(
                        412,
                        {
                            "message": "The dashboard has been changed by someone else",
                            "status": "version-mismatch",
                        },
                    )
                for other_uid, other in st.dashboards.items():
                    if (
                        other_uid != uid
                        and other["dashboard"]["title"] == dash["title"]
                        and other["meta"]["folderUid"] == folder
                    ):
                        return self._reply(
                            400,
                            {
                                "message": "A dashboard with the same name in the folder "
                                "already exists"
                            },
                        )
                version = 1 if old is None else old["dashboard"]["version"] + 1
                ident = st.new_id() if old is None else old["dashboard"]["id"]
                stored = {**dash, "id": ident, "version": version}
                st.dashboards[uid] = {
                    "dashboard": stored,
                    "meta": {"folderUid": folder, "version": version},
                }
                return self._reply(
                    200,
                    {
                        "id": ident,
                        "uid": uid,
                        "status": "success",
                        "version": version,
                        "url": f"/d/{uid}",
                    },
                )
        return self._reply(404, {"message": "Not found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


class FakeGrafana:
    """``with FakeGrafana(token) as g: g.url``; ``g.state`` holds what it stored and saw."""

    def __init__(self, token: str) -> None:
        self.state = GrafanaState(token)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-grafana", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeGrafana:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

"""Helpers shared by the benchmarks: where the PostgreSQL server is, free ports, the API
server under test, percentiles."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]


def server_url() -> str:
    """A PostgreSQL URL on which the benchmark may create and drop databases."""
    return os.environ.get(
        "SUVNET_BENCH_DATABASE_URL",
        os.environ.get("SUVNET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )


def with_db(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def p99(values: Sequence[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(0.99 * (len(s) - 1)))] if s else float("nan")


def start_api_server(
    db_url: str, port: int, env: Mapping[str, str], uvicorn_args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """One uvicorn worker serving the suvnet API on ``port``; returns once /health answers."""
    import httpx

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.cli:_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *uvicorn_args,
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "SUVNET_DATABASE_URL": db_url, "SUVNET_LOG_LEVEL": "WARNING", **env},
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("uvicorn exited before it answered")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("uvicorn did not answer within 60 s")

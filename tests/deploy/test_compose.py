"""deploy/docker-compose.yml as docker-compose reads it (no container engine needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (Debian package docker-compose)"
)
SUVNET_SERVICES = {"migrate", "api", "ingest", "alarms", "scheduler"}


def compose_config(env_file: Path | None) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    args = [COMPOSE, "--project-directory", str(DEPLOY), "-f", str(DEPLOY / "docker-compose.yml")]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [*args, "config"], check=False, capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = tmp_path_factory.mktemp("compose") / "env"
    shutil.copy(DEPLOY / "env.example", env)
    res = compose_config(env)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = yaml.safe_load(res.stdout)
    return doc


def test_the_whole_stack_is_there(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {"timescaledb", "mosquitto", "grafana"} | SUVNET_SERVICES <= set(services)
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    for name, svc in services.items():
        if name != "migrate":
            assert "healthcheck" in svc, f"{name} has no health check"
            assert svc["restart"] == "unless-stopped", name


def test_suvnet_services_wait_for_the_migrations(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in SUVNET_SERVICES - {"migrate"}:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        env = services[name]["environment"]
        assert env["SUVNET_DATABASE_URL"].startswith("postgresql://suvnet:change-me@timescaledb")
        assert env["SUVNET_MODE"] == "production"
    assert services["migrate"]["command"] == ["db", "migrate"]
    assert services["ingest"]["environment"]["SUVNET_MQTT_URL"].startswith("mqtt://suvnet-ingest:")


def test_broker_has_persistence_password_file_and_acl(config: dict[str, Any]) -> None:
    mosq = config["services"]["mosquitto"]
    targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in mosq["volumes"]}
    assert {
        "/mosquitto/config/mosquitto.conf",
        "/mosquitto/config/auth",
        "/mosquitto/data",
    } <= targets
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "persistence true" in conf
    assert "allow_anonymous false" in conf
    assert "password_file /mosquitto/config/auth/passwd" in conf
    assert "acl_file /mosquitto/config/auth/acl" in conf


def test_bind_mounted_files_exist(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        for v in svc.get("volumes", []):
            src = v["source"] if isinstance(v, dict) else v.split(":")[0]
            kind = v.get("type") if isinstance(v, dict) else ("bind" if "/" in src else "volume")
            if kind == "bind":
                assert Path(src).exists(), f"{name}: {src} does not exist"


def test_grafana_gets_the_provisioning(config: dict[str, Any]) -> None:
    graf = config["services"]["grafana"]
    env = graf["environment"]
    for var in ("SUVNET_GRAFANA_DB_HOST", "SUVNET_GRAFANA_DB_NAME", "SUVNET_GRAFANA_DB_USER"):
        assert env[var]
    prov = (DEPLOY / "grafana" / "provisioning" / "datasources" / "suvnet.yaml").read_text()
    for var in ("SUVNET_GRAFANA_DB_HOST", "SUVNET_GRAFANA_DB_USER", "SUVNET_GRAFANA_DB_PASSWORD"):
        assert "${" + var + "}" in prov


def test_missing_secret_is_refused_with_its_name(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text(
        "\n".join(
            line
            for line in (DEPLOY / "env.example").read_text().splitlines()
            if not line.startswith("POSTGRES_PASSWORD=")
        )
    )
    res = compose_config(env)
    assert res.returncode != 0
    assert "set POSTGRES_PASSWORD in deploy/.env" in res.stderr

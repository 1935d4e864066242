"""The MQTT link over TLS with a user name and password, against a Mosquitto of our own."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.profiles import Profile
from suvnet.protocol import Topics, decode_state
from tests.edge_agent.conftest import free_port, wait_for, write_gateway
from tests.edge_agent.test_agent_mqtt import running, tcp_buses, tcp_sim

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None,
    reason="needs openssl and mosquitto_passwd",
)


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    d = tmp_path / "pki"
    d.mkdir()
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
         "-out", "ca.crt", "-days", "2", "-subj", "/CN=suvnet-test-ca", cwd=d)  # fmt: skip
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
         "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
         cwd=d)  # fmt: skip
    _run("mosquitto_passwd", "-b", "-c", "passwd", "gw-tls", "s3cret-pass", cwd=d)
    port = free_port()
    conf = d / "mosquitto.conf"
    # "user root": a broker started as root keeps the rights to read these test files
    conf.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {d}/passwd\n"
        f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"mosquitto with TLS did not start: {err}")
            time.sleep(0.05)
    yield port, d
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()


async def test_tls_and_password(
    tmp_path: Path, profiles: dict[str, Profile], tls_broker: tuple[int, Path], topic_root: str
) -> None:
    port, pki = tls_broker
    (tmp_path / "pw").write_text("s3cret-pass\n")
    server, sim_port = await tcp_sim(profiles)
    mqtt = {
        "url": f"mqtts://127.0.0.1:{port}",
        "username": "gw-tls",
        "password_file": str(tmp_path / "pw"),
        "ca_file": str(pki / "ca.crt"),
        "topic_root": topic_root,
        "reconnect_max_s": 1,
    }
    cfg = write_gateway(
        tmp_path, "gw-tls", "mqtt://unused:1", topic_root, tcp_buses(sim_port), mqtt=mqtt
    )
    try:
        async with running(Agent(load_config(cfg))) as agent:
            await wait_for(lambda: agent.connected, 10, "a TLS connection")
            async with aiomqtt.Client(
                "127.0.0.1", port, username="gw-tls", password="s3cret-pass",
                tls_params=aiomqtt.TLSParameters(ca_certs=str(pki / "ca.crt")),
            ) as client:  # fmt: skip
                await client.subscribe(Topics(root=topic_root).state("gw-tls"), qos=1)
                async with asyncio.timeout(5):
                    msg = await anext(aiter(client.messages))
                assert decode_state(bytes(msg.payload)).state == "online"
        # a wrong password: the link stays down, polling goes on into the outbox
        (tmp_path / "pw").write_text("wrong\n")
        async with running(Agent(load_config(cfg))) as agent:
            depth = agent.outbox.depth
            await wait_for(lambda: agent.outbox.depth > depth + 20, 10, "readings queued")
            assert not agent.connected
    finally:
        await server.stop()

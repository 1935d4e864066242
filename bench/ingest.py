"""Ingest benchmark: publishers -> Mosquitto -> `suvnet ingest run` -> committed rows.

Figures (all in one run, on one machine shared by broker, database, ingest and publishers):

* readings_per_s: end-to-end readings/s with 100 readings per message: from the first publish
  to the end-to-end ack of the last batch (the ack is published only after the commit);
* readings_per_s_1000: the same with 1,000 readings per message;
* copy_baseline_rows_per_s: a bare binary COPY (psycopg, set_types) of the same rows into the
  same, emptied readings table, in this process;
* ratio: readings_per_s / copy_baseline_rows_per_s;
* p50_latency_s / p99_latency_s: publish -> commit (ack received) per batch, at a fixed
  moderate rate of 20,000 readings/s (200 messages of 100 readings per second).

The gateways are emulated by QoS 1 PUBLISH packets prepared ahead and written to one socket
(RawPublisher): they are remote machines in real life, and a Python MQTT client here would
take about 0.15 CPU-s per 1,500 messages from the 2 cores under test. The acks are received
with paho.

The broker is a private Mosquitto started for the run (unlimited queue, no persistence), so
the shared one is left alone; give --mqtt-url to use another. The database is a fresh one on
the PostgreSQL server of SUVNET_TEST_DATABASE_URL or 127.0.0.1:5432, dropped at the end.

A run has 5 rounds; a round measures 100 and 1,000 readings per message and then the bare COPY,
a few seconds apart. The speed of this shared machine drifts from round to round (the bare
COPY alone has been seen between 230,000 and 440,000 rows/s within one run), so the JSON
figures are the MEDIANS over the rounds (and the ratio is the median 100-per-message rate over
the median COPY rate); the best of the rounds and each round's own ratio are printed too.
Each throughput line also shows the ingest worker's CPU time, its commits, and the CPU time of
the publishers and of the broker in that round.

Usage: python bench/ingest.py [--quick] [--readings N] [--rounds R] [--latency-s S] [--workers W]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, with_db  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402
from suvnet.protocol import (  # noqa: E402
    Reading,
    TelemetryBatch,
    Topics,
    decode_ack,
    encode_telemetry,
)

GATEWAYS = 4
DEVICES_PER_GW = 25
POINTS_PER_DEVICE = 4


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    return proc, f"mqtt://127.0.0.1:{port}"


def make_db(server: str) -> tuple[str, str, list[tuple[str, str, str, int]]]:
    name = f"suvnet_bench_ingest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_db(server, name)
    points: list[tuple[str, str, str, int]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        for g in range(GATEWAYS):
            gid = conn.execute(
                "INSERT INTO gateways (code) VALUES (%s) RETURNING id", (f"bgw{g}",)
            ).fetchone()
            assert gid is not None
            for d in range(DEVICES_PER_GW):
                code = f"bgw{g}-dev{d}"
                did = conn.execute(
                    "INSERT INTO devices (code, gateway_id, kind, profile) "
                    "VALUES (%s, %s, 'pressure_sensor', 'bench') RETURNING id",
                    (code, gid[0]),
                ).fetchone()
                assert did is not None
                for p in range(POINTS_PER_DEVICE):
                    pid = conn.execute(
                        "INSERT INTO points (device_id, name, poll_period_s) "
                        "VALUES (%s, %s, 1) RETURNING id",
                        (did[0], f"p{p}"),
                    ).fetchone()
                    assert pid is not None
                    points.append((f"bgw{g}", code, f"p{p}", int(pid[0])))
    return name, url, points


def make_batches(
    points: list[tuple[str, str, str, int]], total: int, per_msg: int, boot: str, t0: int
) -> tuple[list[tuple[str, int, bytes]], list[tuple[int, int, float, int]]]:
    """(gateway, seq, payload) messages and the same rows as (ts_ms, point_id, value, quality)."""
    by_gw: dict[str, list[tuple[str, str, int]]] = {}
    for gw, dev, pt, pid in points:
        by_gw.setdefault(gw, []).append((dev, pt, pid))
    msgs: list[tuple[str, int, bytes]] = []
    rows: list[tuple[int, int, float, int]] = []
    per_gw = total // len(by_gw)
    for gw, pts in by_gw.items():
        for seq, start in enumerate(range(0, per_gw, per_msg)):
            readings = []
            for i in range(start, min(start + per_msg, per_gw)):
                dev, pt, pid = pts[i % len(pts)]
                ts = t0 + i // len(pts)
                value = round(3.0 + (i % 97) * 0.01, 3)
                readings.append(Reading(dev, pt, ts, value))
                rows.append((ts, pid, value, 0))
            payload = encode_telemetry(TelemetryBatch(gw, boot, seq, 0, tuple(readings)))
            msgs.append((gw, seq, payload))
    return msgs, rows


class Acks:
    def __init__(self, mqtt_url: str, topics: Topics) -> None:
        p = urlsplit(mqtt_url)
        self.got: dict[tuple[str, str, int], float] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-acks-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.c.on_message = self._on
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_connect = lambda c, *a: c.subscribe(f"{topics.root}/v1/+/ack", qos=1)
        self.c.connect(p.hostname or "127.0.0.1", p.port or 1883)
        self.c.loop_start()
        self.ready.wait(10)

    def _on(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        gw = msg.topic.split("/")[-2]
        ack = decode_ack(bytes(msg.payload))
        with self.lock:
            for lo, hi in ack.ranges:
                for s in range(lo, hi + 1):
                    self.got.setdefault((gw, ack.boot, s), now)

    def count(self, boot: str) -> int:
        with self.lock:
            return sum(1 for k in self.got if k[1] == boot)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


class RawPublisher:
    """The gateways: QoS 1 PUBLISH packets (MQTT 3.1.1) encoded ahead and written to one
    socket, the broker's PUBACKs read and counted by a thread.

    The gateways are remote machines in real life; here they share the 2 cores with the broker,
    the database and ingest. A Python MQTT client spends about 100 microseconds of CPU per
    message, which would be taken from the system under test; writing prepared packets costs
    next to nothing. What reaches the broker is the same (QoS 1, the same topics and payloads).
    """

    def __init__(self, mqtt_url: str) -> None:
        p = urlsplit(mqtt_url)
        self.sock = socket.create_connection((p.hostname or "127.0.0.1", p.port or 1883))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = f"bench-pub-{uuid.uuid4().hex[:6]}".encode()
        # CONNECT: protocol MQTT level 4, clean session, no keepalive
        body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(cid).to_bytes(2, "big") + cid
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        connack = self._read(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise SystemExit(f"broker refused the bench publisher: {connack!r}")
        self.pid = 0
        self.sent = 0
        self.acked = 0
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._pubacks, name="bench-pubacks", daemon=True)
        self.reader.start()

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def _pubacks(self) -> None:
        pending = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            pending += chunk
            n = len(pending) // 4  # PUBACK: 0x40 0x02 <packet id>
            if n:
                pending = pending[n * 4 :]
                with self.cond:
                    self.acked += n
                    self.cond.notify_all()

    def packet(self, topic: str, payload: bytes) -> bytes:
        """One QoS 1 PUBLISH packet (a fresh packet id)."""
        self.pid = self.pid % 65535 + 1
        t = topic.encode()
        body = len(t).to_bytes(2, "big") + t + self.pid.to_bytes(2, "big") + payload
        return b"\x32" + _varint(len(body)) + body

    def send(self, data: bytes, count: int) -> None:
        with self.cond:
            self.sent += count
        self.sock.sendall(data)

    def wait_acked(self, timeout: float) -> bool:
        """True once the broker has accepted every message sent so far."""
        with self.cond:
            return self.cond.wait_for(lambda: self.acked >= self.sent, timeout)

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self.sock.close()


def throughput(
    pub: RawPublisher, acks: Acks, topics: Topics, msgs: list[tuple[str, int, bytes]], boot: str
) -> float:
    """Seconds from the first publish to the ack of the last batch."""
    packets = b"".join(pub.packet(topics.telemetry(gw), payload) for gw, _seq, payload in msgs)
    t0 = time.perf_counter()
    pub.send(packets, len(msgs))
    t_queued = time.perf_counter()
    pub.wait_acked(600)
    t_sent = time.perf_counter()
    deadline = time.monotonic() + 600
    while acks.count(boot) < len(msgs):
        if time.monotonic() > deadline:
            raise SystemExit(f"timeout: {acks.count(boot)} of {len(msgs)} batches acked")
        time.sleep(0.005)
    with acks.lock:
        last = max(v for k, v in acks.got.items() if k[1] == boot)
        first = min(v for k, v in acks.got.items() if k[1] == boot)
    print(
        f"  publish calls {t_queued - t0:.2f} s, all accepted by the broker {t_sent - t0:.2f} s, "
        f"first ack {first - t0:.2f} s"
    )
    return last - t0


def latency(
    pub: RawPublisher,
    acks: Acks,
    topics: Topics,
    msgs: list[tuple[str, int, bytes]],
    boot: str,
    rate_msgs: float,
) -> list[float]:
    sent: dict[tuple[str, int], float] = {}
    t0 = time.perf_counter()
    for i, (gw, seq, payload) in enumerate(msgs):
        due = t0 + i / rate_msgs
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.002, due - now))
        packet = pub.packet(topics.telemetry(gw), payload)
        sent[(gw, seq)] = time.perf_counter()
        pub.send(packet, 1)
    deadline = time.monotonic() + 120
    while acks.count(boot) < len(msgs):
        if time.monotonic() > deadline:
            raise SystemExit("timeout waiting for latency acks")
        time.sleep(0.01)
    with acks.lock:
        return [acks.got[(gw, boot, seq)] - t for (gw, seq), t in sent.items()]


def scrape(port: int) -> dict[str, float]:
    """The ingest worker's own metrics (commit time, commits), for the report."""
    import urllib.request

    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith(("suvnet_ingest_commit_seconds_sum", "suvnet_ingest_commits_total")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), for the report."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """User + system CPU time of this process (the publishers and the ack listener)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings, ingest_rollup_dirty")


def copy_baseline(url: str, rows: list[tuple[int, int, float, int]]) -> float:
    """Seconds for a bare binary COPY of the rows into the (emptied) readings table."""
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                "COPY readings (ts, point_id, value, quality) FROM STDIN (FORMAT BINARY)"
            ) as cp,
        ):
            cp.set_types(["timestamptz", "int8", "float8", "int2"])
            for ts, pid, v, q in rows:
                cp.write_row((datetime.fromtimestamp(ts / 1000, UTC), pid, v, q))
        return time.perf_counter() - t0


def report(
    secs: float, rps: float, n: int, cpu: float, m0: dict[str, float], m1: dict[str, float]
) -> None:
    commits = m1.get("suvnet_ingest_commits_total", 0) - m0.get("suvnet_ingest_commits_total", 0)
    in_db = m1.get("suvnet_ingest_commit_seconds_sum", 0) - m0.get(
        "suvnet_ingest_commit_seconds_sum", 0
    )
    print(
        f"  {secs:.2f} s -> {rps:,.0f} readings/s; ingest CPU {cpu:.2f} s "
        f"({cpu / n * 1e6:.1f} us/reading); {commits:.0f} commits taking {in_db:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (< 1 minute)")
    ap.add_argument("--readings", type=int, help="readings per throughput run")
    ap.add_argument("--rounds", type=int, help="throughput rounds (default 5; medians count)")
    ap.add_argument("--latency-s", type=float, help="seconds of the fixed-rate latency run")
    ap.add_argument("--workers", type=int, default=1, help="ingest workers (default 1)")
    ap.add_argument("--mqtt-url", help="use this broker instead of a private Mosquitto")
    args = ap.parse_args()
    total = args.readings or (150_000 if args.quick else 1_000_000)
    rounds = args.rounds or 5
    lat_s = args.latency_s or (4.0 if args.quick else 15.0)
    server = os.environ.get(
        "SUVNET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    tmp = Path(tempfile.mkdtemp(prefix="suvnet-bench-ingest-"))
    broker: subprocess.Popen[bytes] | None = None
    if args.mqtt_url:
        mqtt_url = args.mqtt_url
    else:
        broker, mqtt_url = start_broker(tmp)
    dbname, url, points = make_db(server)
    topics = Topics(f"bench{uuid.uuid4().hex[:6]}/suvnet")
    now = int(time.time() * 1000)
    log = (tmp / "ingest.log").open("wb")
    metrics_port = free_port()
    env = dict(
        os.environ,
        SUVNET_DATABASE_URL=url,
        SUVNET_MQTT_URL=mqtt_url,
        SUVNET_TOPIC_ROOT=topics.root,
        SUVNET_INGEST_CLIENT_ID=f"bench-ingest-{uuid.uuid4().hex[:6]}",
        SUVNET_INGEST_METRICS_PORT=str(metrics_port),
        SUVNET_INGEST_SESSION_EXPIRY_S="60",
        SUVNET_LOG_LEVEL="WARNING",
    )
    ingest = subprocess.Popen(
        [str(Path(sys.executable).parent / "suvnet"), "ingest", "run"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # more workers on the same shared subscription (the figures of the report lines are the
    # first worker's; the readings/s are the total)
    others = [
        subprocess.Popen(
            [str(Path(sys.executable).parent / "suvnet"), "ingest", "run"],
            env=dict(
                env,
                SUVNET_INGEST_CLIENT_ID=f"bench-ingest-{uuid.uuid4().hex[:6]}",
                SUVNET_INGEST_METRICS_PORT="0",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(args.workers - 1)
    ]
    acks = Acks(mqtt_url, topics)
    pub = RawPublisher(mqtt_url)
    try:
        # warm-up: one batch acked means the worker is subscribed and writing
        warm, _ = make_batches(points, 400, 100, "warm", now - 7_200_000)
        deadline = time.monotonic() + 60
        while acks.count("warm") < 1:
            pub.send(pub.packet(topics.telemetry(warm[0][0]), warm[0][2]), 1)
            time.sleep(0.5)
            if time.monotonic() > deadline or ingest.poll() is not None:
                raise SystemExit("ingest did not start; see " + str(tmp / "ingest.log"))

        # several rounds, each ingest and COPY close together: the medians are the figures,
        # so one slow or fast moment of the machine does not make them
        all100: list[float] = []
        all1000: list[float] = []
        all_copy: list[float] = []
        per_round: list[float] = []
        rows: list[tuple[int, int, float, int]] = []
        for rnd in range(rounds):
            for per_msg in (100, 1000):
                truncate(url)
                boot = f"t{per_msg}-{rnd}"
                msgs, rows = make_batches(points, total, per_msg, boot, now - 3_000_000)
                print(f"round {rnd + 1}: {len(rows):,} readings in messages of {per_msg}")
                c0, m0 = cpu_seconds(ingest.pid), scrape(metrics_port)
                o0 = (own_cpu(), cpu_seconds(broker.pid) if broker else float("nan"))
                secs = throughput(pub, acks, topics, msgs, boot)
                rps = len(rows) / secs
                o1 = (own_cpu(), cpu_seconds(broker.pid) if broker else float("nan"))
                report(secs, rps, len(rows), cpu_seconds(ingest.pid) - c0, m0, scrape(metrics_port))
                print(
                    f"  other CPU: publishers and ack listener {o1[0] - o0[0]:.2f} s, "
                    f"broker {o1[1] - o0[1]:.2f} s"
                )
                (all100 if per_msg == 100 else all1000).append(rps)
            # the worker is idle now: a fair moment for the baseline
            truncate(url)
            tc = copy_baseline(url, rows)
            all_copy.append(len(rows) / tc)
            per_round.append(all100[-1] / all_copy[-1])
            print(
                f"round {rnd + 1}: bare binary COPY of the same rows: {len(rows) / tc:,.0f} rows/s"
                f" (this round's ratio {per_round[-1]:.2f})"
            )
        med = statistics.median
        rps100, rps1000, copy_rps = med(all100), med(all1000), med(all_copy)
        # the machine's speed drifts between rounds: the ratio of each round (ingest and COPY
        # measured a few seconds apart) shows how much
        print(
            "ratios of the rounds: "
            + ", ".join(f"{r:.2f}" for r in per_round)
            + f" (median {med(per_round):.2f})"
        )
        print(
            f"best of the rounds: {max(all100):,.0f} readings/s (100 per message), "
            f"{max(all1000):,.0f} (1000 per message), bare COPY {max(all_copy):,.0f} rows/s, "
            f"ratio {max(all100) / max(all_copy):.2f}"
        )

        n_lat = int(lat_s * 200)
        msgs_lat, _ = make_batches(points, n_lat * 100, 100, "lat", now - 1_000_000)
        print(f"latency: {len(msgs_lat)} messages of 100 at 200 messages/s (20,000 readings/s)")
        lats = sorted(latency(pub, acks, topics, msgs_lat, "lat", 200.0))
        p50 = statistics.median(lats)
        p99 = lats[min(len(lats) - 1, int(0.99 * len(lats)))]
        print(f"  p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lats[-1] * 1000:.0f} ms")

        print(
            f"median of the rounds: {rps100:,.0f} readings/s (100 per message), {rps1000:,.0f} "
            f"(1000 per message), bare COPY {copy_rps:,.0f} rows/s"
        )
        print(f"ratio (ingest end to end / bare COPY): {rps100 / copy_rps:.2f}")
    finally:
        for proc in others:
            proc.send_signal(signal.SIGTERM)
        for proc in others:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGTERM)
            try:
                ingest.wait(30)
            except subprocess.TimeoutExpired:
                ingest.kill()
        log.close()
        pub.close()
        acks.close()
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "readings_per_s": round(rps100),
                "readings_per_s_1000": round(rps1000),
                "copy_baseline_rows_per_s": round(copy_rps),
                "ratio": round(rps100 / copy_rps, 3),
                "p50_latency_s": round(p50, 4),
                "p99_latency_s": round(p99, 4),
            }
        )
    )


if __name__ == "__main__":
    main()

"""The SQLite outbox: batching, acks, the overflow policy, and a power cut (kill -9)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from edge_agent.outbox import Outbox
from suvnet.protocol import Quality, Reading


def readings(n: int, start: int = 0, ts: int = 1_000_000) -> list[Reading]:
    return [Reading("d-1", "p", ts + i, float(start + i)) for i in range(n)]


def test_batches_leave_only_on_ack_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    box.add(readings(25), now_ms=2_000_000)
    assert box.form_batch(10, now_ms=0) == 0
    assert box.form_batch(10, now_ms=0) == 1
    assert box.unacked() == [0, 1]
    b1 = box.batch("gw", 1, sent_ms=5)
    assert [r.value for r in b1.readings] == [float(i) for i in range(10, 20)]
    assert box.ack("some-other-boot", [(0, 1)]) == 0
    assert box.ack(box.boot, [(0, 0)]) == 1
    boot = box.boot
    box.close()
    again = Outbox(path)
    assert again.boot == boot  # the batch ids stay valid across restarts
    assert again.unacked() == [1]
    assert again.depth == 15
    assert again.unbatched == 5
    assert again.form_batch(10, now_ms=0) == 2  # seq continues
    assert [r.value for r in again.batch("gw", 2, 0).readings] == [20.0, 21.0, 22.0, 23.0, 24.0]
    assert again.batch("gw", 2, 0).readings[0].quality is Quality.GOOD
    again.close()


def test_overflow_drops_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_readings=100, max_age_s=3600)
    box.add(readings(60), now_ms=1_000_100)
    box.form_batch(30, now_ms=0)  # seq 0 holds values 0..29
    assert box.add(readings(70, start=60), now_ms=1_000_200) == 30
    assert box.depth == 100
    assert box.dropped == 30
    assert box.unacked() == []  # batch 0 lost all its readings and went with them
    assert box.form_batch(1, 0) == 1
    assert box.batch("gw", 1, 0).readings[0].value == 30.0
    box.add([Reading("d-1", "p", 2_000_000, 1.0)], now_ms=1_000_300)
    assert box.dropped == 31  # one more in, the oldest out
    assert box.depth == 100
    box.close()
    assert Outbox(tmp_path / "o.db").dropped == 31  # the count is kept in the file


def test_age_limit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_readings=1000, max_age_s=10)
    box.add(readings(5, ts=0), now_ms=5_000)
    assert box.dropped == 0
    box.add(readings(5, start=5, ts=20_000), now_ms=20_005)
    assert box.dropped == 5
    assert box.depth == 5


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edge_agent.outbox import Outbox
    from suvnet.protocol import Reading
    box = Outbox(Path(sys.argv[1]))
    n = 0
    while True:
        box.add([Reading("d-1", "p", n + i, float(n + i)) for i in range(50)], now_ms=n)
        n += 50
        if n % 500 == 0:
            box.form_batch(500, now_ms=n)
        print(n, flush=True)
    """
)


def test_power_cut_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    committed = 0
    for line in proc.stdout:
        committed = int(line)
        if committed >= 3000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        values = [r[0] for r in db.execute("SELECT value FROM readings ORDER BY id")]
    assert len(values) >= committed
    assert values == [float(i) for i in range(len(values))]  # no hole, no duplicate
    box = Outbox(path)  # and the agent can carry on with it
    assert box.depth == len(values)
    assert box.unacked() == list(range(len(box.unacked())))

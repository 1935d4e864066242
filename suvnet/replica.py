"""A streaming replica for read-only traffic: how far behind the primary it is.

``SUVNET_DATABASE_READ_URL`` names a PostgreSQL hot standby (a streaming replica of the
primary made with ``pg_basebackup``). The API sends read-only pages to it while it is
close enough to the primary (``SUVNET_READ_MAX_LAG_S``) and reads from the primary
otherwise (:mod:`api.readconn`); ``suvnet db status`` and ``GET /health`` show its state.

How the lag is measured. A replica knows what it has replayed (its WAL position and the
commit time of the last transaction it replayed), the primary knows how far its WAL goes.
The lag is estimated as the smaller of two upper bounds:

* the age of the last transaction the replica replayed (``now() -
  pg_last_xact_replay_timestamp()``), when the replica has not yet replayed all the WAL the
  primary had flushed just before. Everything the replica still has to replay was written
  after that commit. Accurate under a steady write load; on a quiet primary that has just
  written a checkpoint record it can be minutes, which is why there is a second bound:
* the time since the primary was, at one of the earlier checks, at a WAL position that the
  replica has replayed now (:class:`LagEstimator` keeps the recent checks). Its resolution is
  the check interval.

A replica that has replayed everything the primary had flushed has no lag (0 s). A
server that is not in recovery (``pg_is_in_recovery()`` false: the primary itself, or a
promoted former replica that no longer follows the primary) is never used for reads.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

PRIMARY_SQL = "SELECT pg_current_wal_flush_lsn()::text"
"""On the primary: how far its WAL is flushed (what a replica can have received)."""

REPLICA_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn()), "
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
)
"""On the replica, with the primary's flushed position: in recovery, replayed position,
bytes still to replay, seconds since the commit of the last replayed transaction."""

State = Literal["ok", "lagging", "down", "not_replica"]


@dataclass(frozen=True)
class ReplicaStatus:
    """One check of the replica. ``usable``: reads may go to it."""

    state: State
    lag_s: float | None = None
    """Estimated replication lag (None: unknown, e.g. the replica is down)."""
    behind_bytes: int | None = None
    """WAL the replica has still to replay, in bytes."""
    detail: str = ""
    """Why it is not usable (the error, or the limit it exceeds)."""

    @property
    def usable(self) -> bool:
        return self.state == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
            "behind_bytes": self.behind_bytes,
            "detail": self.detail,
        }

    def describe(self, max_lag_s: float) -> str:
        """One line for people (``suvnet db status``, log messages)."""
        if self.state == "down":
            return f"unreachable, reads go to the primary ({self.detail})"
        if self.state == "not_replica":
            return f"not a replica, reads go to the primary ({self.detail})"
        lag = "unknown" if self.lag_s is None else f"{self.lag_s:.1f} s"
        behind = "" if self.behind_bytes is None else f", {self.behind_bytes:,} bytes to replay"
        if self.state == "lagging":
            return f"lagging {lag}{behind} (limit {max_lag_s:g} s): reads go to the primary"
        return f"streaming, lag {lag}{behind} (limit {max_lag_s:g} s): serves reads"


class LagEstimator:
    """The lag of one replica from successive checks (see the module doc).

    :meth:`observe` takes what one check saw: the primary's flushed WAL position (asked
    first) and the replica's answer to :data:`REPLICA_SQL`. ``clock`` is monotonic seconds
    (replaceable in tests)."""

    def __init__(
        self, max_lag_s: float, clock: Callable[[], float] = time.monotonic, keep: int = 256
    ) -> None:
        self.max_lag_s = max_lag_s
        self.clock = clock
        self._seen: deque[tuple[float, int]] = deque(maxlen=keep)
        """(when, the primary's flushed position as a number) of the recent checks."""

    def observe(
        self,
        primary_lsn: str,
        in_recovery: bool,
        replayed_lsn: str | None,
        behind_bytes: float | None,
        last_replay_age_s: float | None,
    ) -> ReplicaStatus:
        now = self.clock()
        primary = lsn_number(primary_lsn)
        self._seen.append((now, primary))
        if not in_recovery or replayed_lsn is None:
            return ReplicaStatus(
                "not_replica", detail="pg_is_in_recovery() is false: it does not follow the primary"
            )
        replayed = lsn_number(replayed_lsn)
        behind = max(0, int(behind_bytes or 0))
        if replayed >= primary:
            lag: float | None = 0.0
        else:
            bounds = [now - t for t, lsn in self._seen if lsn <= replayed]
            if last_replay_age_s is not None:
                bounds.append(max(0.0, last_replay_age_s))
            lag = min(bounds) if bounds else None
        if lag is None or lag > self.max_lag_s:
            shown = "unknown" if lag is None else f"{lag:.1f} s"
            return ReplicaStatus(
                "lagging",
                lag,
                behind,
                f"replication lag {shown} is over SUVNET_READ_MAX_LAG_S={self.max_lag_s:g}",
            )
        return ReplicaStatus("ok", lag, behind)

    def down(self, exc: BaseException) -> ReplicaStatus:
        return ReplicaStatus("down", detail=str(exc).strip().splitlines()[0] if str(exc) else "")


def lsn_number(lsn: str) -> int:
    """A WAL position ``16/B374D848`` as a number."""
    hi, _, lo = lsn.partition("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def check_once(
    primary: Any,
    replica: Any,
    max_lag_s: float,
    *,
    looks: int = 4,
    pause_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplicaStatus:
    """A check with synchronous connections (``suvnet db status``): the primary's position,
    then the replica's answer. While the replica is behind it looks again, up to ``looks``
    times ``pause_s`` apart, so that the second bound of the module doc applies (a busy
    primary is nearly always a few kB ahead of the moment's answer). A replica that cannot be
    asked is ``down``."""
    est = LagEstimator(max_lag_s)
    status = ReplicaStatus("down", detail="not checked")
    for n in range(looks):
        if n:
            sleep(pause_s)
        row = primary.execute(PRIMARY_SQL).fetchone()
        try:
            ans = replica.execute(REPLICA_SQL, (row[0],)).fetchone()
        except Exception as exc:  # noqa: BLE001 - any failure means: do not read there
            return est.down(exc)
        status = est.observe(row[0], *ans)
        if status.state == "not_replica" or status.lag_s == 0:
            break
    return status

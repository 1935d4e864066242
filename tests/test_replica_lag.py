"""The replica's lag estimate (suvnet.replica.LagEstimator), without a server: what each
bound gives, the limit, and a server that is not a replica."""

from __future__ import annotations

from suvnet.replica import LagEstimator, ReplicaStatus, lsn_number


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lsn_numbers_compare_as_positions() -> None:
    assert lsn_number("0/16B3748") == 0x16B3748
    assert lsn_number("1/0") > lsn_number("0/FFFFFFFF")


def test_caught_up_is_no_lag_whatever_the_last_commit_age() -> None:
    est = LagEstimator(30.0, clock=Ticks())
    st = est.observe("0/3000000", True, "0/3000000", 0, 3600.0)
    assert st == ReplicaStatus("ok", 0.0, 0)
    assert st.usable


def test_behind_the_smaller_bound_counts() -> None:
    t = Ticks()
    est = LagEstimator(30.0, clock=t)
    est.observe("0/1000", True, "0/1000", 0, 500.0)
    t.now += 2.0
    # a quiet primary wrote a checkpoint: the last commit is old, but two seconds ago the
    # primary was at a position the replica has replayed
    st = est.observe("0/2000", True, "0/1000", 4096, 500.0)
    assert st.state == "ok" and st.lag_s == 2.0 and st.behind_bytes == 4096
    # a busy primary: the last replayed commit is recent
    t.now += 2.0
    st = est.observe("0/9000", True, "0/1800", 30000, 0.25)
    assert st.lag_s == 0.25


def test_over_the_limit_is_lagging_and_says_why() -> None:
    t = Ticks()
    est = LagEstimator(5.0, clock=t)
    st = est.observe("0/9000", True, "0/1000", 32768, 12.5)
    assert st.state == "lagging" and not st.usable and st.lag_s == 12.5
    assert "SUVNET_READ_MAX_LAG_S=5" in st.detail
    assert "reads go to the primary" in st.describe(5.0)
    # no bound at all (nothing replayed yet, no history): unknown is not usable either
    st = LagEstimator(5.0, clock=t).observe("0/9000", True, "0/1000", 32768, None)
    assert st.state == "lagging" and st.lag_s is None


def test_a_server_not_in_recovery_is_never_read() -> None:
    st = LagEstimator(30.0).observe("0/9000", False, None, None, None)
    assert st.state == "not_replica" and not st.usable
    assert "pg_is_in_recovery() is false" in st.detail


def test_down_names_the_error() -> None:
    st = LagEstimator(30.0).down(OSError("connection refused\nmore"))
    assert st.state == "down" and st.detail == "connection refused"
    assert st.as_dict()["lag_s"] is None

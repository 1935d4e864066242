"""A branch's Grafana sees its branch only (issue 20): every panel, variable and annotation
query of every dashboard, run as the read-only login `suvnet branches reader` makes, returns
nothing of another branch, even when the SQL tries to widen its scope; and the readers, the
whole region's one too, cannot read the secrets (password and code hashes, tokens, keys)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from api.cli import branches_app
from billing import branches as br
from dashboards.boards import all_dashboards
from tests.dashboards.test_panel_sql import context, run, skip_if_missing

# what branch B owns in the seeded village: zone Z2 (Tepalik), its gateway GW2 and GW2's
# pressure sensor PS2 (the other devices are on GW1: branch A's)
B_CODES = re.compile(r"\b(Z2|GW2|PS2|Tepalik)\b")
SECRETS = re.compile(r"(password|secret|hash|token|jti)$|^key$")
NOT_SECRETS = {
    ("account_search", "key"),  # the search's words of an account
    ("gateway_config", "points_hash"),  # a digest of a gateway's point list
    ("suvnet_meta", "key"),  # the name of a schema setting
}


def invoke(db_url: str, *args: str, **env: str) -> Any:
    """``suvnet branches ARGS`` on ``db_url`` with ``env`` set (the settings re-read)."""
    from suvnet.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SUVNET_DATABASE_URL", db_url)
        mp.delenv("T_UNSET", raising=False)
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(branches_app, list(args))
        finally:
            get_settings.cache_clear()


def _queries() -> list[Any]:
    out = []
    for d in all_dashboards():
        out += [
            pytest.param(t.sql, t.requires, id=f"{d.uid}/{p.title}/{t.ref_id}")
            for p in d.panels
            for t in p.targets
        ]
        out += [pytest.param(v.sql, v.requires, id=f"{d.uid}/var/{v.name}") for v in d.variables]
        out += [pytest.param(a.sql, a.requires, id=f"{d.uid}/ann/{a.name}") for a in d.annotations]
    return out


@pytest.fixture(scope="module")
def reader(village: dict[str, int], db_url: str) -> Iterator[str]:
    """Z1 (and its gateway GW1, devices and points) is branch A's, Z2 branch B's; the
    reader login made by the command line sees A. Yields its connection string."""
    role = f"grafana_t{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        br.add_branch(conn, "TA", "Branch A")
        br.add_branch(conn, "TB", "Branch B")
        br.assign(conn, "TA", zones=["Z1"])
        br.assign(conn, "TB", zones=["Z2"])
    r = invoke(db_url, "reader", role, "--branch", "TA", "--password-env", "T_PW", T_PW="s3cret-pw")
    assert r.exit_code == 0, r.output
    assert f"reader {role} sees TA" in r.output
    r = invoke(db_url, "readers")
    assert f"{role}: TA" in r.output, r.output
    yield make_conninfo(db_url, user=role, password="s3cret-pw")
    r = invoke(db_url, "reader-drop", role)
    assert r.exit_code == 0, r.output
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None


@pytest.mark.parametrize(("sql", "requires"), _queries())
def test_every_dashboard_query_shows_a_branch_reader_its_branch_only(
    reader: str, vdb: psycopg.Connection[Any], sql: str, requires: tuple[str, ...]
) -> None:
    skip_if_missing(vdb, requires)
    ctx = context(timedelta(days=40))
    whole = run(vdb, sql, ctx)  # as the owner: the whole region
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.info.user != vdb.info.user
        # what an editor might try: the API's scope setting widens nothing for a reader
        conn.execute("SELECT set_config('suvnet.branches', '*', false)")
        mine = run(conn, sql, ctx)
    leaked = [row for row in mine.rows if B_CODES.search(" ".join(map(str, row)))]
    assert not leaked, leaked[:3]
    assert len(mine.rows) <= len(whole.rows)


def test_the_reader_sees_its_branch_and_not_the_other(
    reader: str, vdb: psycopg.Connection[Any]
) -> None:
    """The test above can fail: the same queries as the owner do show branch B's rows."""
    with psycopg.connect(reader, autocommit=True) as conn:
        for setting in ("", "*"):
            conn.execute("SELECT set_config('suvnet.branches', %s, false)", (setting,))
            zones = [r[0] for r in conn.execute("SELECT code FROM zones ORDER BY code")]
            assert zones == ["Z1"], (setting, zones)
        conn.execute("SET ROLE suvnet_branch_reader")  # a role it may switch to
        assert [r[0] for r in conn.execute("SELECT code FROM zones")] == ["Z1"]
    owner_zones = [r[0] for r in vdb.execute("SELECT code FROM zones ORDER BY code")]
    assert owner_zones == ["Z1", "Z2"]
    shown = sum(
        1
        for d in all_dashboards()
        for v in d.variables
        if any(
            B_CODES.search(" ".join(map(str, row)))
            for row in run(vdb, v.sql, context(timedelta(hours=6))).rows
        )
    )
    assert shown, "the owner's variables list branch B's zones, devices or gateways"


@pytest.mark.parametrize("group", ["suvnet_reader", "suvnet_branch_reader"])
def test_readers_cannot_read_the_secrets(vdb: psycopg.Connection[Any], group: str) -> None:
    cols = vdb.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    ).fetchall()
    secret = [(t, c) for t, c in cols if SECRETS.search(c) and (t, c) not in NOT_SECRETS]
    assert ("api_users", "password_hash") in secret and ("payme_keys", "key") in secret
    readable = [
        (t, c)
        for t, c in secret
        if vdb.execute(
            "SELECT has_column_privilege(%s, format('%%I', %s::text), %s, 'SELECT')",
            (group, t, c),
        ).fetchone()
        == (True,)
    ]
    assert not readable, f"{group} may read {readable}"
    # and the rest of those tables stays readable: dashboards name the users who acted
    assert vdb.execute(
        "SELECT has_column_privilege(%s, 'api_users', 'username', 'SELECT')", (group,)
    ).fetchone() == (True,)


def test_reader_refusals(db_url: str, village: dict[str, int]) -> None:
    with psycopg.connect(db_url) as conn:
        owner = conn.info.user
    cases = [
        (["reader", "Bad-Name", "--branch", "TA", "--password-env", "T_PW"], "reader name"),
        (["reader", owner, "--branch", "TA", "--password-env", "T_PW"], "is not a branch reader"),
        (["reader", "grafana_nobranch", "--branch", "NOPE", "--password-env", "T_PW"], "NOPE"),
        (["reader", "grafana_nopw", "--branch", "TA", "--password-env", "T_UNSET"], "not set"),
        (["reader-drop", owner], "no branch reader"),
    ]
    with psycopg.connect(db_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM branches WHERE code = 'TA'").fetchone() is None:
            br.add_branch(conn, "TA", "Branch A")
    for args, says in cases:
        r = invoke(db_url, *args, T_PW="x")
        assert r.exit_code == 1, (args, r.output)
        assert says in r.output.replace("\n", " "), (args, r.output)
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('grafana_nobranch', 'grafana_nopw')"
        ).fetchone() == (0,)

"""``suvnet alarms ...``: run the worker, act on alarms, replay history, show KPIs."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from alarms.errors import RuleConfigError
from alarms.store import Conn
from suvnet.clock import utcnow

app = typer.Typer(
    help="Alarms: the alarm worker, acknowledge/shelve, alarm list, KPIs and replay.",
    no_args_is_help=True,
)
rules_app = typer.Typer(help="Alarm rules: load from a YAML file, list.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
console = Console()

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w``."""
    m = _DUR.match(text)
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 2h, 7d")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


def parse_time(text: str) -> datetime:
    """An ISO date/time; without a zone it is taken as UTC."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a date/time like 2026-03-01T00:00") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@contextmanager
def _db() -> Iterator[Conn]:
    from suvnet.db import connect, database_url
    from suvnet.settings import get_settings

    with connect(database_url(get_settings()), autocommit=True) as conn:
        yield conn


@app.command()
def run(
    once: Annotated[bool, typer.Option(help="Evaluate and notify once, then exit.")] = False,
) -> None:
    """Run the alarm worker: evaluate new readings, raise alarms, send notifications.

    Any number of workers may run at once; they share the rules without double alarms.
    """
    from alarms.notify import AlarmSettings
    from alarms.worker import run_worker
    from suvnet.db import database_url
    from suvnet.settings import get_settings

    core = get_settings()
    s = (
        AlarmSettings(grafana_url=core.grafana_url, grafana_token=core.grafana_token)
        if core.grafana_url
        else AlarmSettings()
    )
    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print(f"alarm worker running (poll every {s.poll_s:g} s); Ctrl-C stops it")
    try:
        stats = run_worker(database_url(core), s, stop=stop, max_passes=1 if once else None)
    except KeyboardInterrupt:
        stop.set()
        return
    console.print(f"{stats.passes} poll(s), {stats.transitions} transition(s), {stats.sent} sent")


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include closed alarms.")] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 50,
    run_id: Annotated[int, typer.Option("--run", help="A replay run (0 = live).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List open alarms (newest first), or all of them with --all."""
    with _db() as conn:
        rows = conn.execute(
            "SELECT a.id, a.raised_at, a.priority, a.state, r.code || CASE WHEN a.subject <> '' "
            "THEN ':' || a.subject ELSE '' END, coalesce(z.code, ''), "
            "a.message, a.chattering, a.closed_at, a.leak_lps, a.leak_low_lps, a.leak_high_lps "
            "FROM alarms a "
            "JOIN alarm_rules r ON r.id = a.rule_id LEFT JOIN zones z ON z.id = a.zone_id "
            "WHERE a.run_id = %s AND (%s OR a.closed_at IS NULL) "
            "ORDER BY a.raised_at DESC, a.id DESC LIMIT %s",
            (run_id, all_, limit),
        ).fetchall()
        shelved = conn.execute(
            "SELECT r.code, s.subject, s.state, s.shelved_until, s.shelved_by "
            "FROM alarm_rule_state s JOIN alarm_rules r ON r.id = s.rule_id "
            "WHERE s.run_id = %s AND s.state IN ('shelved', 'suppressed', 'out_of_service')",
            (run_id,),
        ).fetchall()
    if as_json:
        for r in rows:
            doc = {
                "id": r[0],
                "raised_at": r[1].isoformat(),
                "priority": r[2],
                "state": r[3],
                "rule": r[4],
                "zone": r[5],
                "message": r[6],
                "chattering": r[7],
            }
            if r[9] is not None:
                doc["leak_lps"] = round(float(r[9]), 3)
                doc["leak_m3_day"] = round(float(r[9]) * 86.4, 1)
                doc["leak_lps_90"] = [round(float(r[10]), 3), round(float(r[11]), 3)]
            print(json.dumps(doc, ensure_ascii=False))  # noqa: T201
        return
    t = Table("id", "raised (UTC)", "priority", "state", "rule", "zone", "leak L/s", "message")
    for r in rows:
        state = r[3] + (" (chattering)" if r[7] else "") + (" closed" if r[8] else "")
        size = "" if r[9] is None else f"{r[9]:.1f} ({r[10]:.1f}-{r[11]:.1f})"
        t.add_row(str(r[0]), f"{r[1]:%Y-%m-%d %H:%M:%S}", r[2], state, r[4], r[5], size, r[6])
    console.print(t)
    for code, subject, state, until, by in shelved:
        extra = f" until {until:%Y-%m-%d %H:%M} by {by}" if until else ""
        console.print(f"  {code}{':' + subject if subject else ''}: {state}{extra}")


def _act(ref: str, action: Any, user: str, comment: str | None, until: datetime | None) -> None:
    from alarms.actions import act

    # a refusal (AlarmsError) is printed by the suvnet command as "error: ..." with exit code 1
    with _db() as conn:
        tr = act(conn, ref, action, user=user, comment=comment, now=utcnow(), until=until)
    console.print(f"alarm {ref}: {tr.from_state.value} -> {tr.to_state.value}")


UserOpt = Annotated[str, typer.Option("--user", "-u", help="Your name (kept in the journal).")]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-c", help="Why.")]


@app.command()
def ack(ref: str, user: UserOpt, comment: CommentOpt = None) -> None:
    """Acknowledge an alarm (REF: alarm number or rule code)."""
    _act(ref, "ack", user, comment, None)


@app.command()
def shelve(
    ref: str,
    user: UserOpt,
    comment: CommentOpt = None,
    for_: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 2h.")] = "1h",
) -> None:
    """Shelve an alarm for a while (at most the rule's maximum); a comment is required."""
    _act(ref, "shelve", user, comment, utcnow() + parse_duration(for_))


@app.command()
def unshelve(ref: str, user: UserOpt) -> None:
    """Take a shelved alarm off the shelf before its time."""
    _act(ref, "unshelve", user, None, None)


@app.command("out-of-service")
def out_of_service(ref: str, user: UserOpt, comment: CommentOpt = None) -> None:
    """Take an alarm out of service (maintenance); a comment is required."""
    _act(ref, "remove_from_service", user, comment, None)


@app.command("in-service")
def in_service(ref: str, user: UserOpt, comment: CommentOpt = None) -> None:
    """Return an out-of-service alarm to service."""
    _act(ref, "return_to_service", user, comment, None)


@app.command()
def repaired(
    ref: str,
    user: UserOpt,
    comment: CommentOpt = None,
    at: Annotated[
        str | None, typer.Option(help="When it was repaired (ISO date/time, UTC; default now).")
    ] = None,
) -> None:
    """A leak was repaired: close the leak event of a leak rule (REF: alarm number or rule
    code). Its alarm clears and is acknowledged; the rule learns the zone afresh."""
    from alarms.actions import repaired as do_repaired

    with _db() as conn:
        trs = do_repaired(
            conn, ref, user=user, comment=comment, now=utcnow(),
            at=parse_time(at) if at else None,
        )  # fmt: skip
    end = trs[-1].to_state.value if trs else "normal"
    console.print(f"leak of {ref}: repaired; alarm {end}")


@app.command()
def kpi(
    period: Annotated[str, typer.Option(help="The last PERIOD, e.g. 24h, 7d, 30d.")] = "24h",
    until: Annotated[str | None, typer.Option(help="End of the period (default: now).")] = None,
    run_id: Annotated[int, typer.Option("--run", help="A replay run (0 = live).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Alarm KPIs (ISA-18.2): alarms per position per 10 min, time in flood, top 10,
    chattering and stale alarms."""
    from alarms.kpi import load_kpis

    end = parse_time(until) if until else utcnow()
    start = end - parse_duration(period)
    with _db() as conn:
        k = load_kpis(conn, start, end, run_id=run_id)
    if as_json:
        print(json.dumps(k.as_dict()))  # noqa: T201
        return
    t = Table(show_header=False, box=None)
    t.add_row("period", f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")
    t.add_row("alarms", str(k.alarms))
    for pos, avg in k.per_position_avg_per_10min.items():
        t.add_row(
            f"position {pos}",
            f"{avg:.2f} per 10 min on average, worst 10 min: {k.per_position_max_per_10min[pos]}",
        )
    t.add_row("time in flood", f"{k.time_in_flood_pct:.2f} %")
    t.add_row("chattering alarms", f"{k.chattering_alarms} {', '.join(k.chattering_rules)}")
    t.add_row("stale alarms (> 24 h)", str(k.stale_alarms))
    console.print(t)
    top = Table("rule", "alarms", title="top 10 contributors")
    for rule, n in k.top10:
        top.add_row(rule, str(n))
    console.print(top)


@app.command()
def replay(
    from_: Annotated[str, typer.Option("--from", help="Start (ISO date/time, UTC).")],
    to: Annotated[str, typer.Option("--to", help="End (ISO date/time, UTC).")],
    user: Annotated[str, typer.Option("--user", "-u")] = "",
    note: Annotated[str, typer.Option(help="Why this replay was run.")] = "",
) -> None:
    """Evaluate rules and analytics over stored history exactly like the live worker.

    The alarms are stored as a separate replay run (marked replayed) and never notified.
    """
    from rich.progress import Progress

    from alarms.actions import replay as do_replay

    t0, t1 = parse_time(from_), parse_time(to)
    if t1 <= t0:
        raise typer.BadParameter("--to must be after --from")
    with _db() as conn, Progress(console=console, transient=True) as prog:
        task = prog.add_task("replaying", total=None)

        def on_pass(res: Any) -> None:
            prog.update(task, advance=res.samples)

        run_id = do_replay(conn, t0, t1, now=utcnow(), user=user, note=note, on_pass=on_pass)
        row = conn.execute(
            "SELECT alarms, problems FROM alarm_replay_runs WHERE id = %s", (run_id,)
        ).fetchone()
    alarms, problems = (row[0], list(row[1])) if row else (0, [])
    console.print(
        f"replay run {run_id}: {alarms} alarm(s); see: suvnet alarms list --all --run {run_id}"
    )
    for p in problems:
        console.print(f"[red]error:[/red] {p}", markup=True, highlight=False)
    if problems:
        console.print(
            f"{len(problems)} rule(s) watched nothing in this window: their alarms are missing "
            "from the run (see docs/alarms.md, 'Rules that watch nothing')"
        )
        raise typer.Exit(1)


# ------------------------------------------------------------------ rules
def load_rules_file(conn: Conn, path: Path) -> int:
    """Create or update rules (matched by code) and operator positions from a YAML file."""
    from pydantic import ValidationError

    from alarms.store import PositionIn, RuleIn, save_position, save_rule

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RuleConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(doc, dict):
        raise RuleConfigError(f"{path}: a rules file is a mapping with positions: and rules:")
    n = 0
    with conn.transaction():
        for i, pos in enumerate(doc.get("positions", []) or [], 1):
            try:
                save_position(conn, PositionIn.model_validate(pos))
            except ValidationError as exc:
                raise RuleConfigError(f"{path}: position #{i}: {_first_error(exc)}") from exc
        for i, r in enumerate(doc.get("rules", []) or [], 1):
            code = r.get("code", "?") if isinstance(r, dict) else "?"
            where = f"{path}: rule #{i} ({code})"
            try:
                save_rule(conn, RuleIn.model_validate(r))
            except ValidationError as exc:
                raise RuleConfigError(f"{where}: {_first_error(exc)}") from exc
            except RuleConfigError as exc:
                raise RuleConfigError(f"{where}: {exc}", exc.field) from exc
            n += 1
    return n


def _first_error(exc: Any) -> str:
    e = exc.errors()[0]
    field = ".".join(str(p) for p in e["loc"])
    msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
    return f"{field}: {msg}" if field else str(msg)


@rules_app.command("load")
def rules_load(path: Path) -> None:
    """Create or update alarm rules from a YAML file (see docs/alarms.md for the format)."""
    with _db() as conn:
        n = load_rules_file(conn, path)
    console.print(f"{n} rule(s) loaded from {path}")


@rules_app.command("list")
def rules_list() -> None:
    """List the alarm rules."""
    with _db() as conn:
        rows = conn.execute(
            "SELECT r.code, r.kind, r.priority, r.limit_value, r.unit, r.enabled, "
            "coalesce(d.code || '/' || p.name, z.code, '') FROM alarm_rules r "
            "LEFT JOIN points p ON p.id = r.point_id LEFT JOIN devices d ON d.id = p.device_id "
            "LEFT JOIN zones z ON z.id = r.zone_id ORDER BY r.code"
        ).fetchall()
    t = Table("code", "kind", "priority", "limit", "watches", "enabled")
    for c, k, pr, lim, unit, en, w in rows:
        t.add_row(c, k, pr, "" if lim is None else f"{lim:g} {unit}", w, "yes" if en else "no")
    console.print(t)

"""What one evaluation pass shares between the rule evaluators: the context, the running
totals, and how a signal of an evaluator becomes a lifecycle transition in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from alarms import lifecycle as lc
from alarms.rules import RuleConfig, Signal
from alarms.store import Conn, StateRow, lock_state, save_state, to_ts, write_transition

HEALTH = "health"
"""Subject of a rule's health alarm: the rule cannot find its points, or they send nothing."""


@dataclass
class PassResult:
    rules: int = 0
    samples: int = 0
    transitions: int = 0
    locked_elsewhere: int = 0
    more: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class Ctx:
    """What one pass knows: the connection, the time window and the running totals."""

    conn: Conn
    start: datetime
    until: datetime | None
    now: datetime
    batch: int
    res: PassResult
    run_id: int = 0

    @property
    def live(self) -> bool:
        return self.run_id == 0


def apply_signal(conn: Conn, rule: RuleConfig, st: StateRow, sig: Signal, res: PassResult) -> None:
    ts = to_ts(sig.ts)
    if sig.kind == "suppress":
        tr = lc.suppress(st.point, sig.on, ts, sig.message)
        if tr is not None:
            write_transition(conn, rule, st, tr, value=sig.value, message=sig.message)
            res.transitions += 1
        return
    tr = lc.condition(st.point, sig.on, ts)
    if tr is None:
        return
    chattering = False
    if sig.on:
        p = rule.params
        acts = [
            float(t) for t in st.extra.get("_acts", []) if sig.ts - float(t) < p.chatter_window_s
        ]
        acts.append(sig.ts)
        st.extra["_acts"] = acts[-(p.chatter_count * 2) :]
        chattering = lc.is_chattering(acts, sig.ts, p.chatter_window_s, p.chatter_count)
    write_transition(
        conn, rule, st, tr, value=sig.value, message=sig.message, chattering=chattering
    )
    res.transitions += 1


def set_health(
    ctx: Ctx, rule: RuleConfig, st: StateRow, bad: bool, ts: datetime, message: str
) -> None:
    """Raise or clear the rule's health alarm (``<rule>:health``), live only.

    The rule's own row remembers the health (``_health``), so the health row is locked only
    when it changes."""
    if not ctx.live or bool(st.extra.get("_health", False)) == bad:
        return
    sub = lock_state(ctx.conn, rule.id, st.run_id, HEALTH, skip_locked=False)
    assert sub is not None
    msg = message if bad else "the rule's points send readings again"
    apply_signal(ctx.conn, rule, sub, Signal("condition", bad, ts.timestamp(), None, msg), ctx.res)
    save_state(ctx.conn, sub, ctx.now)
    st.extra["_health"] = bad

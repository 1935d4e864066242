"""The back office's alarm page: the open alarms, most urgent first, and the operator's
acknowledge and shelve buttons (the same action as the JSON API: :mod:`api.services.alarms`).

Everything is shown in the visitor's language: the priority, the state and the rule's kind
come from the catalogs; the alarm engine writes its messages in English, so the messages of
a known pattern ("3.2 bar above limit 3 bar", "no readings from ... for more than 2 h", and
the leak rule's "leak about 2.4 L/s (...); found by shape: demand stepped up ...", its size,
detector and detail each translated) are translated here, at display time, with a decimal
comma; any other message, or detail, is shown as it was written (the tables and the
translator are :mod:`alarms.messages`, shared with the notifications). Times are Tashkent
time, and the page says so."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape

from alarms import queries as aq
from alarms.messages import KIND, PRIORITY, STATE, translate_message
from api.deps import Conn, State, require
from api.errors import ApiError
from api.i18n import gettext_for, local_time
from api.security import ALARMS_HANDLE, ALARMS_READ, Principal
from api.services.alarms import OperatorAction, operator_action
from api.web.common import language, render
from assets.isolation_queries import LEAK_ALARM_KINDS

router = APIRouter(prefix="/staff", include_in_schema=False)
# kept whole on one line: a flow or a volume and its unit, in every language of the catalogs
# ("2,43 L/s", "2,43 л/с", "2,43 l/s", "2 086 м³"), a score ("z 6,3", "CUSUM 3,1") and a
# limit (">= 4")
_NUM = r"-?\d(?:[\d.,]*\d)?"
_KEEP_WHOLE = re.compile(
    rf"[-\d][\d\s.,]*\s(?:L/s|l/s|л/с|m³|м³)|\b(?:z|CUSUM)\s{_NUM}|(?<=\s)[<>]=?\s{_NUM}"
)
AlarmReader = Annotated[Principal, Depends(require(ALARMS_READ))]
AlarmHandler = Annotated[Principal, Depends(require(ALARMS_HANDLE))]


@router.get("/alarms")
async def alarms_page(
    *,
    request: Request,
    who: AlarmReader,
    conn: Conn,
    error: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    tr = gettext_for(language(request))
    rows = await aq.open_alarms_board(conn, 500)
    kinds: dict[str, str | None] = {}
    for a in rows:
        code = a["rule"]
        if code not in kinds:
            found = await aq.rule(conn, code)
            kinds[code] = None if found is None else str(found["kind"])
        kind = kinds[code]
        a["isolate"] = kind in LEAK_ALARM_KINDS  # the map's valve isolation for this alarm
        a["priority_text"] = tr.gettext(PRIORITY.get(a["priority"], a["priority"]))
        a["state_text"] = tr.gettext(STATE.get(a["state"], a["state"]))
        a["title"] = a.get("rule_name") or (
            tr.gettext(KIND[kind]) if kind in KIND else tr.gettext("Alarm")
        )
        a["message_html"] = figures_kept_whole(translate_message(a.get("message"), tr))
        a["raised_local"] = local_time(a["raised_at"])
    return render(
        request,
        "staff_alarms.html",
        who=who,
        alarms=rows,
        can_handle=who.role in ALARMS_HANDLE,
        error=error,
    )


async def _alarm_action(
    request: Request, who: Principal, conn: Conn, st: State, op: OperatorAction
) -> Response:
    """The action, then back to the alarm page (with the reason when it was refused)."""
    target = "/staff/alarms"
    try:
        await operator_action(conn, request, who, st, op)
    except ApiError as exc:
        target += "?" + urlencode({"error": exc.message})
    return RedirectResponse(target, status_code=303)


@router.post("/alarms/{alarm_id}/ack")
async def alarm_ack(
    *,
    request: Request,
    who: AlarmHandler,
    conn: Conn,
    st: State,
    alarm_id: int,
    comment: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    op = OperatorAction.of(alarm_id, "ack", who, comment or None, now=st.clock())
    return await _alarm_action(request, who, conn, st, op)


@router.post("/alarms/{alarm_id}/shelve")
async def alarm_shelve(
    *,
    request: Request,
    who: AlarmHandler,
    conn: Conn,
    st: State,
    alarm_id: int,
    comment: Annotated[str, Form(max_length=500)] = "",
    minutes: Annotated[int, Form(ge=1, le=10080)] = 60,
) -> Response:
    op = OperatorAction.of(
        alarm_id, "shelve", who, comment or None, now=st.clock(), minutes=minutes
    )
    return await _alarm_action(request, who, conn, st, op)


def figures_kept_whole(text: str) -> Markup:
    """``text`` escaped for HTML, with each flow and its unit kept on one line: a browser may
    break a line after the slash of a unit ("24,14 л/" at the end of a line, "с" on the next).
    A volume ("195 м³"), a score and its limit ("z 6,3", ">= 4") are kept whole the same way.
    """
    out: list[str] = []
    last = 0
    for m in _KEEP_WHOLE.finditer(text):
        out += [escape(text[last : m.start()]), Markup('<span class="nowrap">')]
        out += [escape(m.group()), Markup("</span>")]
        last = m.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)

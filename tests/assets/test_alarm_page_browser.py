"""What a dispatcher sees on the alarm page (/staff/alarms) with leak alarms, in Uzbek and
Russian, on a desktop and on a phone: the leak messages in the page's language, no word
broken letter by letter, nothing off the screen. Pictures go to $SUVNET_SCREENSHOTS."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alarms import leak as lk
from alarms import leakrule as lr
from api.security import Role
from tests.api.conftest import LiveServer, User
from tests.assets import test_isolation_browser as iso
from tests.assets.conftest import NOW
from tests.assets.test_isolation_browser import CHROMIUM, english, shots

# the isolation test's village, server and browser (module fixtures, used here by name)
village, server, browser = iso.village, iso.server, iso.browser

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")

# leak messages as the engine writes them (alarms/leakrule.py)
MESSAGES = [
    lr.open_message(
        lk.LeakSignal(
            "open", 0.0, "shape", lk.Size(2.26, 1.38, 3.14),
            "demand stepped up 2.26 L/s at 10:00 today and stayed up (z 8.4 > 8), against the "
            "shapes of the last 19 days",
        )
    ),
    lr.open_message(
        lk.LeakSignal(
            "open", 0.0, "balance", lk.Size(2.45, 1.2, 3.7),
            "balance: 2.45 L/s above its usual level (CUSUM 3.1 > 2)",
        )
    ),
    # a second leak under an open step alarm (alarms/leak.py, shape_new_z)
    lr.grown_message(
        lk.LeakSignal(
            "regrow", 0.0, "shape", lk.Size(7.66, 5.5, 9.8),
            "demand stepped up again 5.40 L/s at 14:00 yesterday (z 9.1 > 8)",
        )
    ),
    # a step under shape_z confirmed by the night after (shape_suspect_z)
    lr.open_message(
        lk.LeakSignal(
            "open", 0.0, "shape", lk.Size(2.6, 1.5, 3.7),
            "demand stepped up 2.49 L/s at 10:00 yesterday (z 7.7, under 8) and the night "
            "after was 4.50 L/s above its usual (z 2.8 >= 2)",
        )
    ),
    # found by the balance over the customer meters' read windows (window_z)
    lr.open_message(
        lk.LeakSignal(
            "open", 0.0, "window", lk.Size(2.89, 1.9, 3.9),
            "inflow over the customer meters' last read windows 24.14 L/s, 2.89 L/s above "
            "what their use predicts (z 6.3 >= 4), against the hours of the last 14 days",
        )
    ),
    # a new leak under an alarm whose estimate had faded to nothing
    lr.grown_message(
        lk.LeakSignal(
            "regrow", 0.0, "night", lk.Size(2.86, 1.88, 3.85),
            "raised for 1.37 L/s, which had faded to 0.00 L/s",
        )
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def leak_alarms(village: tuple[str, int, User]) -> list[int]:
    with psycopg.connect(village[0]) as conn:
        zone = conn.execute("SELECT id FROM zones WHERE code = 'DMA-S'").fetchone()
        assert zone is not None
        ids = []
        for i, msg in enumerate(MESSAGES):
            rule = conn.execute(
                "INSERT INTO alarm_rules (code, name, kind, zone_id, priority) "
                "VALUES (%s, '', 'leak', %s, 'high') RETURNING id",
                (f"leak-page-{i}", zone[0]),
            ).fetchone()
            assert rule is not None
            row = conn.execute(
                "INSERT INTO alarms (rule_id, subject, kind, priority, position_id, zone_id, "
                "state, raised_at, message) VALUES (%s, '', 'leak', 'high', 1, %s, 'unack', %s, "
                "%s) RETURNING id",
                (rule[0], zone[0], NOW - timedelta(minutes=20 + i), msg),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
        conn.commit()
    return ids


# inputs whose placeholder does not fit in them (a hint cut off in the middle of a word):
# the placeholder's width in the input's own font against the room inside its padding
CUT_HINTS = """() => { const c = document.createElement("canvas").getContext("2d");
  return Array.from(document.querySelectorAll("input[placeholder]")).filter(i => {
    const s = getComputedStyle(i); if (i.offsetParent === null) return false;
    c.font = s.font; const room = i.clientWidth - parseFloat(s.paddingLeft)
      - parseFloat(s.paddingRight);
    return c.measureText(i.placeholder).width > room + 0.5;
  }).map(i => i.placeholder + " (" + i.clientWidth + " px)"); }"""


# the number of line boxes of a cell's text (a word broken letter by letter makes many)
LINES = """el => { const r = document.createRange(); r.selectNodeContents(el);
  return new Set(Array.from(r.getClientRects()).map(b => Math.round(b.top))).size; }"""


@pytest.mark.parametrize("lang", ["uz", "uz_Cyrl", "ru"])
@pytest.mark.parametrize(("device", "width"), [("desktop", 1366), ("phone", 390)])
def test_leak_alarms_read_well_in_the_pages_language(
    server: LiveServer,
    village: tuple[str, int, User],
    leak_alarms: list[int],
    browser: Any,
    lang: str,
    device: str,
    width: int,
    tmp_path: Path,
) -> None:
    user = village[2]
    assert user.role == Role.DISPATCHER
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    iso.staff_sign_in(page, server.url, user.username, lang)
    page.goto(f"{server.url}/staff/alarms?lang={lang}")
    page.screenshot(path=str(shots(tmp_path) / f"alarms-leak-{lang}-{device}.png"), full_page=True)
    for alarm in leak_alarms:
        row = page.locator(f'tr[data-alarm="{alarm}"]')
        message = row.locator(".message").inner_text()
        assert re.search(r"\d,\d", message), message  # translated, with a decimal comma
        assert not english(message), (lang, message)
        for cell in ("td.priority", "td.state"):
            assert row.locator(cell).evaluate(LINES) <= 2, (lang, device, cell)
        assert row.locator("td.zone").evaluate(LINES) <= 1, (lang, device)  # DMA-S whole
        # each flow stays whole with its unit (not "24,14 л/" at a line's end, "с" after)
        flows = row.locator(".message .nowrap")
        assert flows.count() >= 1, (lang, message)
        for i in range(flows.count()):
            assert flows.nth(i).evaluate(LINES) == 1, (lang, device, flows.nth(i).inner_text())
    # nothing runs off the side of the screen, and every hint in a field can be read whole
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate(CUT_HINTS) == [], (lang, device)
    ctx.close()

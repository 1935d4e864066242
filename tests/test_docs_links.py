"""Every link between the README and docs/ leads somewhere: the file exists and, where the
link names a section (``#...``), that file has a heading of that name (GitHub's anchors)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache  # a page linked many times is read once
def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def test_anchor_follows_github() -> None:
    assert anchor("Sizing thresholds to a DMA") == "sizing-thresholds-to-a-dma"
    assert anchor("Legal: debtors by age of debt") == "legal-debtors-by-age-of-debt"
    assert anchor("What the gateways announced: `gateway_config`") == (
        "what-the-gateways-announced-gateway_config"
    )
    assert anchor("The alarm lifecycle (ISA-18.2 / IEC 62682)") == (
        "the-alarm-lifecycle-isa-182--iec-62682"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http:, mailto: ...: not ours to check
            continue
        path, _, section = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif section and dest.suffix == ".md" and section not in anchors(dest):
            broken.append(f"{target}: no heading #{section} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)

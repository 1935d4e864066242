"""Choosing where a time series comes from: raw readings or a rollup table (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Resolution = Literal["raw", "5m", "1h", "1d"]

TABLES: dict[Resolution, str] = {
    "raw": "readings",
    "5m": "readings_5m",
    "1h": "readings_1h",
    "1d": "readings_1d",
}

# The longest span each resolution serves when the caller asks for "auto".
AUTO_LIMITS: tuple[tuple[timedelta, Resolution], ...] = (
    (timedelta(hours=6), "raw"),
    (timedelta(days=3), "5m"),
    (timedelta(days=93), "1h"),
)

MAX_SPAN = timedelta(days=3660)


@dataclass(frozen=True)
class SeriesQuery:
    resolution: Resolution
    table: str


def choose_resolution(start: datetime, end: datetime, wanted: str = "auto") -> SeriesQuery:
    """Raw readings for up to 6 hours, 5-minute rollups up to 3 days, hourly up to 93 days,
    daily beyond. An explicit ``wanted`` resolution is used as asked."""
    if end <= start:
        raise ValueError("'to' must be later than 'from'")
    if end - start > MAX_SPAN:
        raise ValueError("the time range may be at most 10 years")
    if wanted != "auto":
        if wanted not in TABLES:
            raise ValueError("resolution must be auto, raw, 5m, 1h or 1d")
        res: Resolution = wanted  # type: ignore[assignment,unused-ignore]
        return SeriesQuery(res, TABLES[res])
    span = end - start
    for limit, r in AUTO_LIMITS:
        if span <= limit:
            return SeriesQuery(r, TABLES[r])
    return SeriesQuery("1d", TABLES["1d"])

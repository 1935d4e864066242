"""Read coalescing (pure): merge a device's points into as few Modbus reads as possible.

Points of one table are merged while the read stays within the profile's size limit (125
registers or 2000 bits at most) and the unused gap between neighbours is at most ``max_gap``.
When the device refuses a merged read (exception 2 or 3), :meth:`ReadPlanner.split` cuts it in
two and remembers the cut, so later plans never merge across it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge_agent.profiles import BIT_TABLES, Point, Profile, Table


@dataclass(frozen=True, slots=True)
class Read:
    """One Modbus read request covering ``points``."""

    table: Table
    address: int
    count: int
    points: tuple[Point, ...]

    def slice(self, values: Sequence[int] | Sequence[bool], point: Point) -> Sequence[int | bool]:
        lo = point.address - self.address
        return values[lo : lo + point.count]


def _make(table: Table, pts: Sequence[Point]) -> Read:
    start = pts[0].address
    end = max(p.end for p in pts)
    return Read(table, start, end - start, tuple(pts))


@dataclass
class ReadPlanner:
    """Plans the reads of one device and remembers the cuts learnt from refused reads."""

    profile: Profile
    cuts: set[tuple[str, int]] = field(default_factory=set)
    _cache: dict[frozenset[str], tuple[Read, ...]] = field(default_factory=dict)

    def limit(self, table: str) -> int:
        if table in BIT_TABLES:
            return self.profile.max_bits_per_read
        return self.profile.max_registers_per_read

    def _cut_between(self, table: str, lo: int, hi: int) -> bool:
        return any(t == table and lo < a <= hi for t, a in self.cuts)

    def plan(self, points: Iterable[Point]) -> tuple[Read, ...]:
        pts = list(points)
        key = frozenset(p.name for p in pts)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        reads: list[Read] = []
        by_table: dict[Table, list[Point]] = {}
        for p in pts:
            by_table.setdefault(p.table, []).append(p)
        gap_limit = self.profile.max_gap
        for table in sorted(by_table):
            group = sorted(by_table[table], key=lambda q: q.address)
            limit = self.limit(table)
            # bits are cheap: allow a 16x wider gap in coil/discrete tables
            gap = gap_limit * 16 if table in BIT_TABLES else gap_limit
            cur: list[Point] = []
            for p in group:
                if cur:
                    start = cur[0].address
                    end = max(q.end for q in cur)
                    if (
                        p.end - start > limit
                        or p.address - end > gap
                        or self._cut_between(table, cur[-1].address, p.address)
                    ):
                        reads.append(_make(table, cur))
                        cur = []
                cur.append(p)
            if cur:
                reads.append(_make(table, cur))
        result = tuple(reads)
        self._cache[key] = result
        return result

    def split(self, read: Read) -> tuple[Read, Read] | None:
        """Cut a refused read in two and remember the cut; None for a single point."""
        if len(read.points) < 2:
            return None
        mid = len(read.points) // 2
        left, right = read.points[:mid], read.points[mid:]
        self.cuts.add((read.table, right[0].address))
        self._cache.clear()
        return _make(read.table, left), _make(read.table, right)

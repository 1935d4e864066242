"""Capped exponential backoff with full jitter, used by every reconnect loop."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackoffPolicy:
    """Parameters of a capped exponential backoff.

    ``delay(n)`` for the n-th consecutive failure (n >= 1) is drawn uniformly from
    ``[base * jitter_floor, min(cap, base * factor ** (n - 1))]``.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter_floor: float = 0.5

    def ceiling(self, attempt: int) -> float:
        exp = max(0, attempt - 1)
        # avoid float overflow for very long outages
        if exp > 64:
            return self.cap
        return float(min(self.cap, self.base * self.factor**exp))


@dataclass
class Backoff:
    """Stateful helper: call :meth:`next_delay` after a failure and :meth:`reset` on success."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        self.attempt += 1
        hi = self.policy.ceiling(self.attempt)
        lo = min(hi, self.policy.base * self.policy.jitter_floor)
        return self.rng.uniform(lo, hi)

    def reset(self) -> None:
        self.attempt = 0

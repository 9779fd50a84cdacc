"""Per-client rate limits: a token bucket per client name, charged one token per JSON-RPC call (a batch of 1,000
calls costs 1,000), refilled at `rate` tokens per second up to `burst`. A request that would overdraw the bucket
is refused whole (HTTP 429 with Retry-After): a client never gets half a batch answered.

Why a token bucket (proxyd counts requests per fixed window): it allows a client's legitimate bursts (a
disbursal's batch) while holding its average to `rate`, and it never lets a client send two windows' worth at a
window's edge."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class Bucket:
    rate: float  # tokens per second
    burst: int  # capacity
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, cost: int, now: float | None = None) -> float:
        """Takes `cost` tokens and returns 0, or takes nothing and returns the seconds to wait before the same
        request would pass (math.inf if `cost` exceeds the burst: it never will)."""
        now = time.monotonic() if now is None else now
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        if cost > self.burst:
            return math.inf
        return (cost - self.tokens) / self.rate


class RateLimits:
    """One Bucket per client name, created on first use with the client's own rate/burst or the defaults."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, Bucket] = {}

    def take(self, client: str, cost: int, rate: float | None = None, burst: int | None = None) -> float:
        bucket = self._buckets.get(client)
        want_rate, want_burst = rate or self.rate, burst or self.burst
        if bucket is None or (bucket.rate, bucket.burst) != (want_rate, want_burst):
            bucket = self._buckets[client] = Bucket(want_rate, want_burst)
        return bucket.take(cost)

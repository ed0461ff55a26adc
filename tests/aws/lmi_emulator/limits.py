"""Account quotas and request rates the emulator enforces, with AWS's figures as defaults.

AWS, "Lambda Managed Instances quotas" (developer guide):

- capacity providers per account: 1,000 (``CapacityProviderLimitExceededException``);
- function versions per capacity provider: 100, "cannot be increased"
  (``FunctionVersionsPerCapacityProviderLimitExceededException``);
- "The read and write API rate limits apply to all capacity provider operations combined":
  15 read requests and 1 write request per second, "cannot be increased". Over the rate, Lambda
  answers ``TooManyRequestsException`` (HTTP 429, ``Reason: CallerRateLimitExceeded``, a
  ``Retry-After`` header in seconds), the throttling error of every Lambda operation in the model.

Each figure can be changed through the environment or the control endpoint (see ``control``);
a rate of 0 turns that limit off. Rates are token buckets per account and region that hold one
second's worth of requests (at least one), so a client that keeps to the rate is never refused
and a burst beyond it is.
"""

from __future__ import annotations

import math
import os
import threading
import time

# CapacityProviderLimitExceededException beyond this many providers per account and region.
max_capacity_providers = int(os.environ.get("LMI_EMULATOR_MAX_CAPACITY_PROVIDERS", "1000"))

# FunctionVersionsPerCapacityProviderLimitExceededException beyond this many function versions
# (including $LATEST) attached to one provider.
max_versions_per_capacity_provider = int(
    os.environ.get("LMI_EMULATOR_MAX_VERSIONS_PER_CAPACITY_PROVIDER", "100")
)

# Requests per second for all capacity-provider read operations (Get, List,
# ListFunctionVersionsByCapacityProvider) and for all write operations (Create, Update, Delete),
# each combined per account and region.
capacity_provider_reads_per_second = float(
    os.environ.get("LMI_EMULATOR_CAPACITY_PROVIDER_READS_PER_SECOND", "15")
)
capacity_provider_writes_per_second = float(
    os.environ.get("LMI_EMULATOR_CAPACITY_PROVIDER_WRITES_PER_SECOND", "1")
)

READ = "read"
WRITE = "write"

_lock = threading.Lock()
# (account, region, kind) -> (tokens, last refill time)
_buckets: dict[tuple[str, str, str], tuple[float, float]] = {}


def rate(kind: str) -> float:
    return capacity_provider_reads_per_second if kind == READ else capacity_provider_writes_per_second


def set_rates(reads: float | None = None, writes: float | None = None) -> None:
    global capacity_provider_reads_per_second, capacity_provider_writes_per_second
    for value in (reads, writes):
        if value is not None and (value < 0 or not math.isfinite(value)):
            raise ValueError("a request rate must be a finite number >= 0 (0: no limit)")
    with _lock:
        if reads is not None:
            capacity_provider_reads_per_second = reads
        if writes is not None:
            capacity_provider_writes_per_second = writes
        _buckets.clear()


def take(account: str, region: str, kind: str) -> float | None:
    """Takes one request from the bucket; ``None`` when allowed, else the seconds until the next
    request would be."""
    per_second = rate(kind)
    if per_second <= 0:
        return None
    capacity = max(1.0, per_second)
    now = time.monotonic()
    with _lock:
        tokens, last = _buckets.get((account, region, kind), (capacity, now))
        tokens = min(capacity, tokens + (now - last) * per_second)
        if tokens >= 1.0:
            _buckets[(account, region, kind)] = (tokens - 1.0, now)
            return None
        _buckets[(account, region, kind)] = (tokens, now)
        return (1.0 - tokens) / per_second

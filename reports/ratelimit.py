"""Request rate limits for the API and uploads: a fixed window per caller, counted in the cache.

Each caller (an API token, a user, or a client address when there is neither) may make
``limit`` requests per ``window`` seconds; the next one is answered 429 with Retry-After. The
cache is Redis when REDIS_URL is set, so every web process counts together (add/incr are
atomic there); in the embedded mode each process counts for itself, which is all it has.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.core.cache import cache

logger = logging.getLogger("reports.security")


def now() -> float:
    """The clock windows are cut by (tests move it instead of waiting)."""
    return time.time()


def hit(scope: str, caller: str, limit: int, window: int) -> int:
    """Count one request; 0 when it is allowed, else the seconds until the caller may try again."""
    if limit <= 0:
        return 0  # no limit configured
    start = int(now() // window) * window
    digest = hashlib.sha256(caller.encode()).hexdigest()[:32]  # callers are user input
    count = increment(f"ratelimit:{scope}:{digest}:{start}", window + 5)
    if count <= limit:
        return 0
    if count == limit + 1:  # once per window and caller, not once per refused request
        logger.warning("rate limit: %s over %d requests in %ds (%s)", scope, limit, window, caller)
    return max(1, math.ceil(start + window - now()))


def increment(key: str, timeout: int) -> int:
    """Add one to the counter at ``key`` (created expiring in ``timeout`` seconds); its new value."""
    if cache.add(key, 1, timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: a new one
        cache.set(key, 1, timeout)
        return 1


def client_address(request) -> str:
    # REMOTE_ADDR only: a forwarded-for header is whatever the client wants it to be.
    return request.META.get("REMOTE_ADDR") or "unknown"

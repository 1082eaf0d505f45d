"""Rate limits, counted in the cache: requests to the API and uploads per caller, and failed logins.

Requests: a fixed window per caller.
each caller (an API token, a user, or a client address when there is neither) may make
``limit`` requests per ``window`` seconds; the next one is answered 429 with Retry-After. The
cache is Redis when REDIS_URL is set, so every web process counts together (add/incr are
atomic there); in the embedded mode each process counts for itself, which is all it has.

Logins: LOGIN_MAX_FAILURES failures within LOGIN_LOCKOUT_MINUTES lock that username (or address)
out for LOGIN_LOCKOUT_MINUTES, correct passwords included, so guessing cannot go on in the
background of a real user's logins. Counting by address as well stops one client trying a
password against many usernames.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("reports.security")


def now() -> float:
    """The clock windows and lockouts are measured by (tests move it instead of waiting)."""
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


# --- login throttling ------------------------------------------------------------------------


def _login_keys(username: str, address: str) -> list[str]:
    # Hashed: usernames are user input, and some cache backends refuse odd characters in keys.
    user = hashlib.sha256(username.strip().lower().encode()).hexdigest()
    addr = hashlib.sha256(address.encode()).hexdigest()
    return [f"login-throttle:user:{user}", f"login-throttle:addr:{addr}"]


def _lockout_window() -> int:
    return settings.LOGIN_LOCKOUT_MINUTES * 60


def login_locked_minutes(username: str, address: str) -> int:
    """Whole minutes until attempts for this username or from this address are allowed again; 0 if they are."""
    remaining = 0.0
    for key in _login_keys(username, address):
        until = cache.get(f"{key}:locked")
        if until is not None:
            remaining = max(remaining, until - now())
    return math.ceil(remaining / 60) if remaining > 0 else 0


def record_login_failure(username: str, address: str, what: str = "password") -> int:
    """Count a failed attempt; returns the lockout minutes it started (0 if none)."""
    logger.warning("login failed (%s) for %r from %s", what, username, address)
    for key in _login_keys(username, address):
        if increment(key, _lockout_window()) >= settings.LOGIN_MAX_FAILURES:
            cache.set(f"{key}:locked", now() + _lockout_window(), _lockout_window())
            cache.delete(key)
            logger.warning(
                "login locked for %s minutes: %s for %r from %s",
                settings.LOGIN_LOCKOUT_MINUTES,
                "username" if ":user:" in key else "address",
                username,
                address,
            )
    return login_locked_minutes(username, address)


def record_lockout_hit(username: str, address: str) -> None:
    logger.warning("login refused while locked out for %r from %s", username, address)


def clear_login_failures(username: str) -> None:
    """A successful login forgets the username's failures (not the address's: it may be guessing others)."""
    cache.delete(_login_keys(username, "")[0])

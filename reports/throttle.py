"""Login throttling: failed attempts counted in the cache per username and per client address.

LOGIN_MAX_FAILURES failures within LOGIN_LOCKOUT_MINUTES lock that username (or address) out
for LOGIN_LOCKOUT_MINUTES, correct passwords included, so guessing cannot go on in the
background of a real user's logins. Counting by address as well stops one client trying a
password against many usernames. The cache is Redis when REDIS_URL is set, so every worker
sees the same counts; counters use add/incr, which are atomic there.
"""

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

from .ratelimit import increment

logger = logging.getLogger("reports.security")


def now() -> float:
    """The clock locks are checked against (tests move it instead of waiting out the window)."""
    return time.time()


def _keys(username: str, address: str) -> list[str]:
    # Hashed: usernames are user input, and some cache backends refuse odd characters in keys.
    user = hashlib.sha256(username.strip().lower().encode()).hexdigest()
    addr = hashlib.sha256(address.encode()).hexdigest()
    return [f"login-throttle:user:{user}", f"login-throttle:addr:{addr}"]


def _window() -> int:
    return settings.LOGIN_LOCKOUT_MINUTES * 60


def locked_minutes(username: str, address: str) -> int:
    """Whole minutes until attempts for this username or from this address are allowed again; 0 if they are."""
    remaining = 0.0
    for key in _keys(username, address):
        until = cache.get(f"{key}:locked")
        if until is not None:
            remaining = max(remaining, until - now())
    return math.ceil(remaining / 60) if remaining > 0 else 0


def record_failure(username: str, address: str, what: str = "password") -> int:
    """Count a failed attempt; returns the lockout minutes it started (0 if none)."""
    logger.warning("login failed (%s) for %r from %s", what, username, address)
    for key in _keys(username, address):
        if increment(key, _window()) >= settings.LOGIN_MAX_FAILURES:
            cache.set(f"{key}:locked", now() + _window(), _window())
            cache.delete(key)
            logger.warning(
                "login locked for %s minutes: %s for %r from %s",
                settings.LOGIN_LOCKOUT_MINUTES,
                "username" if ":user:" in key else "address",
                username,
                address,
            )
    return locked_minutes(username, address)


def record_lockout_hit(username: str, address: str) -> None:
    logger.warning("login refused while locked out for %r from %s", username, address)


def clear(username: str) -> None:
    """A successful login forgets the username's failures (not the address's: it may be guessing others)."""
    cache.delete(_keys(username, "")[0])

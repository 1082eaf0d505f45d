"""Response headers and per-request state every page needs."""

import zoneinfo

from django.conf import settings
from django.utils import timezone


def content_security_policy(get_response):
    """Send the Content-Security-Policy from settings on every response that has none."""

    def middleware(request):
        response = get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

    return middleware


def user_time_zone(get_response):
    """Show dates in the user's time zone (stored ones are UTC): their profile's, else the site's."""

    def middleware(request):
        name = ""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            profile = getattr(user, "profile", None)
            name = profile.time_zone if profile else ""
        try:
            timezone.activate(zoneinfo.ZoneInfo(name)) if name else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        return get_response(request)

    return middleware

"""Template context every page gets: the user's organizations and the one they work in."""

from reports.models import Organization
from reports.tenancy.access import SESSION_KEY


def organizations(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    mine = list(Organization.objects.for_user(user).order_by("name"))
    chosen = request.session.get(SESSION_KEY)
    current = next((org for org in mine if org.pk == chosen), mine[0] if mine else None)
    return {"my_organizations": mine, "current_organization": current}

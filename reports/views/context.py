"""Template context every page gets: the user's organizations and the one they work in."""

from reports.tenancy.access import current_organization, my_organizations


def organizations(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    mine = my_organizations(user)
    return {
        "my_organizations": mine,
        "current_organization": current_organization(request, mine),
        # An undo for the last one-click change, offered once beside its message.
        "undo": request.session.pop("undo", None) if hasattr(request, "session") else None,
    }

"""Who may do what in an organization: owner > admin > viewer.

Owners do everything, members and deletion included; admins manage domains, mailboxes,
tokens, policy and alerts; viewers read. Superusers act as owners everywhere. A user
below the role a page needs gets 404, as an outsider does: neither learns more.
"""

from django.http import Http404
from django.shortcuts import get_object_or_404

from reports.models import Membership, Organization

RANK = {Membership.Role.VIEWER: 0, Membership.Role.ADMIN: 1, Membership.Role.OWNER: 2}
SESSION_KEY = "organization"


def role_in(user, organization: Organization) -> str | None:
    """The user's role in the organization, or None for outsiders."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Membership.Role.OWNER
    return Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()


def has_role(user, organization: Organization, minimum: str) -> bool:
    role = role_in(user, organization)
    return role is not None and RANK[role] >= RANK[minimum]


def organization_for(request, slug: str, minimum: str = Membership.Role.VIEWER) -> Organization:
    """The organization named in the URL if the user holds at least ``minimum`` in it, else 404."""
    organization = get_object_or_404(Organization.objects.for_user(request.user), slug=slug)
    if not has_role(request.user, organization, minimum):
        raise Http404(f"this needs the {minimum} role")
    return organization


def my_organizations(user) -> list[Organization]:
    """The organizations the user works in, by name (every one, for a superuser)."""
    return list(Organization.objects.for_user(user).order_by("name"))


def current_organization(request, mine: list[Organization] | None = None) -> Organization | None:
    """The organization the user switched to (kept in the session), else their first one.
    ``mine`` is ``my_organizations(request.user)`` when the caller has it already."""
    mine = my_organizations(request.user) if mine is None else mine
    chosen = request.session.get(SESSION_KEY)
    return next((organization for organization in mine if organization.pk == chosen), mine[0] if mine else None)

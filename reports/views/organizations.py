"""An organization's first minutes: created (by a superuser, or anyone where the operator allows
it), named, and given its first domain, all without the Django admin."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from reports.intake import claims
from reports.lib import names
from reports.models import Membership
from reports.tenancy import organizations
from reports.tenancy.access import SESSION_KEY, has_role, organization_for


@login_required
def create(request):
    """Name a new organization; its creator owns it and works in it from then on."""
    if not organizations.may_create(request.user):
        raise Http404("creating organizations is for operators here")
    error = ""
    if request.method == "POST":
        try:
            organization = organizations.create(request.POST.get("name", ""), request.user, request)
        except ValueError as exc:
            error = str(exc)
        else:
            request.session[SESSION_KEY] = organization.pk
            messages.success(request, f"{organization.name} created. Add its first domain.")
            return redirect("home")
    return render(request, "org/new.html", {"error": error, "name": request.POST.get("name", "")})


@login_required
@require_POST
def get_started(request, slug: str):
    """The home page's first steps in one form: the organization's name and its first domain."""
    organization = organization_for(request, slug, Membership.Role.ADMIN)
    name = request.POST.get("organization_name", "").strip()
    if name and name != organization.name and has_role(request.user, organization, Membership.Role.OWNER):
        try:
            organization = organizations.rename(organization, name, request)
        except ValueError as exc:
            messages.error(request, f"Not renamed: {exc}")
            return redirect("home")
    try:
        domain, claimed = claims.add_domain(organization, request.POST.get("domain", ""), request)
    except (names.InvalidName, claims.DomainTaken) as exc:
        messages.error(request, f"Not added: {exc}")
        return redirect("home")
    messages.success(request, f"{domain.name} added: {claimed} earlier report{'s' if claimed != 1 else ''} claimed.")
    return redirect("domain-setup", name=domain.name)


urlpatterns = [
    path("orgs/new/", create, name="org-new"),
    path("orgs/<slug:slug>/get-started/", get_started, name="org-get-started"),
]

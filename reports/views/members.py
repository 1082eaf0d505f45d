"""Members of an organization: the list, invitations, role changes and removal; switching organizations.

Every member sees who else belongs; only owners invite, change roles, remove and revoke. A member
may always leave, except the last owner: an organization must keep someone who can manage it.
"""

import smtplib

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.mail import EmailMultiAlternatives
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from reports.models import Invitation, Membership, Organization
from reports.tenancy import invitations, members
from reports.tenancy.access import SESSION_KEY, has_role, organization_for
from reports.tenancy.invitations import InvitationError

OWNER = Membership.Role.OWNER


@login_required
def member_list(request, slug: str):
    organization = organization_for(request, slug)
    now = timezone.now()
    pending = list(
        Invitation.objects.filter(organization=organization, accepted_at=None, revoked_at=None).select_related(
            "invited_by"
        )
    )
    for invitation in pending:
        invitation.expires = members.expires(invitation)
        invitation.expired = invitation.expires <= now
    context = {
        "organization": organization,
        "members": Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__username"),
        "invitations": pending,
        "is_owner": has_role(request.user, organization, OWNER),
        "roles": Membership.Role.choices,
        "days": settings.INVITATION_DAYS,
    }
    return render(request, "org/members.html", context)


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices)


def _send_invitation(invitation: Invitation) -> None:
    organization = invitation.organization
    context = {
        "invitation": invitation,
        "organization": organization,
        "role": invitation.get_role_display(),
        "inviter": invitation.invited_by.get_username() if invitation.invited_by else "",
        "link": settings.SITE_URL.rstrip("/") + reverse("invitation", args=[invitations.token_for(invitation)]),
        "days": settings.INVITATION_DAYS,
    }
    # The name is the organization's own text: folded to one line, it cannot add a header.
    subject = f"[dmarcdash] You are invited to join {' '.join(organization.name.split())}"
    mail = EmailMultiAlternatives(
        subject,
        render_to_string("org/email/invitation.txt", context),
        settings.DEFAULT_FROM_EMAIL,
        [invitation.email],
    )
    mail.attach_alternative(render_to_string("org/email/invitation.html", context), "text/html")
    mail.send()


@login_required
@require_POST
def invite(request, slug: str):
    organization = organization_for(request, slug, OWNER)
    form = InviteForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        messages.error(request, f"No invitation sent: {problems}")
        return redirect("org-members", slug=organization.slug)
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    try:
        invitation = members.invite(organization, email, role, request, send=_send_invitation)
    except members.MemberError as exc:
        messages.error(request, str(exc))
        return redirect("org-members", slug=organization.slug)
    except (smtplib.SMTPException, OSError) as exc:
        messages.error(request, f"No invitation sent: the email to {email} could not be sent ({exc}).")
        return redirect("org-members", slug=organization.slug)
    messages.success(request, f"Invitation sent to {email} as {invitation.get_role_display().lower()}.")
    return redirect("org-members", slug=organization.slug)


@login_required
@require_POST
def change_role(request, slug: str, member_id: int):
    organization = organization_for(request, slug, OWNER)
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, organization=organization)
    role = request.POST.get("role", "")
    try:
        changed = members.change_role(membership, role, request)
    except members.MemberError as exc:
        messages.error(request, f"Role not changed: {exc}")
        return redirect("org-members", slug=organization.slug)
    if changed:
        label = Membership.Role(role).label.lower()
        messages.success(request, f"{membership.user.get_username()} is now {label}.")
    return redirect("org-members", slug=organization.slug)


@login_required
@require_POST
def remove(request, slug: str, member_id: int):
    organization = organization_for(request, slug)
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, organization=organization)
    leaving = membership.user_id == request.user.pk
    if not leaving and not has_role(request.user, organization, OWNER):
        raise Http404("only owners remove others")
    try:
        members.remove(membership, request)
    except members.MemberError as exc:
        messages.error(request, f"Not removed: {exc}")
        return redirect("org-members", slug=organization.slug)
    if leaving:
        if request.session.get(SESSION_KEY) == organization.pk:
            del request.session[SESSION_KEY]
        messages.success(request, f"You left {organization.name}.")
        return redirect("home")
    messages.success(request, f"{membership.user.get_username()} was removed from {organization.name}.")
    return redirect("org-members", slug=organization.slug)


@login_required
@require_POST
def revoke(request, slug: str, invitation_id: int):
    organization = organization_for(request, slug, OWNER)
    invitation = get_object_or_404(Invitation, pk=invitation_id, organization=organization)
    if members.revoke_invitation(invitation, request):
        messages.success(request, f"The invitation for {invitation.email} was revoked: its link no longer works.")
    else:
        messages.error(request, f"The invitation for {invitation.email} was already used or revoked.")
    return redirect("org-members", slug=organization.slug)


def invitation(request, token: str):
    try:
        found = invitations.invitation_from(token)
    except InvitationError as exc:
        return render(request, "org/invitation.html", {"error": str(exc)}, status=410)
    form = None
    if not request.user.is_authenticated:
        form = UserCreationForm(request.POST if request.method == "POST" else None)
        # The email comes from the invitation; set before validation so the password checks see it.
        form.instance.email = found.email
    if request.method == "POST" and (form is None or form.is_valid()):
        try:
            claimed, user, joined = members.accept(
                token, request, user_for=(form.save if form is not None else lambda: request.user)
            )
        except InvitationError as exc:
            return render(request, "org/invitation.html", {"error": str(exc)}, status=410)
        organization = claimed.organization
        if form is not None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_KEY] = organization.pk
        if joined:
            messages.success(request, f"Welcome to {organization.name}: you joined as {claimed.get_role_display()}.")
        else:
            messages.success(request, f"You were already a member of {organization.name}; your role is unchanged.")
        return redirect("home")
    context = {
        "invitation": found,
        "organization": found.organization,
        "expires": members.expires(found),
        "form": form,
        "token": token,
        "already_member": request.user.is_authenticated
        and Membership.objects.filter(user=request.user, organization=found.organization).exists(),
    }
    return render(request, "org/invitation.html", context)


@login_required
@require_POST
def switch(request):
    chosen = request.POST.get("organization", "")
    if not chosen.isdigit():
        raise Http404("no such organization")
    organization = get_object_or_404(Organization.objects.for_user(request.user), pk=int(chosen))
    request.session[SESSION_KEY] = organization.pk
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect("home")


urlpatterns = [
    path("orgs/switch/", switch, name="org-switch"),
    path("orgs/<slug:slug>/members/", member_list, name="org-members"),
    path("orgs/<slug:slug>/members/invite/", invite, name="org-invite"),
    path("orgs/<slug:slug>/members/<int:member_id>/role/", change_role, name="org-member-role"),
    path("orgs/<slug:slug>/members/<int:member_id>/remove/", remove, name="org-member-remove"),
    path("orgs/<slug:slug>/invitations/<int:invitation_id>/revoke/", revoke, name="org-invitation-revoke"),
    path("invitations/<str:token>/", invitation, name="invitation"),
]

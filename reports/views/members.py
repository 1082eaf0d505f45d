"""Members of an organization: the list, invitations, role changes and removal; switching organizations.

Every member sees who else belongs; only owners invite, change roles, remove and revoke. A member
may always leave, except the last owner: an organization must keep someone who can manage it.
"""

import datetime
import smtplib

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from reports.models import AlertSubscription, Invitation, Membership, Organization
from reports.tenancy import audit, invitations
from reports.tenancy.access import SESSION_KEY, has_role, organization_for
from reports.tenancy.invitations import InvitationError

OWNER = Membership.Role.OWNER
LAST_OWNER = "{} is the only owner of {}: make another member an owner first."


def _expires(invitation: Invitation) -> datetime.datetime:
    return invitation.created_at + datetime.timedelta(days=settings.INVITATION_DAYS)


def _lock(organization: Organization) -> None:
    """Serialize member changes per organization, so two owners demoting each other at once
    cannot leave it with none, and two invitations for one address cannot both be created."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _owner_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=OWNER).count()


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
        invitation.expires = _expires(invitation)
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
        "link": f"{settings.SITE_URL.rstrip('/')}/invitations/{invitations.token_for(invitation)}/",
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
    fresh = timezone.now() - datetime.timedelta(days=settings.INVITATION_DAYS)
    try:
        # The email is sent inside the transaction: if it cannot be sent, no invitation is left
        # behind that nobody received and that would block inviting the address again.
        with transaction.atomic():
            _lock(organization)
            if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
                messages.error(request, f"{email} is already a member of {organization.name}.")
                return redirect("org-members", slug=organization.slug)
            pending = Invitation.objects.filter(
                organization=organization, email__iexact=email, accepted_at=None, revoked_at=None, created_at__gt=fresh
            )
            if pending.exists():
                messages.error(request, f"{email} already has a pending invitation: revoke it to send a new one.")
                return redirect("org-members", slug=organization.slug)
            invitation = Invitation.objects.create(
                organization=organization, email=email, role=role, invited_by=request.user
            )
            audit.record(request, organization, "member.invited", email, after={"email": email, "role": role})
            _send_invitation(invitation)
    except (smtplib.SMTPException, OSError) as exc:
        messages.error(request, f"No invitation sent: the email to {email} could not be sent ({exc}).")
        return redirect("org-members", slug=organization.slug)
    messages.success(request, f"Invitation sent to {email} as {invitation.get_role_display().lower()}.")
    return redirect("org-members", slug=organization.slug)


@login_required
@require_POST
def change_role(request, slug: str, member_id: int):
    organization = organization_for(request, slug, OWNER)
    role = request.POST.get("role", "")
    if role not in Membership.Role.values:
        messages.error(request, "Role not changed: choose owner, admin or viewer.")
        return redirect("org-members", slug=organization.slug)
    with transaction.atomic():
        _lock(organization)
        membership = get_object_or_404(
            Membership.objects.select_related("user"), pk=member_id, organization=organization
        )
        name = membership.user.get_username()
        if membership.role == role:
            return redirect("org-members", slug=organization.slug)
        if membership.role == OWNER and _owner_count(organization) == 1:
            messages.error(request, "Role not changed: " + LAST_OWNER.format(name, organization.name))
            return redirect("org-members", slug=organization.slug)
        before = {"role": membership.role}
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record(request, organization, "member.role-changed", name, before=before, after={"role": role})
    messages.success(request, f"{name} is now {membership.get_role_display().lower()}.")
    return redirect("org-members", slug=organization.slug)


@login_required
@require_POST
def remove(request, slug: str, member_id: int):
    organization = organization_for(request, slug)
    with transaction.atomic():
        _lock(organization)
        membership = get_object_or_404(
            Membership.objects.select_related("user"), pk=member_id, organization=organization
        )
        leaving = membership.user_id == request.user.pk
        if not leaving and not has_role(request.user, organization, OWNER):
            raise Http404("only owners remove others")
        name = membership.user.get_username()
        if membership.role == OWNER and _owner_count(organization) == 1:
            who = "you are" if leaving else f"{name} is"
            messages.error(
                request,
                f"Not removed: {who} the only owner of {organization.name}: make another member an owner first.",
            )
            return redirect("org-members", slug=organization.slug)
        AlertSubscription.objects.filter(user=membership.user, organization=organization).delete()
        membership.delete()
        audit.record(
            request, organization, "member.removed", name, before={"user": name, "role": membership.role}, after={}
        )
    if leaving:
        if request.session.get(SESSION_KEY) == organization.pk:
            del request.session[SESSION_KEY]
        messages.success(request, f"You left {organization.name}.")
        return redirect("home")
    messages.success(request, f"{name} was removed from {organization.name}.")
    return redirect("org-members", slug=organization.slug)


@login_required
@require_POST
def revoke(request, slug: str, invitation_id: int):
    organization = organization_for(request, slug, OWNER)
    invitation = get_object_or_404(Invitation, pk=invitation_id, organization=organization)
    with transaction.atomic():
        # Conditional: an invitation accepted a moment ago stays accepted.
        revoked = Invitation.objects.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit.record(
                request,
                organization,
                "member.invitation-revoked",
                invitation.email,
                before={"email": invitation.email, "role": invitation.role},
            )
    if revoked:
        messages.success(request, f"The invitation for {invitation.email} was revoked: its link no longer works.")
    else:
        messages.error(request, f"The invitation for {invitation.email} was already used or revoked.")
    return redirect("org-members", slug=organization.slug)


def _claim(token: str) -> Invitation:
    """The invitation, locked for this transaction and still pending, else InvitationError.
    A second use of the same link waits for the lock, then finds it used."""
    invitation = invitations.invitation_from(token)
    locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
    if locked is None or locked.revoked_at is not None:
        raise InvitationError("This invitation was withdrawn.")
    if locked.accepted_at is not None:
        raise InvitationError("This invitation has already been used.")
    locked.organization = invitation.organization
    return locked


def _accept(request, invitation: Invitation, user) -> bool:
    """Join the user to the organization (in the caller's transaction); False if already a member."""
    organization = invitation.organization
    existing = Membership.objects.filter(user=user, organization=organization).first()
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    if existing is None:
        Membership.objects.create(user=user, organization=organization, role=invitation.role)
        if organization.subscribe_new_members:
            AlertSubscription.objects.get_or_create(user=user, organization=organization)
    role = existing.role if existing else invitation.role
    audit.record(
        request if request.user.is_authenticated else user,  # a new account is not logged in yet
        organization,
        "member.joined",
        user.get_username(),
        after={"user": user.get_username(), "role": role, "invitation": invitation.email}
        | ({"already_member": True} if existing else {}),
    )
    return existing is None


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
            with transaction.atomic():
                claimed = _claim(token)
                user = form.save() if form is not None else request.user
                joined = _accept(request, claimed, user)
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
        "expires": _expires(found),
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

"""Members of an organization: invitations sent, accepted and revoked, roles changed, members removed.

Each change is one transaction with its audit entry, taken under a lock on the organization's
row, so two owners demoting each other at once cannot leave it with none, and two invitations
for one address cannot both be created. An organization always keeps an owner.
"""

import datetime
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reports.models import AlertSubscription, Invitation, Membership, Organization
from reports.tenancy import audit, invitations
from reports.tenancy.invitations import InvitationError

OWNER = Membership.Role.OWNER


class MemberError(ValueError):
    """Why a change to the members was refused; the message is shown as is."""


def _lock(organization: Organization) -> None:
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _owner_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=OWNER).count()


def expires(invitation: Invitation) -> datetime.datetime:
    return invitation.created_at + datetime.timedelta(days=settings.INVITATION_DAYS)


def invite(organization: Organization, email: str, role: str, actor, send: Callable[[Invitation], None]) -> Invitation:
    """Invite ``email`` with ``role``, and ``send`` the invitation (inside the transaction: if it
    cannot be sent, no invitation is left behind that nobody received and that would block
    inviting the address again). Raises MemberError when the address is a member or has a
    pending invitation; whatever ``send`` raises undoes the invitation."""
    fresh = timezone.now() - datetime.timedelta(days=settings.INVITATION_DAYS)
    with transaction.atomic():
        _lock(organization)
        if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
            raise MemberError(f"{email} is already a member of {organization.name}.")
        pending = Invitation.objects.filter(
            organization=organization, email__iexact=email, accepted_at=None, revoked_at=None, created_at__gt=fresh
        )
        if pending.exists():
            raise MemberError(f"{email} already has a pending invitation: revoke it to send a new one.")
        invitation = Invitation.objects.create(
            organization=organization, email=email, role=role, invited_by=audit.user_of(actor)
        )
        audit.record(actor, organization, "member.invited", email, after={"email": email, "role": role})
        send(invitation)
    return invitation


def revoke_invitation(invitation: Invitation, actor, action: str = "member.invitation-revoked") -> bool:
    """Withdraw a pending invitation; False when it was already used or revoked (an invitation
    accepted a moment ago stays accepted)."""
    with transaction.atomic():
        revoked = Invitation.objects.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit.record(
                actor,
                invitation.organization,
                action,
                invitation.email,
                before={"email": invitation.email, "role": invitation.role},
            )
    return bool(revoked)


def accept(token: str, actor, user_for: Callable[[], object]) -> tuple[Invitation, object, bool]:
    """Use an invitation link: ``user_for()`` gives the account that joins (the logged-in user, or
    a new account made in the same transaction). Returns the invitation, the user, and whether
    they joined (False: already a member, role unchanged). Raises InvitationError for a link that
    cannot be used; a second use of the same link waits for the first, then finds it used."""
    with transaction.atomic():
        invitation = invitations.invitation_from(token)
        locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
        if locked is None or locked.revoked_at is not None:
            raise InvitationError("This invitation was withdrawn.")
        if locked.accepted_at is not None:
            raise InvitationError("This invitation has already been used.")
        locked.organization = invitation.organization
        user = user_for()
        organization = locked.organization
        existing = Membership.objects.filter(user=user, organization=organization).first()
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        if existing is None:
            Membership.objects.create(user=user, organization=organization, role=locked.role)
            if organization.subscribe_new_members:
                AlertSubscription.objects.get_or_create(user=user, organization=organization)
        role = existing.role if existing else locked.role
        audit.record(
            actor if audit.user_of(actor) else user,  # a new account is not logged in yet
            organization,
            "member.joined",
            user.get_username(),
            after={"user": user.get_username(), "role": role, "invitation": locked.email}
            | ({"already_member": True} if existing else {}),
        )
    return locked, user, existing is None


def change_role(membership: Membership, role: str, actor) -> bool:
    """Give a member another role; False when it is the role they have. Raises MemberError for a
    role that does not exist or when the last owner would be demoted."""
    if role not in Membership.Role.values:
        raise MemberError("choose owner, admin or viewer.")
    organization = membership.organization
    with transaction.atomic():
        _lock(organization)
        membership = Membership.objects.select_related("user").get(pk=membership.pk)
        name = membership.user.get_username()
        if membership.role == role:
            return False
        if membership.role == OWNER and _owner_count(organization) == 1:
            raise MemberError(f"{name} is the only owner of {organization.name}: make another member an owner first.")
        before = {"role": membership.role}
        membership.role = role
        membership.save(update_fields=["role"])
        audit.record(actor, organization, "member.role-changed", name, before=before, after={"role": role})
    return True


def remove(membership: Membership, actor) -> None:
    """Remove a member (or let one leave), with their alert subscription. Raises MemberError for
    the last owner."""
    organization = membership.organization
    with transaction.atomic():
        _lock(organization)
        membership = Membership.objects.select_related("user").get(pk=membership.pk)
        name = membership.user.get_username()
        if membership.role == OWNER and _owner_count(organization) == 1:
            leaving = audit.user_of(actor) is not None and audit.user_of(actor).pk == membership.user_id
            who = "you are" if leaving else f"{name} is"
            raise MemberError(f"{who} the only owner of {organization.name}: make another member an owner first.")
        AlertSubscription.objects.filter(user=membership.user, organization=organization).delete()
        membership.delete()
        audit.record(
            actor, organization, "member.removed", name, before={"user": name, "role": membership.role}, after={}
        )

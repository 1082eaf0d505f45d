"""Invitation links: a signed token naming the Invitation row, valid for INVITATION_DAYS.

The signature (SECRET_KEY) stops forged or edited links; the row stops a link from being
used twice or after it was revoked.
"""

import datetime

from django.conf import settings
from django.core import signing

from reports.models import Invitation

SALT = "dmarcdash.invitation"


class InvitationError(Exception):
    """The link cannot be used; the message says why, for the person who clicked it."""


def token_for(invitation: Invitation) -> str:
    return signing.dumps(invitation.pk, salt=SALT, compress=True)


def invitation_from(token: str) -> Invitation:
    max_age = datetime.timedelta(days=settings.INVITATION_DAYS)
    try:
        pk = signing.loads(token, salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise InvitationError(
            f"This invitation has expired (links last {settings.INVITATION_DAYS} days): ask for a new one."
        ) from None
    except signing.BadSignature:
        raise InvitationError("This invitation link is not valid: check that it was copied whole.") from None
    invitation = Invitation.objects.select_related("organization").filter(pk=pk).first()
    if invitation is None or invitation.revoked_at is not None:
        raise InvitationError("This invitation was withdrawn.")
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation has already been used.")
    return invitation

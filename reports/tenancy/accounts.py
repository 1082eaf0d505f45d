"""A user's own account: the email address alerts and password resets go to."""

import logging

from django.db import transaction

from reports.models import Membership
from reports.tenancy import audit

logger = logging.getLogger("reports.security")


def change_email(user, email: str, actor) -> bool:
    """Set the user's email address; logged, and in each of their organizations' audit logs (their
    alerts go there). False when it is the address they have."""
    if email == user.email:
        return False
    before = user.email
    with transaction.atomic():
        user.email = email
        user.save(update_fields=["email"])
        for membership in Membership.objects.filter(user=user).select_related("organization"):
            audit.record(
                actor, membership.organization, "member.email-changed", user.get_username(),
                {"email": before}, {"email": email},
            )  # fmt: skip
    logger.info("email of %r changed", user.get_username())
    return True

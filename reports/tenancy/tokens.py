"""API tokens: created (the secret shown once, only its hash kept) and revoked, each audited."""

from django.db import transaction
from django.utils import timezone

from reports.models import ApiToken, Organization
from reports.tenancy import audit


def create(organization: Organization, name: str, actor) -> tuple[ApiToken, str]:
    """A new token and its secret, which exists only in the return value."""
    with transaction.atomic():
        token, secret = ApiToken.issue(organization, name)
        audit.record(
            actor, organization, "token.created", str(token), after={"name": token.name, "prefix": token.prefix}
        )
    return token, secret


def revoke(token: ApiToken, actor, action: str = "token.revoked") -> bool:
    """Revoke a token at once; False when it already was."""
    with transaction.atomic():
        now = timezone.now()
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=now)
        if revoked:
            audit.record(
                actor,
                token.organization,
                action,
                str(token),
                before={"revoked_at": None},
                after={"revoked_at": now.isoformat()},
            )
    return bool(revoked)

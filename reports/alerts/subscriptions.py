"""Which alerts each member receives, per organization: changed in one transaction, audited."""

from dataclasses import dataclass

from django.db import transaction

from reports.models import AlertEvent, AlertSubscription, Organization
from reports.tenancy import audit


@dataclass(frozen=True)
class Choice:
    """What a member asks for in one organization: nothing (``wanted`` False), or these kinds (none
    chosen: all) about these domains (none chosen: all), as they happen or in the weekly digest."""

    wanted: bool
    mode: str = AlertSubscription.Mode.IMMEDIATE
    kinds: tuple[str, ...] = ()
    domain_ids: tuple[int, ...] = ()


def state(subscription: AlertSubscription | None) -> dict:
    """What the audit log shows of a subscription."""
    if subscription is None:
        return {}
    return {
        "mode": subscription.mode,
        "kinds": subscription.kinds or "all",
        "domains": sorted(domain.name for domain in subscription.domains.all()) or "all",
    }


def save(user, choices: dict[Organization, Choice], actor) -> list[Organization]:
    """Apply a member's choices; return the organizations whose subscription changed."""
    changed = []
    with transaction.atomic():
        for organization, choice in choices.items():
            existing = AlertSubscription.objects.filter(user=user, organization=organization).first()
            before = state(existing)
            if not choice.wanted:
                if existing is not None:
                    existing.delete()
            else:
                mode = choice.mode if choice.mode in AlertSubscription.Mode.values else AlertSubscription.Mode.IMMEDIATE
                kinds = [kind for kind in choice.kinds if kind in AlertEvent.Kind.values]
                subscription, _ = AlertSubscription.objects.update_or_create(
                    user=user,
                    organization=organization,
                    # All kinds ticked is the same as none chosen: every kind, new ones included.
                    defaults={"mode": mode, "kinds": [] if set(kinds) == set(AlertEvent.Kind.values) else kinds},
                )
                # Only this organization's domains can be chosen; all of them ticked means all, new ones included.
                own = organization.domains.all()
                chosen = own.filter(pk__in=choice.domain_ids)
                subscription.domains.set([] if chosen.count() == own.count() else chosen)
            after = state(AlertSubscription.objects.filter(user=user, organization=organization).first())
            if before != after:
                audit.record(actor, organization, "alerts.subscription-changed", user.get_username(), before, after)
                changed.append(organization)
    return changed

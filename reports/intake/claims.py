"""Which reports belong to which domain: adding a domain, claiming the reports that came before it,
and deleting it. Each is one transaction with its audit entry.

Reports wait unclaimed (``domain`` empty) until their policy domain (or a parent up to the
organizational domain) is added. Only reports an operator imported or the domain's own
organization received are claimed: another tenant cannot plant reports in a domain before it is
added (``reports.tenancy.ownership.claimable`` says which).
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from reports.intake import rollups
from reports.lib import names
from reports.models import Domain, Organization, Report
from reports.tenancy import audit, ownership


class DomainTaken(ValueError):
    """Why a name cannot be added to this organization; the message is shown as is."""


def claim_reports(domain: Domain, actor=None, action: str = "domain.claimed") -> int:
    """Attach the domain's earlier unclaimed reports and add them to its rollups; return how many.

    ``actor`` (a request or user) is recorded in the audit log with ``action``; None writes no
    entry, for callers whose own entry already says it (adding a domain).
    """
    with transaction.atomic():
        claimed = list(ownership.claimable(domain).select_for_update(of=("self",)))
        Report.objects.filter(pk__in=[report.pk for report in claimed]).update(domain=domain)
        for report in claimed:
            report.domain = domain
            rollups.add_report(report)
        if actor is not None:
            audit.record(actor, domain.organization, action, domain.name, after={"claimed": len(claimed)})
    return len(claimed)


def add_domain(organization: Organization, raw_name: str, actor) -> tuple[Domain, int]:
    """Add a domain (its name checked) and claim its earlier reports; return it and how many.

    Raises ``names.InvalidName`` for what is no domain name and DomainTaken for a domain (or
    a parent domain) another organization monitors, or one this organization already has.
    """
    name = names.clean_name(raw_name)
    existing = ownership.owning_domain(name)
    if existing is not None and existing.name == name:
        if existing.organization_id == organization.pk:
            raise DomainTaken(f"{name} is already one of {organization.name}'s domains.")
        raise DomainTaken(f"{name} is already monitored by another organization.")
    if existing is not None and existing.organization_id != organization.pk:
        # Its reports go to the parent's organization; a second tenant must not split them off.
        raise DomainTaken(f"{name} is under a domain another organization monitors.")
    try:
        with transaction.atomic():
            domain = Domain.objects.create(
                organization=organization, name=name, alert_min_messages=organization.alert_min_messages
            )
            claimed = claim_reports(domain)
            audit.record(
                actor,
                organization,
                "domain.added",
                name,
                after={"name": name, "alert_min_messages": domain.alert_min_messages, "claimed": claimed},
            )
    except IntegrityError:  # added by someone else a moment ago
        raise DomainTaken(f"{name} is already monitored.") from None
    return domain, claimed


def delete_domain(domain: Domain, actor) -> int:
    """Delete a domain; its reports are kept, unclaimed, so adding it again brings them back.
    Returns how many reports were kept."""
    with transaction.atomic():
        kept = Report.objects.filter(domain=domain).update(domain=None)
        audit.record(
            actor,
            domain.organization,
            "domain.deleted",
            domain.name,
            before={"name": domain.name, "created_at": domain.created_at.isoformat(), "reports": kept},
            after={"deleted_at": timezone.now().isoformat()},
        )
        domain.delete()
    return kept

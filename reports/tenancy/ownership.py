"""Which Domain a report belongs to, and which unclaimed reports a domain may claim.

A report's policy domain belongs to the most specific Domain among itself and its parents up to
its organizational domain (Public Suffix List): ``mail.example.com`` goes to ``example.com``
unless ``mail.example.com`` is a Domain of its own. The walk stops at the organizational domain,
so a Domain named like a (private) public suffix, e.g. one an operator made in the admin, never
collects the reports of the unrelated registrants below it.
"""

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from reports.lib.names import candidates
from reports.models import Domain, Report


def owners(policy_domains: Iterable[str]) -> dict[str, Domain | None]:
    """The Domain each policy domain belongs to (or None), with its organization, in one query."""
    walks = {name: candidates(name) for name in set(policy_domains)}
    names = {candidate for walk in walks.values() for candidate in walk}
    known = {domain.name: domain for domain in Domain.objects.filter(name__in=names).select_related("organization")}
    return {
        name: next((known[candidate] for candidate in walk if candidate in known), None) for name, walk in walks.items()
    }


def owning_domain(policy_domain: str, organization_id: int | None = None) -> Domain | None:
    """The Domain reports for ``policy_domain`` belong to: an exact match, else the nearest parent
    up to the organizational domain. With ``organization_id``, None unless that organization has it:
    the most specific Domain decides even when it is another organization's, so an organization
    holding only the parent never gets a subdomain another organization claimed."""
    domain = owners([policy_domain]).get(policy_domain.strip().lower().rstrip("."))
    if domain is None or (organization_id is not None and domain.organization_id != organization_id):
        return None
    return domain


def claimable(domain: Domain) -> QuerySet:
    """The unclaimed reports ``reports.intake.claims.claim_reports`` attaches: its own and its subdomains' that
    no more specific Domain owns, and only those an operator imported or its organization received,
    so another tenant cannot plant reports in a domain before it is claimed."""
    mine = Q(intake__isnull=True) | Q(intake__organization__isnull=True)
    mine |= Q(intake__organization=domain.organization_id)
    near = Q(policy_domain=domain.name) | Q(policy_domain__endswith="." + domain.name)
    unclaimed = Report.objects.filter(mine, near, domain=None)
    names = list(unclaimed.order_by().values_list("policy_domain", flat=True).distinct())
    owned = [name for name, owner in owners(names).items() if owner is not None and owner.pk == domain.pk]
    return Report.objects.filter(mine, domain=None, policy_domain__in=owned)


def unclaimed_for(organization, user) -> QuerySet:
    """Unclaimed reports this organization received; operators' imports only for superusers, who
    see those anyway (an admin adding the domain still gets them, as claim_reports says)."""
    received = Q(intake__organization=organization)
    if user.is_superuser:
        received |= Q(intake__organization__isnull=True)
    return Report.objects.filter(received, domain=None)

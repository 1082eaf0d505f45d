"""Adding a domain, the records to publish for it, the live check, and claiming its earlier reports.

Members see the pages; admins add, check and claim; only owners delete. Everyone else gets 404,
as for a domain of another organization, so neither learns that it exists.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Min
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from reports.intake import claims
from reports.lib import names
from reports.lib.dnsrecords import dmarc
from reports.lib.names import organizational_domain
from reports.models import Domain, Membership, PolicyEvent, PolicyPlan, Report
from reports.rollout import plans
from reports.tenancy import onboarding, organizations, ownership
from reports.tenancy.access import has_role, organization_for
from reports.views.dashboard import visible_domain
from reports.views.forms import ReportAddressForm

MAX_GROUPS = 200  # unclaimed policy domains listed; a flood of junk reports must not make the page huge


def _dns_status(plan: PolicyPlan | None, address: str) -> tuple[str, str]:
    """(text, css class) of what the last check of _dmarc.<domain> found."""
    if plan is None or plan.dns_checked_at is None:
        return "not checked yet", "muted"
    if not plan.dns_record:
        return "no DMARC record", "bad"
    found = dmarc.parse_dmarc(plan.dns_record.split("\n"))
    if found.errors:
        return f"record with errors: {found.errors[0]}", "bad"
    policy = f"p={found.policy}"
    if address and not onboarding.sends_here(found, address):
        return f"{policy}; rua does not include {address}", "warning"
    return f"{policy}; reports come here" if address else policy, "good"


@login_required
def org_domains(request, slug: str):
    organization = organization_for(request, slug)
    address = onboarding.report_address(organization)
    domains = list(
        Domain.objects.filter(organization=organization)
        .annotate(report_count=Count("reports"), last_report=Max("reports__end"))
        .order_by("name")
    )
    plan_by_domain = {plan.domain_id: plan for plan in PolicyPlan.objects.filter(domain__in=domains)}
    for domain in domains:
        domain.dns_status, domain.dns_class = _dns_status(plan_by_domain.get(domain.pk), address)
    groups = list(
        ownership.unclaimed_for(organization, request.user)
        .values("policy_domain")
        .annotate(count=Count("id"), first=Min("begin"), last=Max("end"))
        .order_by("-count", "policy_domain")[:MAX_GROUPS]
    )
    owners = ownership.owners(group["policy_domain"] for group in groups)
    ours = {domain.name for domain in domains}
    for group in groups:
        owner = owners.get(group["policy_domain"])
        # A report this organization received for a domain another organization has stays theirs
        # to claim; say only that it is taken.
        group["owner"] = owner.name if owner is not None and owner.organization_id == organization.pk else ""
        group["taken"] = owner is not None and owner.organization_id != organization.pk
        base = organizational_domain(group["policy_domain"])
        group["base"] = base if base and base != group["policy_domain"] and base not in ours else ""
    context = {
        "organization": organization,
        "tab": "domains",
        "domains": domains,
        "groups": groups,
        "more_groups": len(groups) == MAX_GROUPS,
        "can_manage": has_role(request.user, organization, Membership.Role.ADMIN),
    }
    return render(request, "org/domains.html", context)


@login_required
@require_POST
def add(request, slug: str):
    organization = organization_for(request, slug, Membership.Role.ADMIN)
    try:
        domain, claimed = claims.add_domain(organization, request.POST.get("name", ""), request)
    except (names.InvalidName, claims.DomainTaken) as exc:
        messages.error(request, f"Not added: {exc}")
        return redirect("org-domains", slug=organization.slug)
    messages.success(request, f"{domain.name} added: {claimed} earlier report{'s' if claimed != 1 else ''} claimed.")
    return redirect("domain-setup", name=domain.name)


def _last_setup_check(domain: Domain, address: str) -> dict | None:
    """What the last live check from this page found about the verification record, if it asked
    about the current report address (the DMARC record itself is on the plan)."""
    event = PolicyEvent.objects.filter(domain=domain, kind=PolicyEvent.Kind.CHECKED, metrics__has_key="setup").first()
    if event is None or event.metrics["setup"].get("address") != address:
        return None
    return {"at": event.at, **event.metrics["setup"]}


@login_required
def setup(request, name: str):
    domain = visible_domain(request, name)
    organization = domain.organization
    address = onboarding.report_address(organization)
    plan = PolicyPlan.objects.filter(domain=domain).first()
    checked = plan is not None and plan.dns_checked_at is not None
    found = dmarc.parse_dmarc(plan.dns_record.split("\n") if plan.dns_record else []) if checked else None
    context = {
        "organization": organization,
        "tab": "domains",
        "domain": domain,
        "address": address,
        "suggested_address": "" if address else onboarding.suggested_address(organization),
        "record": onboarding.new_record(address),
        "record_with_ruf": onboarding.new_record(address, ruf=address, fo="1") if address else "",
        "verification": onboarding.verification_records(domain.name, address),
        "plan": plan,
        "found": found,
        "published": bool(found and found.texts),
        "sends_here": bool(found and onboarding.sends_here(found, address)),
        "merged": onboarding.merged_record(found, address) if found else "",
        "last_check": _last_setup_check(domain, address),
        "unclaimed": ownership.claimable(domain).count(),
        "report_count": Report.objects.filter(domain=domain).count(),
        "has_mailbox": organization.mailboxes.exists(),
        "can_manage": has_role(request.user, organization, Membership.Role.ADMIN),
        "is_owner": has_role(request.user, organization, Membership.Role.OWNER),
    }
    return render(request, "org/domain_setup.html", context)


def _domain_for_role(request, name: str, minimum: str) -> Domain:
    domain = visible_domain(request, name)
    if not has_role(request.user, domain.organization, minimum):
        raise Http404(f"this needs the {minimum} role")
    return domain


@login_required
@require_POST
def check(request, name: str):
    """Look up the DMARC record and the verification record now, and say what is missing."""
    domain = _domain_for_role(request, name, Membership.Role.ADMIN)
    address = onboarding.report_address(domain.organization)
    checked = plans.check_setup(domain, address, request)
    lookup = checked.lookup
    if lookup.result is None:
        messages.error(request, f"{lookup.name}: the lookup failed ({lookup.status}: {lookup.detail}); try again.")
        return redirect("domain-setup", name=domain.name)
    findings, good = checked.findings, checked.good
    (messages.success if good else messages.error)(request, " ".join(findings))
    return redirect("domain-setup", name=domain.name)


@login_required
@require_POST
def report_address(request, name: str):
    """Set where the organization's reports go (from a domain's set-up page, where it is asked for)."""
    domain = _domain_for_role(request, name, Membership.Role.ADMIN)
    form = ReportAddressForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not saved: {' '.join(form.errors.get('report_address', []))}")
        return redirect("domain-setup", name=domain.name)
    organizations.set_report_address(domain.organization, form.cleaned_data["report_address"], request)
    messages.success(
        request, f"Reports for {domain.organization.name}'s domains go to {form.cleaned_data['report_address']}."
    )
    return redirect("domain-setup", name=domain.name)


@login_required
@require_POST
def claim(request, name: str):
    domain = _domain_for_role(request, name, Membership.Role.ADMIN)
    count = claims.claim_reports(domain, request)
    messages.success(request, f"{count} earlier report{'s' if count != 1 else ''} claimed for {domain.name}.")
    return redirect("domain-setup", name=domain.name)


@login_required
@require_POST
def delete(request, name: str):
    domain = _domain_for_role(request, name, Membership.Role.OWNER)
    organization = domain.organization
    if request.POST.get("confirm", "").strip().lower().rstrip(".") != domain.name:
        messages.error(request, f"Not deleted: type {domain.name} to confirm.")
        return redirect("domain-setup", name=domain.name)
    kept = claims.delete_domain(domain, request)
    messages.success(request, f"{domain.name} deleted; {kept} report{'s' if kept != 1 else ''} kept, unclaimed.")
    return redirect("org-domains", slug=organization.slug)


urlpatterns = [
    path("orgs/<slug:slug>/domains/", org_domains, name="org-domains"),
    path("orgs/<slug:slug>/domains/add/", add, name="org-domain-add"),
    path("domains/<str:name>/setup/", setup, name="domain-setup"),
    path("domains/<str:name>/setup/check/", check, name="domain-setup-check"),
    path("domains/<str:name>/setup/claim/", claim, name="domain-claim"),
    path("domains/<str:name>/setup/report-address/", report_address, name="domain-report-address"),
    path("domains/<str:name>/delete/", delete, name="domain-delete"),
]

"""The guided policy workflow of one domain: readiness, the record to publish, the DNS check,
moving on or rolling back, settings and history.

Members see it; owners and admins act. A stage changes only when DNS already shows
the record of the stage being entered: the plan follows what receivers see.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from reports.enrichment import inventory
from reports.lib import stages
from reports.lib.dnsrecords import dmarc
from reports.models import PolicyEvent, PolicyPlan
from reports.rollout import dnscheck, plans, readiness, stscheck
from reports.views.dashboard import visible_domain

PERCENT, DAYS, MESSAGES = "%", "days", "messages"
# (key, what it means, unit, metric code): rates are shown and typed as percentages.
THRESHOLD_FIELDS = (
    ("authorised_pass", "Your authorised mail that must pass DMARC to leave monitoring", PERCENT, "M1"),
    ("strict_pass", "Your authorised mail that must pass DMARC during the quarantine and reject steps", PERCENT, "M1"),
    ("strict_dkim", "Your authorised mail that must carry an aligned DKIM signature in those steps", PERCENT, "M2"),
    ("forwarding", "Mail broken in transit (forwarding, mailing lists) allowed at most", PERCENT, "M6"),
    ("changed_failures", "Authorised mail allowed to fail after a change", PERCENT, "M7"),
    ("report_days", "Days that must have reports from large receivers", PERCENT, "M5"),
    ("quiet_days", "Days without a new source before leaving monitoring", DAYS, "M4"),
    ("window_days", "Days of reports each measurement looks at", DAYS, ""),
    ("rollback_source_daily", "Roll back when an authorised source fails more than this a day", MESSAGES, ""),
    ("monitor_days", "Days in monitoring at least, when users post to mailing lists", DAYS, ""),
    ("monitor_days_without_lists", "Days in monitoring at least, without mailing lists", DAYS, ""),
    *((f"days_{stage.key}", f"Days in “{stage.label}” at least", DAYS, "") for stage in stages.STAGES[1:-1]),
)


class PlanForm(forms.ModelForm):
    class Meta:
        model = PolicyPlan
        fields = ["parked", "mailing_lists", "rua", "ruf", "fo"]
        labels = {"ruf": "Failure report address (ruf=)", "fo": "Failure reporting options (fo=)"}


@login_required
def policy(request, name: str):
    domain = visible_domain(request, name)
    plan = plans.plan_of(domain)
    stage = plans.current_stage(plan)
    target = plans.target_stage(plan)
    record = plans.expected_record(plan, target) if target else None
    snapshot = plan.readiness or {}
    for blocker in snapshot.get("blockers", []):
        if blocker.get("mark"):
            blocker["standing"] = inventory.standing(domain, *blocker["mark"][:2])
    context = {
        "domain": domain,
        "plan": plan,
        "stage": stage,
        "stages": stages.STAGES,
        "stage_index": [s.key for s in stages.STAGES].index(stage.key) if stage.key in stages.BY_KEY else 0,
        "parked_stage": stages.PARKED,
        "target": target,
        "record": dmarc.format_dmarc(record) if record else "",
        "verification": dmarc.external_verification(
            domain.name, [*(record or {}).get("rua", "").split(","), *(record or {}).get("ruf", "").split(",")]
        )
        if record
        else [],
        "pct_note": stages.PCT_NOTE,
        "found": plans.published(plan) if plan.dns_checked_at else None,
        "dns_matches": bool(target and plans.matches(plan, target)),
        "previous": stages.previous_of(plan.stage),
        "snapshot": snapshot,
        "can_manage": domain.managed_by(request.user),
        "form": PlanForm(instance=plan),
        "thresholds": [
            {
                "key": key,
                "label": label,
                "unit": unit,
                "code": code,
                "value": _shown({**stages.DEFAULTS, **plan.thresholds}[key], unit),
            }
            for key, label, unit, code in THRESHOLD_FIELDS
        ],
        "proposal": plans.proposal(plan),
        "dns_stage": plans.dns_stage(plan),
        "mailing_list_note": stages.MAILING_LIST_NOTE if plan.mailing_lists and not plan.parked else "",
        "events": PolicyEvent.objects.filter(domain=domain).select_related("user")[:50],
        "tab": "policy",
    }
    return render(request, "reports/policy.html", context)


def _managed(request, name: str):
    domain = visible_domain(request, name)
    if not domain.managed_by(request.user):
        raise Http404("only owners and admins change the plan")
    return domain, plans.plan_of(domain)


@login_required
@require_POST
def check_dns(request, name: str):
    """Look up _dmarc.<domain> now and keep what was found."""
    domain, _ = _managed(request, name)
    lookup = plans.check_dns(domain, request)
    if lookup.result is None:
        messages.error(request, f"{lookup.name}: the lookup failed ({lookup.status}: {lookup.detail}); try again")
        return redirect("policy", name=domain.name)
    messages.info(request, f"{lookup.name}: {'; '.join(lookup.result.texts) or 'no DMARC record'}")
    return redirect("policy", name=domain.name)


@login_required
@require_POST
def move(request, name: str, direction: str):
    """Advance to the target stage, or roll back one, once DNS shows that stage's record."""
    if direction not in (plans.ADVANCE, plans.ROLLBACK):
        raise Http404("no such move")
    domain, _ = _managed(request, name)
    try:
        stage = plans.move(domain, direction, request)
    except plans.PlanError as exc:
        messages.error(request, str(exc))
        return redirect("policy", name=domain.name)
    messages.success(request, f"{domain.name} is now at “{stage.label}”.")
    return redirect("policy", name=domain.name)


@login_required
@require_POST
def settings_view(request, name: str):
    """Change the plan's settings and thresholds; the history keeps before and after."""
    domain, plan = _managed(request, name)
    form = PlanForm(request.POST, instance=plan)
    if not form.is_valid():
        messages.error(request, f"Not saved: {form.errors.as_text()}")
        return redirect("policy", name=domain.name)
    thresholds = {}
    for key, label, unit, _ in THRESHOLD_FIELDS:
        value = request.POST.get(f"threshold_{key}", "").strip().rstrip("%").strip()
        if not value:
            continue
        try:
            number = float(value)
        except ValueError:
            messages.error(request, f"Not saved: “{label}” must be a number")
            return redirect("policy", name=domain.name)
        if number < 0 or (unit == PERCENT and number > 100):
            messages.error(request, f"Not saved: “{label}” must be {'0 to 100%' if unit == PERCENT else 'positive'}")
            return redirect("policy", name=domain.name)
        if unit == PERCENT:
            thresholds[key] = round(number / 100, 6)
        else:
            thresholds[key] = int(number) if isinstance(stages.DEFAULTS[key], int) else number
    plans.change_settings(domain, {name: form.cleaned_data[name] for name in PlanForm.Meta.fields}, thresholds, request)
    messages.success(request, "Plan saved.")
    return redirect("policy", name=domain.name)


def _shown(value, unit: str):
    """A threshold as typed on the page: rates as percentages (0.995 -> 99.5)."""
    if unit == PERCENT:
        return f"{100 * value:g}"
    return f"{value:g}" if isinstance(value, float) else value


@login_required
@require_POST
def adopt(request, name: str):
    """Put the plan at the stage DNS or the reports show (the page proposes it)."""
    domain, plan = _managed(request, name)
    found = plans.proposal(plan)
    if found is None or found["stage"].key != request.POST.get("stage"):
        messages.error(request, "Nothing to adopt: DNS and the reports agree with the plan (check DNS again).")
        return redirect("policy", name=domain.name)
    stage = plans.adopt(domain, found["stage"].key, request, found["since"], found["where"])
    messages.success(request, f"{domain.name} is now at “{stage.label}”, as seen in {found['where']}.")
    return redirect("policy", name=domain.name)


@login_required
@require_POST
def recompute(request, name: str):
    domain, _ = _managed(request, name)
    readiness.refresh(domain)
    return redirect("policy", name=domain.name)


@login_required
@require_POST
def check_health(request, name: str):
    """Check the domain's DMARC, SPF, DKIM keys, MX, own servers' reverse DNS, and its MTA-STS and
    TLS-RPT publication now."""
    domain, _ = _managed(request, name)
    plan = dnscheck.refresh(domain)
    sts = stscheck.refresh(domain, request)
    count = len(plan.health["problems"]) + len(sts.findings.get("problems", []))
    messages.info(request, f"Health checked: {count} problem{'s' if count != 1 else ''} found.")
    return redirect("policy", name=domain.name)


urlpatterns = [
    path("domains/<str:name>/policy/", policy, name="policy"),
    path("domains/<str:name>/policy/check/", check_dns, name="policy-check"),
    path("domains/<str:name>/policy/move/<str:direction>/", move, name="policy-move"),
    path("domains/<str:name>/policy/settings/", settings_view, name="policy-settings"),
    path("domains/<str:name>/policy/recompute/", recompute, name="policy-recompute"),
    path("domains/<str:name>/policy/adopt/", adopt, name="policy-adopt"),
    path("domains/<str:name>/policy/health/", check_health, name="policy-health"),
]

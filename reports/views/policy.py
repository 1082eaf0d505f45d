"""The guided policy workflow of one domain: readiness, the record to publish, the DNS check,
moving on or rolling back, settings and history.

Members see it; owners and admins act. A stage changes only when DNS already shows
the record of the stage being entered: the plan follows what receivers see.
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from reports.lib import stages as rollout
from reports.lib.dnsrecords import dmarc
from reports.models import PolicyEvent, PolicyPlan
from reports.rollout import dnscheck as health
from reports.rollout import readiness
from reports.tenancy import audit
from reports.views.dashboard import visible_domain

THRESHOLD_FIELDS = (
    ("window_days", "Window (days)"),
    ("authorised_pass", "M1 to leave monitor"),
    ("strict_pass", "M1 in the ramp"),
    ("strict_dkim", "M2 in the ramp"),
    ("forwarding", "M6 at most"),
    ("quiet_days", "M4: quiet days"),
    ("rollback_source_daily", "Roll back when an authorised source fails more than (messages a day)"),
    ("monitor_days", "Days in monitor at least (users post to mailing lists)"),
    ("monitor_days_without_lists", "Days in monitor at least (no mailing lists)"),
    *((f"days_{stage.key}", f"Days in “{stage.label}” at least") for stage in rollout.STAGES[1:-1]),
)


class PlanForm(forms.ModelForm):
    class Meta:
        model = PolicyPlan
        fields = ["parked", "mailing_lists", "rua"]


def plan_of(domain) -> PolicyPlan:
    plan, _ = PolicyPlan.objects.get_or_create(domain=domain, defaults={"stage_started_at": timezone.now()})
    return plan


def target_stage(plan: PolicyPlan) -> rollout.Stage | None:
    """The stage whose record the operator should publish next."""
    if plan.parked:
        return None if plan.stage == rollout.PARKED.key else rollout.PARKED
    return rollout.next_of(plan.stage)


def published(plan: PolicyPlan) -> dmarc.DmarcResult:
    return dmarc.parse_dmarc(plan.dns_record.split("\n") if plan.dns_record else [])


def expected_record(plan: PolicyPlan, stage: rollout.Stage) -> dict:
    current = published(plan).record or None
    rua = [f"mailto:{plan.rua or settings.DMARC_RUA}"] if (plan.rua or settings.DMARC_RUA) else None
    return dmarc.record_for_stage(current, stage.tags, rua=rua)


def matches(plan: PolicyPlan, stage: rollout.Stage) -> bool:
    """Whether the record found in DNS says what the stage says (p, sp/np when set, t, pct)."""
    found = published(plan)
    if found.errors or not found.record:
        return False
    tags = {key.lower(): value.strip().lower() for key, value in found.record.items()}
    wanted = {key: value.lower() for key, value in stage.tags.items()}
    for key in ("t", "pct"):
        wanted.setdefault(key, {"t": "n", "pct": "100"}[key])
        tags.setdefault(key, {"t": "n", "pct": "100"}[key])
    return all(tags.get(key) == value for key, value in wanted.items())


@login_required
def policy(request, name: str):
    domain = visible_domain(request, name)
    plan = plan_of(domain)
    stage = rollout.BY_KEY.get(plan.stage, rollout.PARKED if plan.parked else rollout.STAGES[0])
    target = target_stage(plan)
    record = expected_record(plan, target) if target else None
    snapshot = plan.readiness or {}
    context = {
        "domain": domain,
        "plan": plan,
        "stage": stage,
        "stages": rollout.STAGES,
        "stage_index": [s.key for s in rollout.STAGES].index(stage.key) if stage.key in rollout.BY_KEY else 0,
        "parked_stage": rollout.PARKED,
        "target": target,
        "record": dmarc.format_dmarc(record) if record else "",
        "verification": dmarc.external_verification(domain.name, (record or {}).get("rua", "").split(","))
        if record
        else [],
        "pct_note": rollout.PCT_NOTE,
        "found": published(plan) if plan.dns_checked_at else None,
        "dns_matches": bool(target and matches(plan, target)),
        "previous": rollout.previous_of(plan.stage),
        "snapshot": snapshot,
        "can_manage": domain.managed_by(request.user),
        "form": PlanForm(instance=plan),
        "thresholds": [(key, label, {**rollout.DEFAULTS, **plan.thresholds}[key]) for key, label in THRESHOLD_FIELDS],
        "events": PolicyEvent.objects.filter(domain=domain).select_related("user")[:50],
        "tab": "policy",
    }
    return render(request, "reports/policy.html", context)


def _managed(request, name: str):
    domain = visible_domain(request, name)
    if not domain.managed_by(request.user):
        raise Http404("only owners and admins change the plan")
    return domain, plan_of(domain)


@login_required
@require_POST
def check_dns(request, name: str):
    """Look up _dmarc.<domain> now and keep what was found."""
    domain, _ = _managed(request, name)
    lookup = health.check_record(domain)
    if lookup.result is None:
        messages.error(request, f"{lookup.name}: the lookup failed ({lookup.status}: {lookup.detail}); try again")
        return redirect("policy", name=domain.name)
    found = "; ".join(lookup.result.texts) if lookup.result.texts else "no DMARC record"
    note = found if lookup.result.valid else f"{found}: {'; '.join(lookup.result.errors)}"
    PolicyEvent.objects.create(
        domain=domain,
        user=request.user,
        kind=PolicyEvent.Kind.CHECKED,
        record="\n".join(lookup.result.texts),
        note=note,
    )
    messages.info(request, f"{lookup.name}: {found}")
    return redirect("policy", name=domain.name)


@login_required
@require_POST
def move(request, name: str, direction: str):
    """Advance to the target stage, or roll back one, once DNS shows that stage's record."""
    if direction not in ("advance", "rollback"):
        raise Http404("no such move")
    domain, plan = _managed(request, name)
    with transaction.atomic():
        plan = PolicyPlan.objects.select_for_update().get(pk=plan.pk)
        stage = target_stage(plan) if direction == "advance" else rollout.previous_of(plan.stage)
        if stage is None:
            messages.error(request, "There is no stage to move to.")
            return redirect("policy", name=domain.name)
        if not matches(plan, stage):
            messages.error(
                request,
                f"DNS does not show the record of “{stage.label}” yet: publish it, then check DNS again.",
            )
            return redirect("policy", name=domain.name)
        PolicyEvent.objects.create(
            domain=domain,
            user=request.user,
            kind=PolicyEvent.Kind.ADVANCED if direction == "advance" else PolicyEvent.Kind.ROLLED_BACK,
            from_stage=plan.stage,
            to_stage=stage.key,
            record=plan.dns_record,
            metrics=(plan.readiness or {}).get("metrics", {}),
            note=plan.rollback if direction == "rollback" else "",
        )
        audit.record(
            request,
            domain.organization,
            "policy.advanced" if direction == "advance" else "policy.rolled-back",
            domain.name,
            {"stage": plan.stage},
            {"stage": stage.key, "record": plan.dns_record},
        )
        plan.stage, plan.stage_started_at, plan.rollback = stage.key, timezone.now(), ""
        plan.save(update_fields=["stage", "stage_started_at", "rollback"])
    readiness.refresh(domain)
    messages.success(request, f"{domain.name} is now at “{stage.label}”.")
    return redirect("policy", name=domain.name)


@login_required
@require_POST
def settings_view(request, name: str):
    """Change the plan's settings and thresholds; the history keeps before and after."""
    domain, plan = _managed(request, name)
    before = {"parked": plan.parked, "mailing_lists": plan.mailing_lists, "rua": plan.rua, **plan.thresholds}
    form = PlanForm(request.POST, instance=plan)
    if not form.is_valid():
        messages.error(request, f"Not saved: {form.errors.as_text()}")
        return redirect("policy", name=domain.name)
    thresholds = dict(plan.thresholds)
    for key, _ in THRESHOLD_FIELDS:
        value = request.POST.get(f"threshold_{key}", "").strip()
        if not value:
            continue
        try:
            number = float(value)
        except ValueError:
            messages.error(request, f"Not saved: {key} must be a number")
            return redirect("policy", name=domain.name)
        if number < 0:
            messages.error(request, f"Not saved: {key} cannot be negative")
            return redirect("policy", name=domain.name)
        default = rollout.DEFAULTS[key]
        thresholds[key] = int(number) if isinstance(default, int) else number
    plan = form.save(commit=False)
    plan.thresholds = thresholds
    after = {"parked": plan.parked, "mailing_lists": plan.mailing_lists, "rua": plan.rua, **thresholds}
    with transaction.atomic():
        plan.save()
        audit.record(
            request, domain.organization, "policy.settings-changed", domain.name, *audit.changed(before, after)
        )
    PolicyEvent.objects.create(
        domain=domain,
        user=request.user,
        kind=PolicyEvent.Kind.CHANGED,
        metrics={"before": before, "after": after},
        note=", ".join(
            f"{key}: {before.get(key)} → {value}" for key, value in after.items() if before.get(key) != value
        ),
    )
    readiness.refresh(domain)
    messages.success(request, "Plan saved.")
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
    """Check the domain's DMARC, SPF, DKIM keys, MX and own servers' reverse DNS now."""
    domain, _ = _managed(request, name)
    plan = health.refresh(domain)
    count = len(plan.health["problems"])
    messages.info(request, f"Health checked: {count} problem{'s' if count != 1 else ''} found.")
    return redirect("policy", name=domain.name)

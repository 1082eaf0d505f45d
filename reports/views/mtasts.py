"""The guided MTA-STS rollout of one domain: readiness from its TLS reports, the policy file and records to
publish, the publication check, moving on or rolling back, settings and history.

Members see it; owners and admins act. A stage changes only when the publication check already shows
the stage being entered: the plan follows what senders see.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from reports.lib import ststages
from reports.lib.dnsrecords import mtasts as records
from reports.models import MtaStsEvent
from reports.rollout import mtasts, stscheck
from reports.views.dashboard import visible_domain

MAX_AGE_CHOICES = (
    (86400, "1 day (while testing)"),
    (604800, "1 week"),
    (1209600, "2 weeks"),
    (31557600, "1 year (the most RFC 8461 allows)"),
)


class SettingsForm(forms.Form):
    mx_patterns = forms.CharField(
        required=False,
        label="MX patterns",
        help_text="one per line, e.g. mail.example.com or *.example.net; empty: the MX hosts DNS shows",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
    )
    max_age = forms.TypedChoiceField(choices=MAX_AGE_CHOICES, coerce=int, label="max_age")
    tlsrpt_rua = forms.CharField(
        required=False,
        max_length=500,
        label="TLS report addresses",
        help_text="mailto: or https: URIs, comma-separated; empty: the organization's report address",
    )
    testing_days = forms.IntegerField(min_value=0, max_value=365, label="Days in testing at least")
    max_failure_rate = forms.FloatField(min_value=0, max_value=100, label="Failure rate allowed per MX host (%)")

    def clean_mx_patterns(self) -> list[str]:
        patterns = [line.strip().lower().rstrip(".") for line in self.cleaned_data["mx_patterns"].splitlines()]
        patterns = [p for p in patterns if p]
        for pattern in patterns:
            if problem := records.mx_pattern_problem(pattern):
                raise forms.ValidationError(f"{pattern}: {problem}")
        return patterns

    def clean_tlsrpt_rua(self) -> str:
        value = self.cleaned_data["tlsrpt_rua"].strip()
        uris = [uri.strip() for uri in value.split(",") if uri.strip()]
        for uri in uris:
            if problem := records.rua_problem(uri):
                raise forms.ValidationError(f"{uri}: {problem}")
        return ",".join(uris)


@login_required
def page(request, name: str):
    domain = visible_domain(request, name)
    plan = mtasts.plan_of(domain)
    if not plan.readiness.get("computed_at"):
        plan = mtasts.refresh(domain)  # a new plan: its TLS reports are already there to read
    stage = mtasts.stage_of(plan)
    target = mtasts.target(plan)
    previous = ststages.previous_of(stage)
    thresholds = {**ststages.DEFAULTS, **(plan.readiness.get("thresholds") or {})}
    context = {
        "domain": domain,
        "plan": plan,
        "stage": stage,
        "stages": ststages.STAGES,
        "stage_index": ststages.STAGES.index(stage),
        "target": target,
        "previous": previous,
        "policy": mtasts.policy_text(plan, target) if target else "",
        "rollback_policy": mtasts.policy_text(plan, previous) if previous and plan.rollback else "",
        "policy_url": records.policy_url(domain.name),
        "sts_name": records.sts_record_name(domain.name),
        "sts_record": mtasts.sts_record(plan),
        "tlsrpt_name": records.tlsrpt_record_name(domain.name),
        "tlsrpt_record": mtasts.tlsrpt_record(plan),
        "mx_patterns": mtasts.mx_patterns(plan),
        "found": plan.findings,
        "tlsa": [(host, rows) for host, rows in (plan.findings.get("tlsa") or {}).items() if rows],
        "target_shown": bool(target and mtasts.shows(plan, target)),
        "previous_shown": bool(previous and mtasts.shows(plan, previous)),
        "published": mtasts.published_stage(plan),
        "snapshot": plan.readiness,
        "window_days": thresholds["window_days"],
        "computed_at": parse_datetime(plan.readiness.get("computed_at") or ""),
        "can_manage": domain.managed_by(request.user),
        "form": SettingsForm(
            initial={
                "mx_patterns": "\n".join(plan.mx_patterns),
                "max_age": plan.max_age,
                "tlsrpt_rua": plan.tlsrpt_rua,
                "testing_days": thresholds["testing_days"],
                "max_failure_rate": round(100 * thresholds["max_failure_rate"], 4),
            }
        ),
        "events": MtaStsEvent.objects.filter(domain=domain).select_related("user")[:50],
        "tab": "mta-sts",
    }
    return render(request, "reports/mta_sts.html", context)


def _managed(request, name: str):
    domain = visible_domain(request, name)
    if not domain.managed_by(request.user):
        raise Http404("only owners and admins change the plan")
    return domain


@login_required
@require_POST
def check(request, name: str):
    """Check the MTA-STS and TLS-RPT publication now (DNS, the policy file, STARTTLS on the MX hosts)."""
    domain = _managed(request, name)
    plan = stscheck.refresh(domain, request)
    count = len(plan.findings.get("problems", []))
    messages.info(request, f"Publication checked: {count} problem{'s' if count != 1 else ''} found.")
    return redirect("mta-sts", name=domain.name)


@login_required
@require_POST
def move(request, name: str, direction: str):
    if direction not in (mtasts.ADVANCE, mtasts.ROLLBACK):
        raise Http404("no such move")
    domain = _managed(request, name)
    try:
        stage = mtasts.move(domain, direction, request)
    except mtasts.PlanError as exc:
        messages.error(request, str(exc))
        return redirect("mta-sts", name=domain.name)
    messages.success(request, f"{domain.name} is now at MTA-STS “{stage.label}”.")
    return redirect("mta-sts", name=domain.name)


@login_required
@require_POST
def adopt(request, name: str):
    domain = _managed(request, name)
    try:
        stage = mtasts.adopt(domain, request)
    except mtasts.PlanError as exc:
        messages.error(request, str(exc))
        return redirect("mta-sts", name=domain.name)
    messages.success(request, f"{domain.name} is now at MTA-STS “{stage.label}”, as published.")
    return redirect("mta-sts", name=domain.name)


@login_required
@require_POST
def settings_view(request, name: str):
    domain = _managed(request, name)
    form = SettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not saved: {form.errors.as_text()}")
        return redirect("mta-sts", name=domain.name)
    data = form.cleaned_data
    values = {"mx_patterns": data["mx_patterns"], "max_age": data["max_age"], "tlsrpt_rua": data["tlsrpt_rua"]}
    thresholds = {"testing_days": data["testing_days"], "max_failure_rate": round(data["max_failure_rate"] / 100, 6)}
    changed = mtasts.change_settings(domain, values, thresholds, request)
    messages.success(request, "Plan saved." if changed else "Nothing changed.")
    return redirect("mta-sts", name=domain.name)


urlpatterns = [
    path("domains/<str:name>/mta-sts/", page, name="mta-sts"),
    path("domains/<str:name>/mta-sts/check/", check, name="mta-sts-check"),
    path("domains/<str:name>/mta-sts/move/<str:direction>/", move, name="mta-sts-move"),
    path("domains/<str:name>/mta-sts/adopt/", adopt, name="mta-sts-adopt"),
    path("domains/<str:name>/mta-sts/settings/", settings_view, name="mta-sts-settings"),
]

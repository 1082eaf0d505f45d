"""A domain's MTA-STS rollout: the policy and records to publish next, readiness from its TLS reports, and
the changes to the plan (a move, a rollback, new settings, an adoption), each one transaction with its
history entry and audit entry.

As for DMARC, a stage changes only when the publication check already shows the stage being entered: the
plan follows what senders see. Every change of the policy file gets a new ``id`` in the _mta-sts record,
because senders refetch the policy only when the id changes (RFC 8461 section 3.1).
"""

import datetime
from collections import defaultdict
from dataclasses import asdict

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from reports.lib import ststages
from reports.lib.dnsrecords import mtasts as records
from reports.models import Domain, MtaStsEvent, MtaStsPlan, TlsFailure, TlsReport
from reports.tenancy import audit, onboarding

ADVANCE = "advance"
ROLLBACK = "rollback"
POLICY_PROBLEMS = ("sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid")


class PlanError(ValueError):
    """Why the plan cannot change as asked; the message is shown as is."""


def fresh_id(previous: str = "") -> str:
    """A policy id senders have not seen: the time, to the microsecond, so two changes a second apart
    (or less) still differ."""
    now = timezone.now()
    candidate = records.new_policy_id(now) + f"{now.microsecond:06d}"
    return candidate if candidate != previous else candidate + "1"


def plan_of(domain: Domain) -> MtaStsPlan:
    plan, _ = MtaStsPlan.objects.get_or_create(
        domain=domain, defaults={"stage_started_at": timezone.now(), "policy_id": fresh_id()}
    )
    return plan


def stage_of(plan: MtaStsPlan) -> ststages.Stage:
    return ststages.BY_KEY.get(plan.stage, ststages.STAGES[0])


def findings_of(plan: MtaStsPlan) -> ststages.Findings:
    known = {name: plan.findings[name] for name in ststages.Findings.__dataclass_fields__ if name in plan.findings}
    return ststages.Findings(**known)


def mx_patterns(plan: MtaStsPlan) -> list[str]:
    """The mx: lines: the plan's own, else the MX hosts the last check found."""
    return list(plan.mx_patterns) or list(plan.findings.get("mx_hosts", []))


def policy_text(plan: MtaStsPlan, stage: ststages.Stage) -> str:
    """The exact policy file for ``stage`` ("" for no policy, or while no MX host is known)."""
    if not stage.mode:
        return ""
    try:
        return records.render_policy(stage.mode, mx_patterns(plan), plan.max_age)
    except ValueError:
        return ""


def sts_record(plan: MtaStsPlan) -> str:
    return records.sts_record(plan.policy_id)


def tlsrpt_rua(plan: MtaStsPlan) -> list[str]:
    """Where TLS reports should go: the plan's own address, else the organization's report address, and
    this install's HTTPS endpoint when it is served over https (reporters refuse plain http)."""
    if plan.tlsrpt_rua:
        return [uri.strip() for uri in plan.tlsrpt_rua.split(",") if uri.strip()]
    rua = []
    address = onboarding.report_address(plan.domain.organization)
    if address:
        rua.append(f"mailto:{address}")
    if settings.SITE_URL.startswith("https://"):
        rua.append(settings.SITE_URL.rstrip("/") + reverse("tlsrpt-receive"))
    return rua


def tlsrpt_record(plan: MtaStsPlan) -> str:
    rua = tlsrpt_rua(plan)
    return records.tlsrpt_record(rua) if rua else ""


def target(plan: MtaStsPlan) -> ststages.Stage | None:
    return ststages.next_of(stage_of(plan))


def shows(plan: MtaStsPlan, stage: ststages.Stage) -> bool:
    """Whether the last publication check shows ``stage``: its policy mode, or no policy for none."""
    found = findings_of(plan)
    if not found.checked:
        return False
    if not stage.mode:
        return not found.sts_record or found.policy_mode == "none"
    return found.sts_record and found.policy_ok and found.policy_mode == stage.mode and not found.unmatched_mx


def published_stage(plan: MtaStsPlan) -> ststages.Stage | None:
    """The stage the last check shows, whatever the plan says (for adopting it)."""
    for stage in ststages.STAGES:
        if shows(plan, stage):
            return stage
    return None


def measure(domain: Domain, plan: MtaStsPlan, today: datetime.date | None = None) -> ststages.Metrics:
    """The TLS reports of the window: sessions, reporters, failures per MX host and policy errors."""
    thresholds = {**ststages.DEFAULTS, **(plan.readiness.get("thresholds") or {})}
    today = today or timezone.now().date()
    start = datetime.datetime.combine(
        today - datetime.timedelta(days=thresholds["window_days"]), datetime.time(), datetime.UTC
    )
    reports = TlsReport.objects.filter(domain=domain, begin__gte=start)
    totals = reports.aggregate(successful=Sum("successful"), failed=Sum("failed"))
    sessions = (totals["successful"] or 0) + (totals["failed"] or 0)
    metrics = ststages.Metrics(
        sessions=sessions,
        failed=totals["failed"] or 0,
        reporters=reports.values("organization").distinct().count(),
        days_in_stage=(timezone.now() - plan.stage_started_at).days,
    )
    per_mx: dict[str, ststages.MxMetrics] = {}
    for host in plan.findings.get("mx_hosts", []):
        per_mx[host] = ststages.MxMetrics(host, sessions=sessions)
    rows = (
        TlsFailure.objects.filter(report__in=reports)
        .values("receiving_mx_hostname", "result_type")
        .annotate(n=Sum("failed_sessions"))
    )
    policy_errors: dict[str, int] = defaultdict(int)
    for row in rows:
        host = row["receiving_mx_hostname"].lower().rstrip(".")
        kind, n = row["result_type"], row["n"] or 0
        if not host:
            if kind in POLICY_PROBLEMS:
                policy_errors[kind] += n
            continue
        mx = per_mx.setdefault(host, ststages.MxMetrics(host, sessions=sessions))
        mx.failed += n
        if kind in ststages.BLOCKING_RESULTS:
            mx.blocking[kind] = mx.blocking.get(kind, 0) + n
    metrics.per_mx = sorted(per_mx.values(), key=lambda mx: (-mx.failed, mx.host))
    metrics.policy_errors = dict(policy_errors)
    return metrics


def refresh(domain: Domain) -> MtaStsPlan:
    """Recompute readiness and rollback advice from the reports and the last check; keep them on the plan."""
    plan = plan_of(domain)
    metrics = measure(domain, plan)
    readiness = ststages.evaluate(stage_of(plan), metrics, findings_of(plan), plan.readiness.get("thresholds"))
    plan.readiness = {
        "thresholds": plan.readiness.get("thresholds") or {},
        "metrics": asdict(metrics),
        "checks": [asdict(check) for check in readiness.checks],
        "ready": readiness.ready,
        "computed_at": timezone.now().isoformat(),
    }
    if readiness.rollback and readiness.rollback != plan.rollback:
        MtaStsEvent.objects.create(
            domain=domain,
            kind=MtaStsEvent.Kind.ROLLBACK_SIGNAL,
            metrics=plan.readiness["metrics"],
            note=readiness.rollback,
        )
    plan.rollback = readiness.rollback
    plan.save(update_fields=["readiness", "rollback"])
    return plan


def move(domain: Domain, direction: str, actor) -> ststages.Stage:
    """Advance to the next stage or roll back one, once the publication check shows that stage.
    Raises PlanError when there is no such stage or it is not published yet."""
    if direction not in (ADVANCE, ROLLBACK):
        raise PlanError("no such move")
    plan = plan_of(domain)
    with transaction.atomic():
        plan = MtaStsPlan.objects.select_for_update().get(pk=plan.pk)
        current = stage_of(plan)
        stage = ststages.next_of(current) if direction == ADVANCE else ststages.previous_of(current)
        if stage is None:
            raise PlanError("There is no stage to move to.")
        if not shows(plan, stage):
            raise PlanError(
                f"The last check does not show “{stage.label}” published yet: publish it, then check again."
            )
        record_event(
            plan,
            actor,
            MtaStsEvent.Kind.ADVANCED if direction == ADVANCE else MtaStsEvent.Kind.ROLLED_BACK,
            stage,
            note=plan.rollback if direction == ROLLBACK else "",
        )
        plan.stage, plan.stage_started_at, plan.rollback = stage.key, timezone.now(), ""
        # The next policy to publish differs from this one: it needs an id senders have not seen.
        plan.policy_id = fresh_id(plan.policy_id)
        plan.save(update_fields=["stage", "stage_started_at", "rollback", "policy_id"])
    refresh(domain)
    return stage


def adopt(domain: Domain, actor) -> ststages.Stage:
    """Put the plan at the stage the last check shows (a domain that published MTA-STS before)."""
    plan = plan_of(domain)
    stage = published_stage(plan)
    if stage is None:
        raise PlanError("The last check shows no stage to adopt: check the publication first.")
    with transaction.atomic():
        plan = MtaStsPlan.objects.select_for_update().get(pk=plan.pk)
        record_event(plan, actor, MtaStsEvent.Kind.ADOPTED, stage)
        plan.stage, plan.stage_started_at, plan.rollback = stage.key, timezone.now(), ""
        plan.save(update_fields=["stage", "stage_started_at", "rollback"])
    refresh(domain)
    return stage


def record_event(plan: MtaStsPlan, actor, kind: str, stage: ststages.Stage, note: str = "") -> None:
    MtaStsEvent.objects.create(
        domain=plan.domain,
        user=audit.user_of(actor),
        kind=kind,
        from_stage=plan.stage,
        to_stage=stage.key,
        policy=policy_text(plan, stage),
        metrics=(plan.readiness or {}).get("metrics", {}),
        note=note,
    )
    audit.record(
        actor,
        plan.domain.organization,
        f"mta-sts.{kind}",
        plan.domain.name,
        {"stage": plan.stage},
        {"stage": stage.key, "id": plan.policy_id},
    )


def change_settings(domain: Domain, values: dict, thresholds: dict, actor) -> dict:
    """Save mx patterns, max_age, the TLS-RPT address and threshold overrides; a change to the policy
    file gets a new id. The history and the audit log keep before and after. Returns what changed."""
    plan = plan_of(domain)
    with transaction.atomic():
        plan = MtaStsPlan.objects.select_for_update().get(pk=plan.pk)
        before = settings_of(plan)
        for name, value in values.items():
            setattr(plan, name, value)
        plan.readiness = {**plan.readiness, "thresholds": {**(plan.readiness.get("thresholds") or {}), **thresholds}}
        after = settings_of(plan)
        old, new = audit.changed(before, after)
        if not new:
            return {}
        if before["mx_patterns"] != after["mx_patterns"] or before["max_age"] != after["max_age"]:
            plan.policy_id = fresh_id(plan.policy_id)
        plan.save()
        audit.record(actor, domain.organization, "mta-sts.settings-changed", domain.name, old, new)
        MtaStsEvent.objects.create(
            domain=domain,
            user=audit.user_of(actor),
            kind=MtaStsEvent.Kind.CHANGED,
            metrics={"before": before, "after": after},
            note=", ".join(f"{key}: {before.get(key)} → {value}" for key, value in new.items()),
        )
    refresh(domain)
    return new


def settings_of(plan: MtaStsPlan) -> dict:
    return {
        "mx_patterns": list(plan.mx_patterns),
        "max_age": plan.max_age,
        "tlsrpt_rua": plan.tlsrpt_rua,
        **(plan.readiness.get("thresholds") or {}),
    }

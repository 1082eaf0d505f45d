"""A domain's plan from p=none to p=reject: which record to publish next, whether DNS shows it, and
the changes to the plan (a move, a rollback, new settings, a DNS check), each one transaction with
its history entry and audit entry.

A stage changes only when DNS already shows the record of the stage being entered: the plan follows
what receivers see.
"""

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from reports.lib import resolver as dns_resolver
from reports.lib import stages
from reports.lib.dnsrecords import dmarc, lookups
from reports.models import Domain, PolicyEvent, PolicyPlan, Report
from reports.rollout import dnscheck, readiness
from reports.tenancy import audit, onboarding

ADVANCE = "advance"
ROLLBACK = "rollback"


class PlanError(ValueError):
    """Why the plan cannot change as asked; the message is shown as is."""


def plan_of(domain: Domain) -> PolicyPlan:
    plan, _ = PolicyPlan.objects.get_or_create(domain=domain, defaults={"stage_started_at": timezone.now()})
    return plan


def current_stage(plan: PolicyPlan) -> stages.Stage:
    return stages.BY_KEY.get(plan.stage, stages.PARKED if plan.parked else stages.STAGES[0])


def target_stage(plan: PolicyPlan) -> stages.Stage | None:
    """The stage whose record the operator should publish next."""
    if plan.parked:
        return None if plan.stage == stages.PARKED.key else stages.PARKED
    return stages.next_of(plan.stage)


def published(plan: PolicyPlan) -> dmarc.DmarcResult:
    """The record the last DNS check found, parsed."""
    return dmarc.parse_dmarc(plan.dns_record.split("\n") if plan.dns_record else [])


def report_address(plan: PolicyPlan) -> str:
    """The rua= address the plan's records carry: the plan's own, else the organization's."""
    return plan.rua or onboarding.report_address(plan.domain.organization)


def expected_record(plan: PolicyPlan, stage: stages.Stage) -> dict:
    """The record to publish for ``stage``: the published one's other tags kept, rua= added, and the
    plan's ruf= and fo= where the published record has none."""
    current = published(plan).record or None
    address = report_address(plan)
    record = dmarc.record_for_stage(current, stage.tags, rua=[f"mailto:{address}"] if address else None)
    if plan.ruf and not record.get("ruf"):
        record["ruf"] = f"mailto:{plan.ruf}"
    if plan.fo and not record.get("fo"):
        record["fo"] = plan.fo
    return record


def matches(plan: PolicyPlan, stage: stages.Stage) -> bool:
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


def dns_stage(plan: PolicyPlan) -> stages.Stage | None:
    """The stage the record found at the last DNS check is (None: not checked, none, or broken)."""
    found = published(plan)
    if plan.dns_checked_at is None or not found.record or found.errors:
        return None
    return stages.stage_of(found.record, parked=plan.parked)


@dataclass
class Reported:
    """The policy the domain's recent reports show receivers applying, and since when."""

    stage: stages.Stage
    policy: str  # as reported: "p=quarantine; pct=50"
    reporters: int
    since: datetime.date


def reported_stage(domain: Domain, today: datetime.date | None = None) -> Reported | None:
    """The stage of the policy most of the last week's reports show, with the day reports began
    to show it (looking back up to 90 days): what receivers saw, whatever the plan says."""
    today = today or timezone.now().astimezone(datetime.UTC).date()
    rows = (
        Report.objects.filter(domain=domain, begin__gte=timezone.now() - datetime.timedelta(days=90))
        .order_by("-begin")
        .values_list("begin", "org_name", "p", "pct", "testing")
    )
    recent, older = [], []
    for begin, org_name, p, pct, testing in rows:
        tags = {"p": p, "pct": "100" if pct is None else str(pct), "t": testing}
        stage = stages.stage_of(tags)
        if stage is None:
            continue
        (recent if begin.date() > today - datetime.timedelta(days=7) else older).append((begin, org_name, stage, tags))
    if not recent:
        return None
    counts: dict[str, int] = {}
    for _, _, stage, _ in recent:
        counts[stage.key] = counts.get(stage.key, 0) + 1
    key = max(counts, key=counts.get)
    showing = [row for row in recent + older if row[2].key == key]
    since = showing[-1][0].date()
    for begin, _, stage, _ in recent + older:  # newest first: the run that ends now
        if stage.key != key:
            break
        since = begin.date()
    tags = next(row[3] for row in recent if row[2].key == key)
    policy = (
        f"p={tags['p']}"
        + (f"; pct={tags['pct']}" if tags["pct"] != "100" else "")
        + ("; t=y" if tags["t"] == "y" else "")
    )
    return Reported(stages.BY_KEY[key], policy, len({row[1] for row in recent if row[2].key == key}), since)


def proposal(plan: PolicyPlan) -> dict | None:
    """The stage to adopt when DNS or the reports show the domain past where the plan stands, with
    what was seen and where; None when they agree with the plan (or show less)."""
    current = stages.index_of(plan.stage)
    shown = dns_stage(plan)
    if shown is not None and shown.key != plan.stage and stages.index_of(shown.key) > current:
        return {
            "stage": shown,
            "where": f"DNS (_dmarc.{plan.domain.name}, checked {plan.dns_checked_at:%Y-%m-%d %H:%M} UTC)",
            "seen": published(plan).texts[0],
            "since": None,
        }
    reported = reported_stage(plan.domain)
    if reported is not None and stages.index_of(reported.stage.key) > current:
        reporters = f"{reported.reporters} reporter{'s' if reported.reporters != 1 else ''}"
        return {
            "stage": reported.stage,
            "where": f"reports from {reporters} in the last week",
            "seen": reported.policy,
            "since": reported.since,
        }
    return None


def adopt(domain: Domain, key: str, actor, since: datetime.date | None = None, where: str = "") -> stages.Stage:
    """Put the plan at the stage DNS or the reports already show (days in it counted from
    ``since``, the day it was first seen, else now). Raises PlanError for no such stage."""
    stage = stages.BY_KEY.get(key) or (stages.PARKED if key == stages.PARKED.key else None)
    if stage is None:
        raise PlanError("There is no such stage.")
    plan = plan_of(domain)
    started = datetime.datetime.combine(since, datetime.time(), datetime.UTC) if since is not None else timezone.now()
    with transaction.atomic():
        plan = PolicyPlan.objects.select_for_update().get(pk=plan.pk)
        PolicyEvent.objects.create(
            domain=domain,
            user=audit.user_of(actor),
            kind=PolicyEvent.Kind.ADOPTED,
            from_stage=plan.stage,
            to_stage=stage.key,
            record=plan.dns_record,
            metrics=(plan.readiness or {}).get("metrics", {}),
            note=f"seen in {where}" if where else "",
        )
        audit.record(
            actor, domain.organization, "policy.adopted", domain.name, {"stage": plan.stage},
            {"stage": stage.key, "since": started.isoformat(), "seen in": where},
        )  # fmt: skip
        plan.stage, plan.stage_started_at, plan.rollback = stage.key, started, ""
        plan.save(update_fields=["stage", "stage_started_at", "rollback"])
    readiness.refresh(domain)
    return stage


def move(domain: Domain, direction: str, actor) -> stages.Stage:
    """Advance to the target stage, or roll back one, once DNS shows that stage's record; the
    readiness of the new stage is computed after. Raises PlanError when there is no such stage or
    DNS does not show its record yet."""
    if direction not in (ADVANCE, ROLLBACK):
        raise PlanError("no such move")
    plan = plan_of(domain)
    with transaction.atomic():
        plan = PolicyPlan.objects.select_for_update().get(pk=plan.pk)
        stage = target_stage(plan) if direction == ADVANCE else stages.previous_of(plan.stage)
        if stage is None:
            raise PlanError("There is no stage to move to.")
        shown = dns_stage(plan)
        if direction == ADVANCE and not matches(plan, stage) and shown is not None and not plan.parked:
            if stages.index_of(shown.key) > stages.index_of(stage.key):
                stage = shown  # DNS is already ahead of the plan: move to what receivers see
        if not matches(plan, stage):
            raise PlanError(f"DNS does not show the record of “{stage.label}” yet: publish it, then check DNS again.")
        PolicyEvent.objects.create(
            domain=domain,
            user=audit.user_of(actor),
            kind=PolicyEvent.Kind.ADVANCED if direction == ADVANCE else PolicyEvent.Kind.ROLLED_BACK,
            from_stage=plan.stage,
            to_stage=stage.key,
            record=plan.dns_record,
            metrics=(plan.readiness or {}).get("metrics", {}),
            note=plan.rollback if direction == ROLLBACK else "",
        )
        audit.record(
            actor,
            domain.organization,
            "policy.advanced" if direction == ADVANCE else "policy.rolled-back",
            domain.name,
            {"stage": plan.stage},
            {"stage": stage.key, "record": plan.dns_record},
        )
        plan.stage, plan.stage_started_at, plan.rollback = stage.key, timezone.now(), ""
        plan.save(update_fields=["stage", "stage_started_at", "rollback"])
    readiness.refresh(domain)
    return stage


def change_settings(domain: Domain, values: dict, thresholds: dict, actor) -> dict:
    """Save the plan's settings (``values``: parked, mailing_lists, rua) and threshold overrides;
    the history and the audit log keep before and after. Returns what changed."""
    plan = plan_of(domain)
    before = {
        "parked": plan.parked,
        "mailing_lists": plan.mailing_lists,
        "rua": plan.rua,
        "ruf": plan.ruf,
        "fo": plan.fo,
    }
    before |= plan.thresholds
    with transaction.atomic():
        for name, value in values.items():
            setattr(plan, name, value)
        plan.thresholds = {**plan.thresholds, **thresholds}
        plan.save()
        after = {"parked": plan.parked, "mailing_lists": plan.mailing_lists, "rua": plan.rua, "ruf": plan.ruf}
        after |= {"fo": plan.fo, **plan.thresholds}
        old, new = audit.changed(before, after)
        audit.record(actor, domain.organization, "policy.settings-changed", domain.name, old, new)
        PolicyEvent.objects.create(
            domain=domain,
            user=audit.user_of(actor),
            kind=PolicyEvent.Kind.CHANGED,
            metrics={"before": before, "after": after},
            note=", ".join(f"{key}: {before.get(key)} → {value}" for key, value in new.items()),
        )
    readiness.refresh(domain)
    return new


def check_dns(domain: Domain, actor) -> lookups.DmarcLookup:
    """Look up _dmarc.<domain> now, keep what was found on the plan and in its history."""
    lookup = dnscheck.check_record(domain)
    if lookup.result is None:
        return lookup
    found = "; ".join(lookup.result.texts) if lookup.result.texts else "no DMARC record"
    note = found if lookup.result.valid else f"{found}: {'; '.join(lookup.result.errors)}"
    PolicyEvent.objects.create(
        domain=domain,
        user=audit.user_of(actor),
        kind=PolicyEvent.Kind.CHECKED,
        record="\n".join(lookup.result.texts),
        note=note,
    )
    return lookup


@dataclass
class SetupCheck:
    """What the live check of a new domain's records found, in sentences for its owner."""

    lookup: lookups.DmarcLookup
    findings: list[str]
    good: bool


def check_setup(domain: Domain, address: str, actor) -> SetupCheck:
    """Look up the DMARC record and the verification record ``address`` needs, say what is missing,
    and keep the answer in the plan's history (the set-up page shows the last one)."""
    lookup = dnscheck.check_record(domain)
    if lookup.result is None:
        return SetupCheck(lookup, [], False)
    found = lookup.result
    findings, good = [], True
    if not found.found:
        findings.append(f"No DMARC record at {lookup.name} yet: publish the record below.")
        good = False
    else:
        findings.append(f"DMARC record found at {lookup.name}: {'; '.join(found.texts)}.")
        if found.errors:
            findings.append(f"Problems: {'; '.join(found.errors)}.")
            good = False
        if address and onboarding.sends_here(found, address):
            findings.append(f"Its rua= sends aggregate reports to {address}.")
        elif address:
            findings.append(f"Its rua= does not include mailto:{address}: no reports will reach this dashboard.")
            good = False
    verification = lookups.check_external_verification(domain.name, [f"mailto:{address}"], dns_resolver.make())
    for item in verification:
        if item.published:
            findings.append(f'{item.host} TXT "{item.value}" is published.')
        else:
            findings.append(f'{item.host} TXT "{item.value}" is missing ({item.detail or item.status}).')
            good = False
    if not address:
        findings.append("No report address is set: set it above before reports can be sent here.")
        good = False
    PolicyEvent.objects.create(
        domain=domain,
        user=audit.user_of(actor),
        kind=PolicyEvent.Kind.CHECKED,
        record="\n".join(found.texts),
        note=" ".join(findings),
        metrics={
            "setup": {
                "address": address,
                "sends_here": onboarding.sends_here(found, address),
                "verification": [
                    {"host": item.host, "published": item.published, "status": item.status, "detail": item.detail}
                    for item in verification
                ],
            }
        },
    )
    return SetupCheck(lookup, findings, good)

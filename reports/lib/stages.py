"""The staged plan from p=none to p=reject (standards.md section 4), as pure data and checks.

No Django here: reports/rollout/readiness.py measures a domain (the metrics M1-M8) and this
module says, for a stage, which conditions hold, whether the domain may move on, and
whether the last change must be rolled back.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    tags: dict
    min_days: int
    testing: bool = False
    note: str = ""


STAGES = (
    Stage("monitor", "S1 Monitor", {"p": "none"}, 30, note="Collect reports; change nothing for receivers."),
    Stage(
        "quarantine-testing",
        "S2 Quarantine, testing mode",
        {"p": "quarantine", "t": "y", "pct": "0"},
        14,
        testing=True,
        note="Receivers report what they would quarantine but deliver as before (t=y; pct=0 for RFC 7489 receivers).",
    ),
    Stage("quarantine-25", "S3 Quarantine 25%", {"p": "quarantine", "pct": "25"}, 7),
    Stage("quarantine-50", "S3 Quarantine 50%", {"p": "quarantine", "pct": "50"}, 7),
    Stage("quarantine", "S3 Quarantine", {"p": "quarantine"}, 7),
    Stage(
        "reject-testing",
        "S4 Reject, testing mode",
        {"p": "reject", "t": "y", "pct": "0"},
        14,
        testing=True,
        note="Receivers still quarantine (one level lower) while you watch for surprises.",
    ),
    Stage("reject", "S5 Reject", {"p": "reject"}, 0, note="Watch: roll back one stage if authorised mail fails."),
)
BY_KEY = {stage.key: stage for stage in STAGES}
PARKED = Stage(
    "parked",
    "Parked domain: reject everything",
    {"p": "reject", "sp": "reject", "np": "reject"},
    0,
    note="A domain that sends no mail can refuse all of it at once.",
)
MAILING_LIST_NOTE = (
    "This plan assumes your users post to mailing lists (untick it under Plan settings if they do not). "
    "RFC 9989 advises such domains not to publish p=reject: a list "
    "that changes messages (a footer, a subject tag) breaks their DKIM signature, and receivers would "
    "refuse your users' posts to the list's members. Stopping at quarantine keeps that mail deliverable "
    "(to spam at worst) while spoofing is still stopped; go on to reject only if mail broken in transit "
    "(M6) stays negligible."
)
PCT_NOTE = (
    "pct only affects receivers that follow RFC 7489: receivers that follow RFC 9989 ignore it and apply the "
    "policy to all failing mail. Ramp steps are for the older receivers; plan as if the policy applies in full."
)

DEFAULTS = {
    "window_days": 14,
    "monitor_days": 30,
    "monitor_days_without_lists": 7,
    "report_days": 0.90,  # M5: share of days with reports from at least `large_reporters`
    "large_reporters": 2,
    "quiet_days": 14,  # M4: days since a new source with at least `new_source_messages`
    "new_source_messages": 10,
    "authorised_pass": 0.98,  # M1 to leave monitor
    "unknown_passing": 0,  # M3
    "changed_failures": 0.005,  # M7
    "strict_pass": 0.995,  # M1 in S3/S4
    "strict_dkim": 0.98,  # M2 in S3/S4
    "forwarding": 0.005,  # M6
    "rollback_drop": 0.01,  # S5: M1 one point below its level ...
    "rollback_days": 2,  # ... for this many days in a row
    "rollback_source_daily": 100,  # or an authorised source failing more than this a day
    # Minimum days in the later stages (monitor's are above).
    "days_quarantine-testing": 14,
    "days_quarantine-25": 7,
    "days_quarantine-50": 7,
    "days_quarantine": 7,
    "days_reject-testing": 14,
}


@dataclass
class Metrics:
    """What readiness measured over the window; rates are None without authorised mail."""

    messages: int = 0
    authorised: int = 0
    authorised_pass_rate: float | None = None  # M1
    authorised_dkim_rate: float | None = None  # M2
    unknown_passing: int = 0  # M3
    days_since_new_source: int | None = None  # M4 (None: no source ever reached the size)
    report_day_share: float = 0.0  # M5: days with >= N large reporters / window days
    reporters: int = 0  # M5
    forwarding_share: float = 0.0  # M6: failing volume broken in transit / all volume
    changed_failure_rate: float | None = None  # M7: authorised failing since the stage began
    nonexistent_subdomain_messages: int = 0  # M8
    nonexistent_subdomain_authorised: int = 0  # M8: the part from authorised sources
    testing_echoed: float | None = None  # share of reports since the change that show t=y
    policy_echoed: float | None = None  # share of reports since the change that show the stage's p


@dataclass
class Check:
    metric: str
    label: str
    value: str
    threshold: str
    ok: bool


@dataclass
class Verdict:
    stage: Stage
    next_stage: Stage | None
    days_in_stage: int
    min_days: int
    checks: list[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.next_stage is not None and self.days_in_stage >= self.min_days and all(c.ok for c in self.checks)


def _percent(value: float | None) -> str:
    return "no authorised mail yet" if value is None else f"{100 * value:.1f}%"


def index_of(key: str) -> int:
    """A stage's place in the plan (parked, or an unknown key, counts as before the first)."""
    keys = [stage.key for stage in STAGES]
    return keys.index(key) if key in keys else -1


def stage_of(tags: dict, *, parked: bool = False) -> Stage | None:
    """The stage whose record these published (or reported) tags are, or the last stage they have
    reached when they fall between two (p=quarantine; pct=10 has left testing but not reached 25%);
    None for no valid policy. With ``parked``, reject for the domain and its subdomains is PARKED."""
    tags = {str(key).lower(): str(value).strip().lower() for key, value in tags.items()}
    policy = tags.get("p", "")
    try:
        pct = int(tags.get("pct", "100") or 100)
    except ValueError:
        pct = 100
    testing = tags.get("t") == "y" or pct == 0
    if parked and policy == "reject" and tags.get("sp", "reject") == "reject" and tags.get("np", "reject") == "reject":
        return PARKED
    if policy == "none":
        return BY_KEY["monitor"]
    if policy == "quarantine":
        if testing or pct < 25:
            return BY_KEY["quarantine-testing"]
        return BY_KEY["quarantine-25" if pct < 50 else "quarantine-50" if pct < 100 else "quarantine"]
    if policy == "reject":
        return BY_KEY["reject-testing" if testing or pct < 100 else "reject"]
    return None


def next_of(key: str) -> Stage | None:
    keys = [stage.key for stage in STAGES]
    if key not in keys or key == keys[-1]:
        return None
    return STAGES[keys.index(key) + 1]


def previous_of(key: str) -> Stage | None:
    keys = [stage.key for stage in STAGES]
    if key not in keys or key == keys[0]:
        return None
    return STAGES[keys.index(key) - 1]


def min_days(stage: Stage, thresholds: dict, mailing_lists: bool) -> int:
    """How long the plan stays in a stage at least; an operator can change it per domain."""
    if stage.key == "monitor":
        return thresholds["monitor_days"] if mailing_lists else thresholds["monitor_days_without_lists"]
    return int(thresholds.get(f"days_{stage.key}", stage.min_days))


def _at_least(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def evaluate(key: str, metrics: Metrics, thresholds: dict, days_in_stage: int, mailing_lists: bool) -> Verdict:
    """The conditions to leave stage ``key`` (standards.md section 4), each with its value."""
    t = {**DEFAULTS, **thresholds}
    stage = BY_KEY[key]
    verdict = Verdict(stage, next_of(key), days_in_stage, min_days(stage, t, mailing_lists))
    add = verdict.checks.append
    if key == "monitor":
        add(
            Check(
                "M5",
                f"days with reports from at least {t['large_reporters']} large reporters",
                f"{100 * metrics.report_day_share:.0f}% ({metrics.reporters} reporters)",
                f">= {100 * t['report_days']:.0f}%",
                metrics.report_day_share >= t["report_days"],
            )
        )
        quiet = metrics.days_since_new_source
        add(
            Check(
                "M4",
                f"days since a new source with {t['new_source_messages']}+ messages appeared",
                "no source yet" if quiet is None else str(quiet),
                f">= {t['quiet_days']}",
                quiet is not None and quiet >= t["quiet_days"],
            )
        )
        add(
            Check(
                "M1",
                "DMARC pass rate of authorised mail",
                _percent(metrics.authorised_pass_rate),
                f">= {100 * t['authorised_pass']:.1f}%",
                _at_least(metrics.authorised_pass_rate, t["authorised_pass"]),
            )
        )
        add(
            Check(
                "M3",
                "messages passing DMARC from sources not in your inventory",
                f"{metrics.unknown_passing:,}",
                f"= {t['unknown_passing']}",
                metrics.unknown_passing <= t["unknown_passing"],
            )
        )
    elif key == "quarantine-testing":
        add(
            Check(
                "M7",
                "authorised mail failing since the change",
                _percent(metrics.changed_failure_rate),
                f"< {100 * t['changed_failures']:.1f}%",
                metrics.changed_failure_rate is not None and metrics.changed_failure_rate < t["changed_failures"],
            )
        )
        add(
            Check(
                "echo",
                "reports since the change that show testing mode (t=y)",
                "no reports yet" if metrics.testing_echoed is None else f"{100 * metrics.testing_echoed:.0f}%",
                "> 0%",
                bool(metrics.testing_echoed),
            )
        )
    elif key != "reject":
        add(
            Check(
                "M1",
                "DMARC pass rate of authorised mail",
                _percent(metrics.authorised_pass_rate),
                f">= {100 * t['strict_pass']:.1f}%",
                _at_least(metrics.authorised_pass_rate, t["strict_pass"]),
            )
        )
        add(
            Check(
                "M2",
                "authorised mail with aligned DKIM",
                _percent(metrics.authorised_dkim_rate),
                f">= {100 * t['strict_dkim']:.1f}%",
                _at_least(metrics.authorised_dkim_rate, t["strict_dkim"]),
            )
        )
        add(
            Check(
                "M6",
                "failing mail broken in transit (forwarding, mailing lists)",
                f"{100 * metrics.forwarding_share:.2f}%",
                f"< {100 * t['forwarding']:.1f}%",
                metrics.forwarding_share < t["forwarding"],
            )
        )
    return verdict


def rollback_reason(daily_pass_rates: list[float | None], baseline: float | None, daily_source_failures: dict,
                    thresholds: dict) -> str:  # fmt: skip
    """Why the last change must be undone, or "" (S5's rule, applied after every change).

    ``daily_pass_rates`` are M1 per day since the change, oldest first; ``baseline`` is M1
    before it; ``daily_source_failures`` maps an authorised source to its failing messages
    on each day since the change.
    """
    t = {**DEFAULTS, **thresholds}
    if baseline is not None:
        run = 0
        for rate in daily_pass_rates:
            run = run + 1 if rate is not None and rate <= baseline - t["rollback_drop"] else 0
            if run >= t["rollback_days"]:
                return (
                    f"the DMARC pass rate of authorised mail fell {100 * t['rollback_drop']:.0f} point(s) below "
                    f"{100 * baseline:.1f}% for {t['rollback_days']} days in a row"
                )
    for source, per_day in daily_source_failures.items():
        worst = max(per_day, default=0)
        if worst > t["rollback_source_daily"]:
            return f"{source} (authorised) had {worst:,} failing messages in one day"
    return ""

"""The staged MTA-STS rollout (RFC 8461): no policy, then ``testing``, then ``enforce``, as pure data and checks.

No Django here: reports/rollout/mtasts.py measures a domain from its TLS reports and its publication check,
and this module says which conditions hold at a stage, whether the domain may move on, and whether the
last change should be rolled back.

In ``testing`` senders deliver as before and report what would have failed (RFC 8461 section 5); that is
the window in which every MX host must show it serves valid TLS to every reporter before ``enforce`` makes
a failure a bounce.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    mode: str  # the policy file's mode:, or "" when no policy is published
    min_days: int
    note: str


STAGES = (
    Stage("none", "No MTA-STS policy", "", 0, "Senders use TLS when offered but fall back to plain text silently."),
    Stage(
        "testing",
        "Testing",
        "testing",
        14,
        "Senders deliver as before and send TLS reports saying which deliveries would have failed.",
    ),
    Stage("enforce", "Enforce", "enforce", 0, "Senders refuse to deliver without valid TLS to a listed MX host."),
)
BY_KEY = {stage.key: stage for stage in STAGES}

DEFAULTS = {
    "window_days": 14,  # TLS reports read for the metrics
    "testing_days": 14,  # at least this long in testing before enforce
    "min_sessions": 100,  # sessions reported in the window before the figures mean anything
    "max_failure_rate": 0.01,  # per MX host, in the window
}

# Failures that mean a sender could not get or trust the policy or an MX host's certificate: in enforce
# each of them is a bounced message.
BLOCKING_RESULTS = (
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
    "validation-failure",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "starttls-not-supported",
)


@dataclass
class MxMetrics:
    host: str
    sessions: int = 0
    failed: int = 0
    blocking: dict[str, int] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float:
        return self.failed / self.sessions if self.sessions else 0.0


@dataclass
class Metrics:
    """What the TLS reports of the window say."""

    sessions: int = 0
    failed: int = 0
    reporters: int = 0
    days_in_stage: int = 0
    per_mx: list[MxMetrics] = field(default_factory=list)
    policy_errors: dict[str, int] = field(default_factory=dict)  # sts-policy-* failures not tied to one MX


@dataclass
class Findings:
    """What the last publication check found (reports/rollout/stscheck.py)."""

    checked: bool = False
    mx_hosts: list[str] = field(default_factory=list)
    sts_record: bool = False
    sts_id: str = ""
    policy_ok: bool = False
    policy_mode: str = ""
    unmatched_mx: list[str] = field(default_factory=list)
    tlsrpt_record: bool = False
    bad_certificates: list[str] = field(default_factory=list)  # MX hosts whose STARTTLS check failed
    starttls_checked: bool = False


@dataclass
class Check:
    key: str
    label: str
    ok: bool
    detail: str = ""


@dataclass
class Readiness:
    stage: Stage
    next_stage: Stage | None
    checks: list[Check]
    rollback: str = ""

    @property
    def ready(self) -> bool:
        return self.next_stage is not None and all(check.ok for check in self.checks)


def next_of(stage: Stage) -> Stage | None:
    index = STAGES.index(stage)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


def previous_of(stage: Stage) -> Stage | None:
    index = STAGES.index(stage)
    return STAGES[index - 1] if index else None


def evaluate(stage: Stage, metrics: Metrics, findings: Findings, thresholds: dict | None = None) -> Readiness:
    limits = {**DEFAULTS, **(thresholds or {})}
    if stage.key == "none":
        checks = to_testing(findings)
    elif stage.key == "testing":
        checks = to_enforce(metrics, findings, limits)
    else:
        checks = []
    return Readiness(stage, next_of(stage), checks, rollback_advice(stage, metrics, findings, limits))


def to_testing(findings: Findings) -> list[Check]:
    return [
        Check(
            "mx",
            "The domain has MX hosts",
            bool(findings.mx_hosts),
            ", ".join(findings.mx_hosts)
            if findings.mx_hosts
            else "no MX record found: MTA-STS protects mail to MX hosts",
        ),
        Check(
            "tlsrpt",
            "A TLS-RPT record asks senders for TLS reports",
            findings.tlsrpt_record,
            "" if findings.tlsrpt_record else "publish the _smtp._tls record first, or testing tells you nothing",
        ),
        certificates_check(findings),
    ]


def to_enforce(metrics: Metrics, findings: Findings, limits: dict) -> list[Check]:
    checks = [
        Check(
            "days",
            f"At least {limits['testing_days']} days in testing",
            metrics.days_in_stage >= limits["testing_days"],
            f"{metrics.days_in_stage} days so far",
        ),
        Check(
            "sessions",
            f"At least {limits['min_sessions']} TLS sessions reported in {limits['window_days']} days",
            metrics.sessions >= limits["min_sessions"],
            f"{metrics.sessions} sessions from {metrics.reporters} reporters",
        ),
        published_check(findings, "testing"),
        certificates_check(findings),
    ]
    worst = [mx for mx in metrics.per_mx if mx.failure_rate > limits["max_failure_rate"]]
    checks.append(
        Check(
            "failure-rate",
            f"No MX host fails more than {limits['max_failure_rate']:.1%} of its sessions",
            not worst,
            "; ".join(f"{mx.host}: {mx.failure_rate:.2%} of {mx.sessions}" for mx in worst),
        )
    )
    blocking = {f"{mx.host}: {kind}": n for mx in metrics.per_mx for kind, n in mx.blocking.items()}
    blocking.update({f"policy: {kind}": n for kind, n in metrics.policy_errors.items()})
    checks.append(
        Check(
            "blocking",
            "No policy fetch, validation or certificate failures reported",
            not blocking,
            "; ".join(f"{where} ({n} sessions)" for where, n in sorted(blocking.items())),
        )
    )
    return checks


def published_check(findings: Findings, mode: str) -> Check:
    problems = []
    if not findings.checked:
        problems.append("not checked yet")
    else:
        if not findings.sts_record:
            problems.append("no _mta-sts record")
        if not findings.policy_ok:
            problems.append("the policy file cannot be fetched or read")
        elif findings.policy_mode != mode:
            problems.append(f"the policy says mode: {findings.policy_mode or '(none)'}")
        if findings.unmatched_mx:
            problems.append(f"MX hosts the policy does not list: {', '.join(findings.unmatched_mx)}")
    return Check(
        "published", f"The {mode} policy is published and lists every MX host", not problems, "; ".join(problems)
    )


def certificates_check(findings: Findings) -> Check:
    if not findings.starttls_checked:
        return Check("certificates", "Every MX host offers STARTTLS with a valid certificate", True, "not checked here")
    return Check(
        "certificates",
        "Every MX host offers STARTTLS with a valid certificate",
        not findings.bad_certificates,
        "; ".join(findings.bad_certificates),
    )


def rollback_advice(stage: Stage, metrics: Metrics, findings: Findings, limits: dict) -> str:
    """In enforce, a reason to go back to testing: every failure there is mail that bounced."""
    if stage.key != "enforce":
        return ""
    reasons = []
    if findings.checked and not findings.policy_ok:
        reasons.append("the policy file cannot be fetched: senders that cached it still enforce it")
    if findings.unmatched_mx:
        reasons.append(f"MX hosts the policy does not list: {', '.join(findings.unmatched_mx)}")
    for mx in metrics.per_mx:
        if mx.sessions and mx.failure_rate > limits["max_failure_rate"]:
            reasons.append(f"{mx.host} failed {mx.failure_rate:.1%} of {mx.sessions} sessions")
    for kind, n in sorted(metrics.policy_errors.items()):
        reasons.append(f"{n} sessions reported {kind}")
    if not reasons:
        return ""
    return "Publish mode: testing (with a new id) until this is fixed: " + "; ".join(reasons) + "."

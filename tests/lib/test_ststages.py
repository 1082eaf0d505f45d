"""The MTA-STS stages as pure checks: what each stage needs to move on, and when enforce should go back."""

from reports.lib import ststages
from reports.lib.ststages import Findings, Metrics, MxMetrics

NONE, TESTING, ENFORCE = ststages.STAGES

PUBLISHED = Findings(
    checked=True, mx_hosts=["mx1.example.com"], sts_record=True, sts_id="1", policy_ok=True, policy_mode="testing",
    tlsrpt_record=True, starttls_checked=True,
)  # fmt: skip


def checks(readiness) -> dict[str, bool]:
    return {check.key: check.ok for check in readiness.checks}


def test_testing_needs_mx_hosts_a_tlsrpt_record_and_good_certificates():
    assert checks(ststages.evaluate(NONE, Metrics(), Findings())) == {
        "mx": False,
        "tlsrpt": False,
        "certificates": True,
    }
    bad = Findings(mx_hosts=["mx1.example.com"], tlsrpt_record=True, starttls_checked=True, bad_certificates=["x"])
    assert not ststages.evaluate(NONE, Metrics(), bad).ready
    good = Findings(mx_hosts=["mx1.example.com"], tlsrpt_record=True, starttls_checked=True)
    readiness = ststages.evaluate(NONE, Metrics(), good)
    assert readiness.ready and readiness.next_stage == TESTING


def test_enforce_needs_time_volume_publication_and_clean_reports():
    clean = Metrics(sessions=1000, reporters=2, days_in_stage=14, per_mx=[MxMetrics("mx1.example.com", 1000, 5)])
    assert ststages.evaluate(TESTING, clean, PUBLISHED).ready
    assert not checks(ststages.evaluate(TESTING, Metrics(sessions=1000, days_in_stage=13), PUBLISHED))["days"]
    assert not checks(ststages.evaluate(TESTING, Metrics(sessions=99, days_in_stage=20), PUBLISHED))["sessions"]
    failing = Metrics(sessions=1000, days_in_stage=20, per_mx=[MxMetrics("mx1.example.com", 1000, 11)])
    assert not checks(ststages.evaluate(TESTING, failing, PUBLISHED))["failure-rate"]
    assert checks(ststages.evaluate(TESTING, failing, PUBLISHED, {"max_failure_rate": 0.02}))["failure-rate"]
    fetch = Metrics(sessions=1000, days_in_stage=20, policy_errors={"sts-policy-fetch-error": 1})
    readiness = ststages.evaluate(TESTING, fetch, PUBLISHED)
    assert (
        not checks(readiness)["blocking"]
        and "policy: sts-policy-fetch-error (1 sessions)" in readiness.checks[-1].detail
    )


def test_publication_must_show_testing_and_every_mx_host():
    enforce_already = Findings(**{**PUBLISHED.__dict__, "policy_mode": "enforce"})
    check = ststages.published_check(enforce_already, "testing")
    assert not check.ok and "mode: enforce" in check.detail
    unmatched = Findings(**{**PUBLISHED.__dict__, "unmatched_mx": ["mx2.example.com"]})
    assert "mx2.example.com" in ststages.published_check(unmatched, "testing").detail
    assert ststages.published_check(Findings(), "testing").detail == "not checked yet"


def test_enforce_advises_going_back_to_testing_when_mail_would_bounce():
    quiet = Metrics(sessions=1000, per_mx=[MxMetrics("mx1.example.com", 1000, 1)])
    assert ststages.evaluate(ENFORCE, quiet, PUBLISHED).rollback == ""
    loud = Metrics(sessions=1000, per_mx=[MxMetrics("mx1.example.com", 1000, 50)])
    advice = ststages.evaluate(ENFORCE, loud, PUBLISHED).rollback
    assert advice.startswith("Publish mode: testing") and "mx1.example.com failed 5.0% of 1000" in advice
    broken = Findings(**{**PUBLISHED.__dict__, "policy_ok": False})
    assert "cannot be fetched" in ststages.evaluate(ENFORCE, Metrics(), broken).rollback
    assert ststages.evaluate(TESTING, loud, broken).rollback == ""  # testing bounces nothing


def test_the_last_stage_has_no_next_and_the_first_no_previous():
    assert ststages.next_of(ENFORCE) is None and ststages.previous_of(NONE) is None
    assert not ststages.evaluate(ENFORCE, Metrics(), PUBLISHED).ready

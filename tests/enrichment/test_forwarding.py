"""Forwarding and mailing-list classification of failing records."""

from reports.enrichment.forwarding import classify


def record(dkim="fail", spf="fail", header_from="example.com", reasons=(), dkim_results=()):
    return classify(dkim=dkim, spf=spf, header_from=header_from, reasons=list(reasons), dkim_results=list(dkim_results))


def test_passing_mail_is_not_called_forwarded():
    assert not record(dkim="pass", reasons=[{"type": "forwarded"}]).likely


def test_the_receiver_saying_so_is_high_confidence():
    for kind in ("forwarded", "mailing_list", "trusted_forwarder"):
        result = record(reasons=[{"type": kind}])
        assert (result.likely, result.confidence) == (True, "high")
        assert kind.replace("_", " ") in result.evidence


def test_local_policy_with_an_arc_verdict_is_medium_confidence():
    result = record(reasons=[{"type": "local_policy", "comment": "arc=pass as.1.google.com=pass"}])
    assert (result.likely, result.confidence) == (True, "medium")
    assert not record(reasons=[{"type": "local_policy", "comment": "whitelisted"}]).likely


def test_an_aligned_dkim_signature_that_failed_with_spf_failing_is_low_confidence():
    result = record(header_from="example.com", dkim_results=[{"domain": "mail.example.com", "result": "fail"}])
    assert (result.likely, result.confidence) == (True, "low")
    assert "mail.example.com" in result.evidence


def test_a_failing_foreign_signature_or_no_signature_is_not_forwarding():
    assert not record(dkim_results=[{"domain": "spammer.example", "result": "fail"}]).likely
    assert not record().likely

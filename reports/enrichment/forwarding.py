"""Is failing mail likely forwarded (or sent through a mailing list) rather than forged?

Forwarding breaks SPF (the forwarder's IP is not in the sender's SPF record) and
often DKIM (lists rewrite subjects and footers). Receivers say so in override
reasons; where they do not, an aligned DKIM signature that failed while SPF failed
is the fingerprint of a body changed in transit. Each classification carries a
confidence and the evidence, so the operator can judge.
"""

from dataclasses import dataclass

from reports.lib.names import organizational_domain
from reports.lib.parsing.aggregate import passes_dmarc

RECEIVER_SAYS = {"forwarded", "mailing_list", "trusted_forwarder"}


@dataclass(frozen=True)
class Forwarding:
    likely: bool
    confidence: str  # "high", "medium", "low", or "" when not likely
    evidence: str


NOT_FORWARDED = Forwarding(False, "", "")


def aligned(domain: str, header_from: str) -> bool:
    """Relaxed alignment: the same organizational domain."""
    if not domain or not header_from:
        return False
    return organizational_domain(domain.lower()) == organizational_domain(header_from.lower())


def classify(*, dkim: str, spf: str, header_from: str, reasons: list[dict], dkim_results: list[dict]) -> Forwarding:
    """Classify one report record (its policy_evaluated results, reasons and DKIM auth results).

    The one rule for "broken in transit": readiness (M6) counts the messages it says are likely
    forwarded, and the dashboard and alerts show its verdict and evidence.
    """
    if passes_dmarc(dkim, spf):
        return NOT_FORWARDED
    # Stored JSON: lists of dicts as the parser wrote them, but nothing here trusts that.
    reasons = [reason for reason in reasons or () if isinstance(reason, dict)]
    dkim_results = [result for result in dkim_results or () if isinstance(result, dict)]
    for reason in reasons:
        kind = reason.get("type", "")
        if kind in RECEIVER_SAYS:
            return Forwarding(True, "high", f"the receiver reported {kind.replace('_', ' ')}")
    for reason in reasons:
        comment = reason.get("comment", "")
        if reason.get("type") == "local_policy" and "arc" in comment.lower():
            return Forwarding(True, "medium", f"local policy with an ARC verdict: {comment[:120]}")
    for result in dkim_results:
        domain = result.get("domain", "")
        if result.get("result") == "fail" and aligned(domain, header_from):
            return Forwarding(
                True, "low", f"DKIM signature of {domain} failed while SPF failed: the message changed in transit"
            )
    return NOT_FORWARDED

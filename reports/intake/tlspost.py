"""TLS reports POSTed over HTTPS (RFC 8460 section 3): accepted without authentication, for added domains only.

Reporters cannot authenticate, so anyone can POST here. What decides is the report itself: it is read in
memory first, and only a report about a domain an organization has added reaches the ledger and the raw
store. Anything else is answered with its reason and kept nowhere, so the endpoint cannot be used to fill
the disk or to plant reports for domains nobody here manages.
"""

import io
import logging
from dataclasses import dataclass, field

from reports.intake.pipeline import ingest_bytes, limits
from reports.lib.parsing import Document, ReportError, find_documents, parse_tlsrpt
from reports.models import Intake
from reports.tenancy.ownership import owners

log = logging.getLogger("reports.security")

CONTENT_TYPES = ("application/tlsrpt+gzip", "application/tlsrpt+json")


@dataclass
class Answer:
    """The HTTP status and JSON body to send back."""

    status: int
    body: dict = field(default_factory=dict)


def accept(data: bytes, client: str) -> Answer:
    """Store a POSTed TLS report if it is about a domain an organization has added."""
    caps = limits()
    try:
        documents = read_documents(data, caps)
        domains = {policy.policy_domain for document in documents for policy in policy_domains(document, caps)}
    except ReportError as exc:
        log.warning("TLS report POST from %s refused: %s", client, exc.reason)
        return Answer(400, {"error": exc.reason})
    owned = {name: domain for name, domain in owners(domains).items() if domain is not None}
    if not owned:
        names = ", ".join(sorted(domains))[:500]
        log.warning("TLS report POST from %s refused: no organization has added %s", client, names)
        return Answer(403, {"error": f"no organization here has added {names}: the report was not stored"})
    organizations = {domain.organization for domain in owned.values()}
    organization = organizations.pop() if len(organizations) == 1 else None
    result = ingest_bytes(data, source=Intake.Channel.HTTPS, name=title(domains), organization=organization)
    statuses = {outcome.status for outcome in result.outcomes}
    body = {"intake": result.intake.pk, "status": result.intake.status, "reports": len(result.outcomes)}
    if "stored" in statuses:
        return Answer(201, body)
    if statuses == {"duplicate"}:
        return Answer(200, body)
    reasons = [outcome.reason for outcome in result.outcomes if outcome.reason]
    return Answer(400, {**body, "error": "; ".join(reasons)[:2000]})


def read_documents(data: bytes, caps) -> list[Document]:
    documents = []
    for found in find_documents(io.BytesIO(data), "https post", caps):
        if not isinstance(found, Document):
            raise ReportError(found.reason)
        if found.kind != "tlsrpt":
            raise ReportError("only SMTP TLS reports (RFC 8460) are accepted here; DMARC reports go by mail")
        documents.append(found)
    if not documents:
        raise ReportError("the body holds no TLS report")
    return documents


def policy_domains(document: Document, caps) -> list:
    with document.open() as stream:
        return parse_tlsrpt(stream, caps, list(document.notes)).policies


def title(domains: set[str]) -> str:
    return f"TLS report POST for {', '.join(sorted(domains))}"[:200]

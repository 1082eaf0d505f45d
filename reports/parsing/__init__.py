"""Pure parsing of DMARC aggregate reports: bytes in, dataclasses out. No Django here."""

from .aggregate import Policy, Record, Report, parse_aggregate
from .archive import Document, Refusal
from .errors import NotAggregateReport, ReportError
from .extract import find_documents
from .limits import Limits

__all__ = [
    "Document",
    "Limits",
    "NotAggregateReport",
    "Policy",
    "Record",
    "Refusal",
    "Report",
    "ReportError",
    "find_documents",
    "parse_aggregate",
]

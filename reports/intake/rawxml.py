"""Find the XML document of one stored report inside the raw input it came in."""

from collections.abc import Iterator

from reports.intake import rawstore
from reports.intake.pipeline import fingerprint, intake_label, limits
from reports.lib.parsing import Document, ReportError, find_documents, parse_aggregate
from reports.models import Report

CHUNK = 64 * 1024


def report_xml(report: Report) -> Iterator[bytes] | None:
    """The report's XML as sent (decompressed), in chunks; None when its raw input is gone.

    An input (an email, a zip) can hold several reports: the one whose fingerprint
    matches is the one served.
    """
    intake = report.intake
    if intake is None or not rawstore.exists(intake.sha256):
        return None
    caps = limits()
    label = intake_label(intake)
    with rawstore.open_raw(intake.sha256) as raw:
        for index, found in enumerate(find_documents(raw, label, caps)):
            if not isinstance(found, Document):
                continue
            try:
                with found.open() as stream:
                    matches = fingerprint(parse_aggregate(stream, caps, found.notes)) == report.fingerprint
            except ReportError:
                continue
            if matches:
                return _chunks(intake.sha256, label, index)
    return None


def _chunks(sha256: str, label: str, wanted: int) -> Iterator[bytes]:
    """Open the input again and stream its ``wanted``-th document (the first pass only matched it)."""
    caps = limits()
    with rawstore.open_raw(sha256) as raw:
        for index, found in enumerate(find_documents(raw, label, caps)):
            if index == wanted and isinstance(found, Document):
                with found.open() as stream:
                    while chunk := stream.read(CHUNK):
                        yield chunk
                return

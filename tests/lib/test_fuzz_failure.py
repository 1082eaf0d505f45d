"""Property-based fuzzing of the DMARC failure report path: whatever the input, only ReportError
escapes parse_failure, what it returns respects the caps, every accepted input passes
looks_like_failure, and redaction leaves no original local part.

Inputs are arbitrary bytes, ARF emails whose fields hold any text, and valid ARF and plain-text
reports mutated (cut short, bytes flipped, inserted, dropped or repeated).

Like tests/lib/test_fuzz.py: derandomized, no example database, FUZZ_EXAMPLES=20000
for a longer hunt by hand.
"""

import dataclasses
import io
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.lib.parsing import FailureReport, Limits, Refusal, ReportError, find_documents, looks_like_failure
from reports.lib.parsing import parse_failure as parse
from reports.lib.redact import hash_local_part, redact
from tests.support.failures import arf_email, text_failure_email
from tests.support.fuzzing import mutator

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL = Limits(max_message_bytes=256 * 1024, max_mime_parts=20, max_header_bytes=16 * 1024)
TOKENS = [b"\r\n", b"\n\n", b"--arf", b"--arf--", b":", b"=?utf-8?b?", b"?=", b"Content-Type: message/rfc822\n"]
TEXT = st.text(st.characters(blacklist_characters="\r\n"), max_size=40)
ENCODINGS = st.sampled_from(["7bit", "base64", "quoted-printable"])


def exhaust(data: bytes, limits: Limits = SMALL) -> FailureReport | None:
    """What ingest does with an input short of storing it; only ReportError may leave."""
    try:
        for found in find_documents(io.BytesIO(data), "fuzz", limits):
            if isinstance(found, Refusal) or found.kind != "failure":
                continue
            assert looks_like_failure(found.open().read())
    except ReportError:
        pass
    try:
        report = parse(data, limits)
    except ReportError:
        return None
    assert looks_like_failure(data)
    check_caps(report)
    return report


def check_caps(report: FailureReport) -> None:
    for item in dataclasses.fields(report):
        value = getattr(report, item.name)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                assert len(text) <= (64 * 1024 if item.name == "original_headers" else 998), item.name
                assert "\x00" not in text
                text.encode("utf-8")  # no lone surrogates


@st.composite
def arf_shaped(draw) -> bytes:
    """An ARF email whose every field is valid, missing or any text."""

    def field(valid: str | None) -> str | None:
        return draw(st.one_of(st.just(valid), st.none(), TEXT))

    return arf_email(
        feedback_type=field("auth-failure"),
        auth_failures=tuple(draw(st.lists(TEXT, max_size=3))),
        reported_domain=field("example.com"),
        source_ip=field("198.51.100.7"),
        arrival_date=field("Mon, 07 Dec 2026 10:00:00 +0000"),
        original_mail_from=field("bounce@example.com"),
        original_rcpt_to=tuple(draw(st.lists(TEXT, max_size=2))),
        incidents=field("1"),
        subject=draw(TEXT),
        header_from=draw(TEXT),
        headers_only=draw(st.booleans()),
        encoding=draw(ENCODINGS),
        feedback_encoding=draw(ENCODINGS),
        attachment=draw(st.one_of(st.none(), st.binary(max_size=64))),
    )


VALID = st.one_of(
    st.builds(
        lambda headers_only, encoding, feedback_encoding: arf_email(
            headers_only=headers_only, encoding=encoding, feedback_encoding=feedback_encoding, attachment=b"%PDF"
        ),
        st.booleans(),
        ENCODINGS,
        ENCODINGS,
    ),
    st.just(text_failure_email()),
)


mutated = mutator(st.sampled_from(TOKENS))


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(arf_shaped())
def test_arf_emails_with_any_field_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(mutated(VALID))
def test_mutated_failure_reports_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(st.from_regex(r"[a-z][a-z0-9._+-]{2,20}", fullmatch=True), st.booleans(), ENCODINGS)
def test_redaction_leaves_no_local_part_of_any_sender(local, headers_only, encoding):
    address = f"{local}@sender.example"
    data = arf_email(
        original_mail_from=address,
        header_from=address,
        original_rcpt_to=(f"{local}@receiver.example",),
        subject=f"for {address}",
        headers_only=headers_only,
        encoding=encoding,
        authentication_results=(f"receiver.example; spf=fail smtp.mailfrom={address}",),
    )
    report = redact(parse(data, SMALL), hash_key=b"key", defang=True)
    hashed = hash_local_part(address, b"key")
    assert report.header_from == hashed
    for item in dataclasses.fields(report):
        value = getattr(report, item.name)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                assert f"{local}@" not in text, (item.name, text)

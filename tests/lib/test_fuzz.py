"""Property-based fuzzing of reports.lib.parsing: whatever the input, the only exception that escapes is ReportError.

Inputs are arbitrary bytes, bytes behind each magic number the sniffer knows, generated
reports and, mostly, valid reports, gzips, zips and emails mutated (cut short, bytes
flipped, bytes or DMARC elements inserted, slices dropped or repeated). Each input goes
through everything ingest does short of the database: find the documents, open each,
parse it (again with salvage when the strict parse says it may help) and read every record.

The examples are derandomized and no example database is kept, so CI runs the same
inputs every time; FUZZ_EXAMPLES=20000 runs a longer hunt by hand.
"""

import base64
import io
import os
import random
import struct
import zipfile
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.lib.parsing import Limits, Refusal, ReportError, find_documents, parse_aggregate
from reports.lib.parsing.message import decoded, parse_message, subject
from tests.support.builders import gzipped, record_xml, report_xml, zipped
from tests.support.fuzzing import mutator
from tests.support.hostile.bombs import lzma_member, zip_bytes
from tests.support.parsing import parse_all

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Small caps, so that a generated bomb or flood reaches them in a few kilobytes.
SMALL = Limits(
    max_message_bytes=256 * 1024,
    max_xml_bytes=1024 * 1024,
    max_members=4,
    max_mime_parts=20,
    max_depth=12,
    max_field_bytes=256,
    max_element_bytes=64 * 1024,
    max_records=50,
    max_header_bytes=8 * 1024,
)
MAGICS = [b"", b"\x1f\x8b\x08\x00", b"PK\x03\x04", b"PK\x05\x06", b"<", b"\xef\xbb\xbf<", b"\xff\xfe<\x00", b"From: "]
TAGS = [
    "feedback",
    "report_metadata",
    "policy_published",
    "record",
    "row",
    "source_ip",
    "count",
    "policy_evaluated",
    "disposition",
    "dkim",
    "spf",
    "reason",
    "type",
    "identifiers",
    "header_from",
    "auth_results",
    "domain",
    "date_range",
    "begin",
    "end",
    "report_id",
    "org_name",
    "email",
    "extension",
]
VALUES = st.one_of(
    st.sampled_from(["", "pass", "Fail", "none", "hardfail", "1", "-1", "1e400", "nan", "192.0.2.1", "::1", "xn--"]),
    st.text(max_size=40),
)


def exhaust(data: bytes, limits: Limits = SMALL) -> None:
    """Everything ingest does with an input short of storing it; only ReportError may leave."""
    try:
        for found in find_documents(io.BytesIO(data), "fuzz", limits):
            if isinstance(found, Refusal):
                continue
            for salvage in (False, True):
                try:
                    report = parse_aggregate(found.open(), limits, found.notes, salvage=salvage)
                    for _ in report.records:
                        pass
                    break
                except ReportError as exc:
                    if not exc.salvageable:
                        break
    except ReportError:
        pass


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


@st.composite
def reports(draw) -> bytes:
    """A report whose values are drawn (escaped, so it is well-formed XML, not necessarily valid DMARC)."""
    records = [
        record_xml(
            ip=escape(draw(st.one_of(st.sampled_from(["192.0.2.1", "2001:db8::1"]), VALUES))),
            count=escape(draw(st.one_of(st.integers(0, 10**20).map(str), VALUES))),
            disposition=escape(draw(VALUES)),
            dkim=escape(draw(VALUES)),
            spf=escape(draw(VALUES)),
            header_from=escape(draw(VALUES)),
            reasons=tuple(draw(st.lists(st.tuples(VALUES, VALUES).map(lambda t: tuple(map(escape, t))), max_size=2))),
            identifiers_tag=draw(st.sampled_from(["identifiers", "identities"])),
        )
        for _ in range(draw(st.integers(1, 4)))
    ]
    return report_xml(
        records,
        org_name=escape(draw(VALUES)),
        report_id=escape(draw(VALUES)) or "r",
        begin=escape(draw(st.one_of(st.integers(-(10**12), 10**12).map(str), VALUES))),
        domain=escape(draw(st.one_of(st.just("example.com"), VALUES))),
        namespace=draw(st.sampled_from([None, "urn:ietf:params:xml:ns:dmarc-2.0", "http://dmarc.org/dmarc-xml/0.1"])),
    )


def element() -> st.SearchStrategy[bytes]:
    """A DMARC element, possibly nested, possibly unclosed or with raw markup in its text."""
    leaf = st.builds(lambda tag, text: f"<{tag}>{text}</{tag}>".encode(), st.sampled_from(TAGS), VALUES.map(escape))
    return st.recursive(
        st.one_of(leaf, st.sampled_from([b"<record>", b"</record>", b"</feedback>", b"<!--", b"&amp", b"<![CDATA["])),
        lambda inner: st.builds(
            lambda tag, children: f"<{tag}>".encode() + b"".join(children) + f"</{tag}>".encode(),
            st.sampled_from(TAGS),
            st.lists(inner, max_size=3),
        ),
        max_leaves=8,
    )


mutated = mutator(element())


def gzip_of(xml: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda data, junk: gzipped(data) + junk, xml, st.sampled_from([b"", b"\0\0", b"junk", gzipped(b"")])
    )


def zip_of(xml: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    names = st.sampled_from(["report.xml", "a/b.xml", "__MACOSX/._r.xml", "dir/", "../x.xml", "r.xml.gz"])
    methods = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
    return st.builds(
        lambda members, method: zipped(dict(members), method),
        st.lists(st.tuples(names, xml), min_size=1, max_size=3),
        methods,
    )


@st.composite
def emails(draw, payload: st.SearchStrategy[bytes]) -> bytes:
    """A report email built by the email package: attachments in various encodings, nested or wrapped."""
    message = EmailMessage(policy=compat32.clone(linesep=draw(st.sampled_from(["\n", "\r\n"]))))
    message["From"] = "dmarc@reporter.example"
    message["Subject"] = draw(st.text(max_size=30).map(lambda s: s.replace("\n", " ").replace("\r", " ")))
    attachments = draw(
        st.lists(st.tuples(payload, st.sampled_from(["base64", "quoted-printable", "8bit"])), max_size=3)
    )
    if not attachments and draw(st.booleans()):
        data, encoding = draw(payload), draw(st.sampled_from(["base64", "quoted-printable", "8bit"]))
        message["Content-Type"] = draw(st.sampled_from(["application/gzip", "application/octet-stream", "text/xml"]))
        return _with_body(message, data, encoding).as_bytes()
    message["Content-Type"] = f'multipart/{draw(st.sampled_from(["mixed", "alternative", "report"]))}; boundary="b-1"'
    message.set_payload([EmailMessage(policy=compat32)])
    message.get_payload()[0].set_payload("a text part")
    for index, (data, encoding) in enumerate(attachments):
        part = EmailMessage(policy=compat32)
        part["Content-Type"] = draw(st.sampled_from(["application/zip", "application/gzip", "text/xml"]))
        part["Content-Disposition"] = f'attachment; filename="r{index}"'
        _with_body(part, data, encoding)
        if draw(st.booleans()):
            wrapper = EmailMessage(policy=compat32)
            wrapper["Content-Type"] = "message/rfc822"
            inner = EmailMessage(policy=compat32)
            inner["Subject"] = "forwarded"
            inner["Content-Type"] = f'multipart/mixed; boundary="in-{index}"'
            inner.set_payload([part])
            wrapper.set_payload([inner])
            part = wrapper
        message.get_payload().append(part)
    return message.as_bytes()


def _with_body(part: EmailMessage, data: bytes, encoding: str) -> EmailMessage:
    part["Content-Transfer-Encoding"] = encoding
    if encoding == "base64":
        part.set_payload(base64.encodebytes(data).decode())
    elif encoding == "quoted-printable":
        import quopri

        part.set_payload(quopri.encodestring(data).decode())
    else:
        part.set_payload(data.decode("ascii", "surrogateescape"))
    return part


PAYLOADS = st.one_of(reports(), st.binary(max_size=64)).flatmap(
    lambda xml: st.sampled_from([xml, gzipped(xml), zipped({"r.xml": xml})])
)


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(st.tuples(st.sampled_from(MAGICS), st.binary(max_size=2048)).map(b"".join))
def test_bytes_behind_each_magic_number_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(mutated(reports()))
def test_mutated_reports_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(st.one_of(mutated(gzip_of(reports())), gzip_of(mutated(reports()))))
def test_mutated_gzips_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(st.one_of(mutated(zip_of(reports())), zip_of(st.one_of(mutated(reports()), gzip_of(reports())))))
def test_mutated_zips_only_ever_raise_report_error(data):
    exhaust(data)


@FUZZ
@given(st.one_of(mutated(emails(PAYLOADS)), emails(mutated(PAYLOADS))))
def test_mutated_emails_only_ever_raise_report_error(data):
    exhaust(data)


ENCODED_WORDS = st.lists(
    st.one_of(
        st.builds(
            "=?{}?{}?{}?=".format,
            st.one_of(st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", "utf-8*en"]), st.text(max_size=8)),
            st.sampled_from("bBqQx"),
            st.text(alphabet="AZaz09+/=_-?\xff ", max_size=24),
        ),
        st.text(max_size=8),
    ),
    max_size=6,
).map(" ".join)


@FUZZ
@given(ENCODED_WORDS)
def test_any_subject_decodes_to_text(raw):
    message = parse_message(b"From: a@b\nSubject: " + raw.encode("utf-8", "surrogateescape") + b"\n\nbody", Limits())
    assert isinstance(subject(message), str)


@FUZZ
@given(emails(PAYLOADS))
def test_the_message_splitter_finds_the_parts_the_email_package_finds(data):
    """On well-formed messages the splitter (reports/lib/parsing/message.py) agrees with the stdlib parser."""
    expected = [
        part.get_payload(decode=True)
        for part in message_from_bytes(data, policy=compat32).walk()
        if not part.is_multipart() and part.get_content_maintype() != "message"
    ]
    found = [
        decoded(part)
        for part in parse_message(data, Limits()).walk()
        if not part.is_multipart() and part.get_content_maintype() != "message"
    ]
    assert found == expected


# Regressions: found by the hostile corpus (tests/support/hostile/corpus.py), pinned here on small inputs.


def test_deeply_nested_multiparts_are_refused_instead_of_overflowing_the_stack():
    # The email package's walk() recursed once per level: 2000 levels raised RecursionError.
    data = b"From: a@b\nMIME-Version: 1.0\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (level, level) for level in range(2000)
    )
    with pytest.raises(ReportError, match="message nests MIME parts deeper than 32 levels"):
        parse_message(data, Limits(max_mime_parts=10_000))


def test_mime_parts_are_counted_while_the_message_is_split():
    # The cap was checked only after the email package had built every part: a million
    # parts in a 7 MB message took 2 GB before the refusal.
    data = b"From: a@b\nContent-Type: multipart/mixed; boundary=x\n\n" + b"--x\n\nhi\n" * 10_000 + b"--x--\n"
    with pytest.raises(ReportError, match="message has more than 100 MIME parts"):
        parse_message(data, Limits())


def test_header_sections_are_capped_in_all_parts_together():
    # The email package holds header lines as objects many times their size: a 60 MB
    # Subject took 600 MB, a million header fields 1.9 GB.
    top = b"From: a@b\nX-Pad: " + b"a" * 600 + b"\nContent-Type: multipart/mixed; boundary=x\n\n"
    part = b"--x\nX-Pad: " + b"a" * 600 + b"\n\nhi\n"
    parse_message(top + part + b"--x--\n", Limits(max_header_bytes=2048))
    with pytest.raises(ReportError, match="message headers are larger than the 2 KiB cap"):
        parse_message(top + part * 3 + b"--x--\n", Limits(max_header_bytes=2048))


def test_only_the_start_of_a_giant_subject_is_decoded():
    # Decoding a 1 MiB Subject of encoded words took five seconds; it is cut to 200 characters
    # anyway. What stands past the start (here a charset that cannot be decoded) is never read.
    raw = b"=?utf-8?q?caf=C3=A9?=" + b" x" * 3000 + b" =?x-no-such-charset?q?a?="
    message = parse_message(b"From: a@b\nSubject: " + raw + b"\n\nbody", Limits())
    assert subject(message).startswith("caf\xe9 x x")


def test_a_corrupt_lzma_member_is_refused_not_an_lzma_error():
    # zipfile's LZMA decoder raises LZMAError, which is no OSError: it escaped the archive reader.
    member = lzma_member(report_xml())
    member.stored = member.stored[:9] + b"\xff" * 64
    (refusal,) = parse_all(zip_bytes([member]))
    assert isinstance(refusal, Refusal) and "zip member cannot be read" in refusal.reason


def test_an_lzma_member_corrupt_past_its_start_is_refused_not_an_lzma_error():
    # Varied records, so that the corrupt end is compressed far past what the first read decodes.
    ips = [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in random.Random(0).sample(range(1 << 24), 20_000)]
    member = lzma_member(report_xml([record_xml(ip=ip) for ip in ips]))
    middle = len(member.stored) // 2
    member.stored = member.stored[:middle] + b"\xff" * 64 + member.stored[middle + 64 :]
    with pytest.raises(ReportError, match="is corrupt: Corrupt input data"):
        parse_all(zip_bytes([member]))


def test_an_lzma_member_with_a_huge_dictionary_is_refused_before_it_is_read():
    # The decoder keeps up to a dictionary's worth of output: a 91 MB report in a member with a
    # 1.5 GiB dictionary raised RSS by 160 MB, and a gigabyte one would have taken a gigabyte.
    (refusal,) = parse_all(zip_bytes([lzma_member(report_xml(), dictionary=1536 << 20)]))
    assert isinstance(refusal, Refusal) and "LZMA dictionary is larger than 64 MiB" in refusal.reason
    ((report, _),) = parse_all(zip_bytes([lzma_member(report_xml(), dictionary=8 << 20)]))
    assert report.report_id == "r-1"


def test_a_zip_whose_directory_points_before_the_file_is_refused_not_a_value_error():
    # A central directory offset one byte too large puts the member's header at -1: zipfile
    # seeks there and raises ValueError. Found by test_mutated_zips_only_ever_raise_report_error.
    data = bytearray(zipped({"report.xml": report_xml()}))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + 1)
    (refusal,) = parse_all(bytes(data))
    assert isinstance(refusal, Refusal) and "negative seek" in refusal.reason


@pytest.mark.parametrize(
    "raw",
    [b"=?utf-8?b?QUFBQUFBQUFBQUFBQ?=", b"=?\xfftf-8?q?a?="],
    ids=["base64-word-of-bad-length", "charset-name-not-ascii"],
)
def test_a_subject_that_cannot_be_decoded_is_shown_as_it_came(raw):
    # decode_header raised HeaderParseError and make_header CharsetError, neither a ValueError:
    # they escaped message_documents. Found by test_mutated_emails_only_ever_raise_report_error.
    message = parse_message(b"From: a@b\nSubject: " + raw + b"\n\nbody", Limits())
    assert subject(message) == raw.decode("ascii", "replace")

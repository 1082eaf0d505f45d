"""Sniffing and bounded decompression: gzip, zip and their bombs."""

import io
import struct
import zipfile
import zlib

import pytest

from reports.lib.parsing import Limits, Refusal, ReportError, find_documents
from reports.lib.parsing.archive import sniff
from reports.lib.parsing.xmlstream import has_doctype
from tests.support.builders import gzipped, record_xml, report_xml, zipped
from tests.support.parsing import parse_all, parse_one


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"PK\x03\x04", "zip"),
        (b"<?xml version='1.0'?>", "xml"),
        (b"\n\n  <feedback>", "xml"),
        (b"\xef\xbb\xbf<?xml", "xml"),
        (b"\xff\xfe<\x00", "xml"),
        (b'{"organization-name": "x"}', "json"),
        (b'\r\n  {"organization-name"', "json"),
        (b'\xef\xbb\xbf{"organization-name"', "json"),
        (b"Return-Path: <a@b>\r\nSubject: x", "email"),
        (b"From a@b Mon Jan 1 00:00:00 2024\n", "email"),
        (b"unused", "unknown"),
        (b"", "unknown"),
    ],
)
def test_it_sniffs_content_by_magic_bytes(head, kind):
    assert sniff(head) == kind


def test_it_finds_a_doctype_after_comments_and_processing_instructions():
    assert has_doctype(b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- x -->\n<?pi?><!doctype feedback>')
    assert not has_doctype(b'<?xml version="1.0"?><feedback><!DOCTYPE x></feedback>')


def test_it_reads_gzip_whatever_the_name_says():
    report, records = parse_one(gzipped(report_xml()))
    assert report.report_id == "r-1" and len(records) == 1


def test_it_tolerates_bytes_after_the_gzip_stream():
    report, _ = parse_one(gzipped(report_xml()) + b"\r\n--boundary trailing junk\r\n")
    assert "ignored bytes after the end of the gzip stream" in report.repairs


def test_it_reads_concatenated_gzip_members():
    xml = report_xml()
    report, records = parse_one(gzipped(xml[:100]) + gzipped(xml[100:]))
    assert len(records) == 1
    assert not report.repairs


def test_it_finds_json_in_gzip_as_an_smtp_tls_report():
    (document,) = find_documents(io.BytesIO(gzipped(b'{"report-id": "x"}')), "in.json.gz", Limits())
    assert (document.kind, document.name) == ("tlsrpt", "in.json.gz")
    assert document.open().read() == b'{"report-id": "x"}'


def test_it_refuses_gzip_that_holds_no_xml():
    with pytest.raises(ReportError, match=r"gzip content is not XML \(starts with b'unused'\)"):
        parse_all(gzipped(b"unused"))


def test_it_refuses_a_truncated_gzip():
    data = gzipped(report_xml([record_xml()] * 200))
    with pytest.raises(ReportError, match="gzip stream is truncated"):
        parse_all(data[: len(data) // 2])


def test_it_refuses_a_corrupt_gzip():
    data = bytearray(gzipped(report_xml([record_xml()] * 50)))
    data[40:60] = b"\xff" * 20
    with pytest.raises(ReportError, match="gzip stream is corrupt"):
        parse_all(bytes(data))


def gzip_bomb(size: int) -> bytes:
    """An XML-looking gzip that inflates to ``size`` bytes of whitespace."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(b'<?xml version="1.0"?><feedback>')]
    block = b" " * (1024 * 1024)
    for _ in range(size // len(block)):
        parts.append(deflate.compress(block))
    parts.append(deflate.flush())
    return b"".join(parts)


def test_it_stops_a_gzip_bomb_at_the_cap():
    bomb = gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 100 * 1024  # over 600:1
    with pytest.raises(ReportError, match="gzip output exceeds the 8 MiB cap"):
        parse_all(bomb, Limits(max_xml_bytes=8 * 1024 * 1024, max_element_bytes=64 * 1024 * 1024))


def test_it_caps_plain_xml_too():
    with pytest.raises(ReportError, match="XML document exceeds the 4 KiB cap"):
        parse_all(report_xml([record_xml()] * 50), Limits(max_xml_bytes=4096))


def test_it_reads_every_xml_member_of_a_zip_and_skips_directories_and_macos_metadata():
    data = zipped(
        {
            "reports/": b"",
            "reports/a.xml": report_xml(report_id="a"),
            "__MACOSX/reports/._a.xml": b"\x00\x05\x16\x07junk",
            "b.xml": report_xml(report_id="b"),
        }
    )
    results = parse_all(data, name="in.zip")
    assert [report.report_id for report, _ in results] == ["a", "b"]


def test_it_reads_a_stored_uncompressed_zip():
    ((report, _),) = parse_all(zipped({"r.xml": report_xml()}, compression=zipfile.ZIP_STORED))
    assert report.report_id == "r-1"


def test_it_refuses_one_bad_member_and_keeps_the_others():
    data = zipped({"good.xml": report_xml(), "notes.txt": b"hello", "inner.zip": zipped({"x.xml": report_xml()})})
    results = parse_all(data, name="in.zip")
    assert isinstance(results[0], tuple)
    assert results[1] == Refusal("in.zip/notes.txt", "zip member is not XML (starts with b'hello')")
    assert results[2] == Refusal(
        "in.zip/inner.zip", "zip member is itself a zip archive; nested archives are not opened"
    )


@pytest.mark.parametrize("name", ["../evil.xml", "/etc/evil.xml", "a/../../evil.xml", "..\\evil.xml", "C:\\evil.xml"])
def test_it_refuses_zip_slip_names(name):
    with pytest.raises(ReportError, match="points outside the archive"):
        parse_all(zipped({"ok.xml": report_xml(), name: report_xml()}))


def test_it_refuses_too_many_members():
    with pytest.raises(ReportError, match="zip archive has 21 members, more than the cap of 20"):
        parse_all(zipped({f"{i}.xml": b"<a/>" for i in range(21)}))


def zip_bomb_member(size: int) -> bytes:
    """A zip whose one member inflates to ``size`` bytes (about 1000:1)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.xml", "w", force_zip64=True) as member:
            member.write(b"<feedback>")
            block = b" " * (1024 * 1024)
            for _ in range(size // len(block)):
                member.write(block)
    return out.getvalue()


def test_it_refuses_a_zip_bomb_by_its_declared_size_before_inflating():
    bomb = zip_bomb_member(64 * 1024 * 1024)
    with pytest.raises(ReportError, match="zip members declare 64 MiB uncompressed, more than the 8 MiB cap"):
        parse_all(bomb, Limits(max_xml_bytes=8 * 1024 * 1024))


def forge_declared_size(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size in both the local header and the central directory."""
    data = bytearray(data)
    local = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, size)
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, size)
    return bytes(data)


def test_it_refuses_a_zip_that_lies_about_its_size():
    honest = zipped({"r.xml": report_xml([record_xml()] * 100)})
    # The small declared size passes the cap check; inflating stops there and the CRC check catches the lie,
    # whether that happens while sniffing the member or while parsing it.
    (refused,) = parse_all(forge_declared_size(honest, 100))
    assert refused == Refusal("input/r.xml", "zip member cannot be read: Bad CRC-32 for file 'r.xml'")
    with pytest.raises(ReportError, match="zip member 'r.xml' is corrupt: Bad CRC-32"):
        parse_all(forge_declared_size(honest, 5000))


def test_it_refuses_an_encrypted_member():
    data = bytearray(zipped({"r.xml": report_xml()}))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        flags = struct.unpack_from("<H", data, at + offset)[0]
        struct.pack_into("<H", data, at + offset, flags | 1)
    (result,) = parse_all(bytes(data), name="in.zip")
    assert result == Refusal("in.zip/r.xml", "zip member is encrypted")


def test_it_refuses_a_broken_zip():
    with pytest.raises(ReportError, match="not a readable zip archive"):
        parse_all(b"PK\x03\x04" + b"\x00" * 100)


def test_it_refuses_an_empty_input_and_unknown_content():
    with pytest.raises(ReportError, match="input is empty"):
        parse_all(b"")
    with pytest.raises(ReportError, match="input is not XML, gzip, zip or an email"):
        parse_all(b"\x00\x01binary")

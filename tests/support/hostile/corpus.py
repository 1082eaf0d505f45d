"""The hostile corpus: one small function per input, each with the outcome the ledger must record.

Everything is generated here (nothing downloaded or copied). Small inputs are
returned as bytes; the big ones (``path`` argument) are written in a streaming
way, so making a gigabyte bomb or a million-record report costs no memory.

``expect`` is the Intake status the input must end in, and ``phrase`` what its
recorded reason must contain: the ledger's error for a refusal, a repair noted
on the stored report otherwise. XXE inputs point at /etc/passwd; ``LEAK`` is
what would show if its content were ever read.
"""

import base64
import inspect
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.builders import gzipped, record_xml, report_email, report_xml, zipped
from tests.support.failures import arf_email, original_message
from tests.support.hostile.bombs import (
    PADDING,
    GiB,
    Member,
    MiB,
    deflate,
    gzip_bomb,
    gzip_bytes,
    lzma_member,
    write_gzip,
    write_zip,
    zip_bytes,
)
from tests.support.tlsrpt import failure_detail, tls_policy, tls_report_email, tls_report_json

LEAK = "root:x:0:0"
SECRET_URL = "file:///etc/passwd"
DEFAULT_TIME_CAP = 60.0


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable
    expect: str  # the Intake status: refused, kept or stored
    phrase: str
    time_cap: float

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if "path" in inspect.signature(self.build).parameters:
            self.build(path)
        else:
            path.write_bytes(self.build())
        return path


CASES: list[Case] = []


def case(name: str, expect: str, phrase: str = "", time_cap: float = DEFAULT_TIME_CAP):
    def register(build: Callable) -> Callable:
        assert all(c.name != name for c in CASES), name
        CASES.append(Case(name, build, expect, phrase, time_cap))
        return build

    return register


def report(report_id: str, **fields) -> bytes:
    """A valid report with its own report_id, so stored ones never count as duplicates."""
    return report_xml(report_id=report_id, **fields)


def split(data: bytes, marker: bytes = b"HOLE") -> tuple[bytes, bytes]:
    head, tail = data.split(marker)
    return head, tail


def stream_into(path: Path, head: bytes, block: bytes, times: int, tail: bytes) -> None:
    with open(path, "wb") as out:
        out.write(head)
        for _ in range(times):
            out.write(block)
        out.write(tail)


def email(body: bytes, headers: str = "", content_type: str = "text/plain") -> bytes:
    return (
        "From: dmarc@reporter.example\nTo: rua@example.com\nSubject: report\nMIME-Version: 1.0\n"
        f"Content-Type: {content_type}\n{headers}\n"
    ).encode() + body


LAUGHS = '<!ENTITY a "aaaaaaaaaa">' + "".join(
    f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
QUADRATIC_ENTITY = "a" * 50_000


# XXE and DTDs ----------------------------------------------------------------------------


@case("xxe-external-entity.xml", "refused", "DOCTYPE")
def xxe_external_entity() -> bytes:
    return report(
        "xxe", org_name="&xxe;", prolog=f'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY xxe SYSTEM "{SECRET_URL}">]>'
    )


@case("xxe-parameter-entity.xml", "refused", "DOCTYPE")
def xxe_parameter_entity() -> bytes:
    dtd = f'<!ENTITY % file SYSTEM "{SECRET_URL}"><!ENTITY % wrap "<!ENTITY leak \'%file;\'>"> %wrap;'
    return report("xxe", org_name="&leak;", prolog=f'<?xml version="1.0"?><!DOCTYPE feedback [{dtd}]>')


@case("xxe-external-dtd.xml", "refused", "DOCTYPE")
def xxe_external_dtd() -> bytes:
    return report("xxe", prolog='<?xml version="1.0"?><!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/evil.dtd">')


@case("xxe-public-dtd.xml", "refused", "DOCTYPE")
def xxe_public_dtd() -> bytes:
    return report("xxe", prolog=f'<!DOCTYPE feedback PUBLIC "-//EVIL//DTD DMARC//EN" "{SECRET_URL}">')


@case("xxe-after-bom-comment-and-pi.xml", "refused", "DOCTYPE")
def xxe_after_bom_comment_and_pi() -> bytes:
    prolog = f'<?xml version="1.0"?>\n<!-- hi -->\n<?pi x?>\n<!DOCTYPE f [<!ENTITY xxe SYSTEM "{SECRET_URL}">]>'
    return b"\xef\xbb\xbf" + report("xxe", org_name="&xxe;", prolog=prolog)


@case("xxe-utf16.xml", "refused", "DOCTYPE")
def xxe_utf16() -> bytes:
    prolog = f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE f [<!ENTITY xxe SYSTEM "{SECRET_URL}">]>'
    return report("xxe", org_name="&xxe;", prolog=prolog).decode().encode("utf-16")


@case("xxe-utf7.xml", "refused", "DOCTYPE")
def xxe_utf7() -> bytes:
    # The DOCTYPE is spelled in UTF-7 so that a byte-level check cannot see it.
    hidden = "<!DOCTYPE f [<!ENTITY xxe SYSTEM '" + SECRET_URL + "'>]>"
    return (
        b'<?xml version="1.0" encoding="UTF-7"?>' + hidden.encode("utf-7") + report("xxe", org_name="&xxe;", prolog="")
    )


@case("xxe-in-gzip.xml.gz", "refused", "DOCTYPE")
def xxe_in_gzip() -> bytes:
    return gzipped(xxe_external_entity())


@case("xxe-in-zip.zip", "refused", "DOCTYPE")
def xxe_in_zip() -> bytes:
    return zipped({"report.xml": xxe_parameter_entity()})


@case("xxe-in-email.eml", "refused", "DOCTYPE")
def xxe_in_email() -> bytes:
    return report_email([("report.xml.gz", "application/gzip", gzipped(xxe_external_dtd()))])


@case("xinclude-in-org-name.xml", "stored", "empty org_name")
def xinclude_in_org_name() -> bytes:
    # Never processed: the element is read as markup, its href never opened.
    include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{SECRET_URL}" parse="text"/>'
    return report("xinclude-text", org_name=include)


@case("xinclude-between-records.xml", "stored")
def xinclude_between_records() -> bytes:
    include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{SECRET_URL}" parse="xml"/>'
    return report("xinclude-xml", records=[record_xml(), include, record_xml(ip="192.0.2.2")])


# Entity expansion ------------------------------------------------------------------------


@case("billion-laughs.xml", "refused", "DOCTYPE")
def billion_laughs() -> bytes:
    return report("laughs", org_name="&i;", prolog=f"<?xml version='1.0'?><!DOCTYPE f [{LAUGHS}]>")


@case("billion-laughs-utf16.xml", "refused", "entity amplification")
def billion_laughs_utf16() -> bytes:
    return (
        report("laughs", org_name="&i;", prolog=f"<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE f [{LAUGHS}]>")
        .decode()
        .encode("utf-16")
    )


@case("quadratic-blowup.xml", "refused", "DOCTYPE")
def quadratic_blowup() -> bytes:
    prolog = f'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY a "{QUADRATIC_ENTITY}">]>'
    return report("quadratic", org_name="&a;" * 50_000, prolog=prolog)


@case("quadratic-blowup-utf16.xml", "refused", "entity amplification")
def quadratic_blowup_utf16() -> bytes:
    prolog = f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE f [<!ENTITY a "{QUADRATIC_ENTITY}">]>'
    return report("quadratic", org_name="&a;" * 50_000, prolog=prolog).decode().encode("utf-16")


@case("billion-laughs-in-email.eml", "refused", "DOCTYPE")
def billion_laughs_in_email() -> bytes:
    return report_email([("report.zip", "application/zip", zipped({"report.xml": billion_laughs()}))])


# Gzip bombs and broken gzip --------------------------------------------------------------


@case("gzip-bomb-1gib.xml.gz", "refused", "a single element of the report is larger than the 1 MiB cap")
def gzip_bomb_1gib(path: Path) -> None:
    gzip_bomb(path, GiB)


@case("gzip-bomb-4gib-zeros.gz", "refused", "gzip content is not XML")
def gzip_bomb_zeros(path: Path) -> None:
    with open(path, "wb") as out:
        write_gzip(out, deflate(b"", b"\0" * MiB, 4 * 1024))


@case("gzip-bomb-inside-a-record.xml.gz", "refused", "a single element of the report is larger than the 1 MiB cap")
def gzip_bomb_inside_a_record(path: Path) -> None:
    head, _ = split(report("bomb", records=[record_xml(header_from="HOLE")]))
    gzip_bomb(path, GiB, prefix=head)


@case("gzip-of-gzip-bomb.gz", "refused", "gzip content is itself a gzip archive")
def gzip_of_gzip_bomb() -> bytes:
    inner = gzip_bytes(deflate(b'<?xml version="1.0"?><feedback>', PADDING, 1024))
    return gzipped(inner)


@case("gzip-of-gzip-of-gzip.gz", "refused", "gzip content is itself a gzip archive")
def gzip_of_gzip_of_gzip() -> bytes:
    # Three layers, as in the 300000:1 nested bomb: the outer layer is all that is ever opened.
    inner = gzip_bytes(deflate(b"", PADDING, 4 * 1024))
    return gzipped(gzipped(inner))


@case("zip-in-gzip.gz", "refused", "gzip content is itself a zip archive")
def zip_in_gzip() -> bytes:
    return gzipped(zipped({"report.xml": report("zip-in-gzip")}))


@case("gzip-truncated.xml.gz", "refused", "gzip stream is truncated")
def gzip_truncated() -> bytes:
    data = gzipped(report("truncated", records=[record_xml(ip=f"192.0.2.{i}") for i in range(1, 200)]))
    return data[: len(data) // 2]


@case("gzip-header-only.gz", "refused", "gzip stream is truncated")
def gzip_header_only() -> bytes:
    return gzipped(b"")[:10]


@case("gzip-bad-checksum.xml.gz", "refused", "gzip stream is corrupt")
def gzip_bad_checksum() -> bytes:
    data = bytearray(gzipped(report("checksum")))
    data[-8] ^= 0xFF
    return bytes(data)


@case("gzip-corrupt-deflate.xml.gz", "refused", "gzip stream is corrupt")
def gzip_corrupt_deflate() -> bytes:
    data = bytearray(gzipped(report("corrupt", records=[record_xml(ip=f"192.0.2.{i}") for i in range(1, 100)])))
    for position in range(40, len(data) - 20, 7):
        data[position] ^= 0x5A
    return bytes(data)


@case("gzip-trailing-junk.xml.gz", "stored", "ignored bytes after the end of the gzip stream")
def gzip_trailing_junk() -> bytes:
    return gzipped(report("trailing-junk")) + b"\r\n--mimecast-footer--\r\n"


@case("gzip-10000-members.xml.gz", "stored")
def gzip_10000_members() -> bytes:
    data = report("many-members")
    step = len(data) // 100 + 1
    pieces = [gzipped(data[i : i + step]) for i in range(0, len(data), step)]
    return b"".join(pieces) + gzipped(b"") * (10_000 - len(pieces))


# Zip bombs, forged zips, zip slip --------------------------------------------------------


@case("zip-bomb-2gib.zip", "refused", "zip members declare 2 GiB uncompressed, more than the 1 GiB cap")
def zip_bomb_2gib(path: Path) -> None:
    with open(path, "wb") as out:
        write_zip(out, [Member("report.xml", deflate(b"<feedback>", PADDING, 2 * 1024))])


@case("zip-bomb-overlapping-members.zip", "refused", "a single element of the report is larger than the 1 MiB cap")
def zip_bomb_overlapping_members(path: Path) -> None:
    # 20 directory entries share one member's data: 20 times its 50 MiB from one copy.
    stream = deflate(b"<?xml version='1.0'?><feedback><report_metadata>", PADDING, 50)
    members = [Member("report.xml", stream)] + [Member("report.xml", stream, offset=0) for _ in range(19)]
    with open(path, "wb") as out:
        write_zip(out, members)


@case("zip-forged-small-size.zip", "refused", "Bad CRC-32")
def zip_forged_small_size(path: Path) -> None:
    stream = deflate(b'<?xml version="1.0"?><feedback>', PADDING, 1024)
    with open(path, "wb") as out:
        write_zip(out, [Member("report.xml", stream, declared_size=1000)])


@case("zip-forged-small-size-and-crc.zip", "refused", "XML is not well-formed")
def zip_forged_small_size_and_crc(path: Path) -> None:
    prefix = report("forged-crc")
    stream = deflate(prefix, PADDING, 1024)
    with open(path, "wb") as out:
        write_zip(out, [Member("report.xml", stream, declared_size=200, declared_crc=zlib.crc32(prefix[:200]))])


@case("zip-forged-huge-size.zip", "refused", "zip members declare 4 GiB uncompressed")
def zip_forged_huge_size() -> bytes:
    return zip_bytes([Member.plain("report.xml", report("forged-huge"), declared_size=0xFFFFFFFE)])


@case("zip-forged-compressed-size.zip", "refused", "compressed bytes in an archive of")
def zip_forged_compressed_size() -> bytes:
    return zip_bytes([Member.plain("report.xml", report("forged-compressed"), declared_compressed=0x7FFFFFFF)])


@case("zip-local-name-differs.zip", "refused", "zip member cannot be read")
def zip_local_name_differs() -> bytes:
    return zip_bytes([Member.plain("report.xml", report("local-name"), local_name="../../etc/cron.d/evil")])


@case("zip-unknown-method.zip", "refused", "zip member cannot be read")
def zip_unknown_method() -> bytes:
    return zip_bytes([Member("report.xml", report("method"), method=99)])


@case("zip-encrypted.zip", "refused", "zip member is encrypted")
def zip_encrypted() -> bytes:
    return zip_bytes([Member.plain("report.xml", report("encrypted"), flags=0x1)])


@case("zip-lzma-1536mib-dictionary.zip", "refused", "LZMA dictionary is larger than 64 MiB")
def zip_lzma_huge_dictionary() -> bytes:
    # The decoder would keep up to 1.5 GiB of what it decodes: a big report would pass the memory cap.
    return zip_bytes([lzma_member(report("lzma-dictionary"), dictionary=1536 * MiB)])


@case("zip-lzma-corrupt.zip", "refused", "zip member cannot be read")
def zip_lzma_corrupt() -> bytes:
    member = lzma_member(report("lzma-corrupt"))
    member.stored = member.stored[:9] + b"\xff" * 64
    return zip_bytes([member])


@case("zip-directory-before-the-file.zip", "refused", "zip member cannot be read")
def zip_directory_before_the_file() -> bytes:
    # The central directory's offset is one byte too large: the member's header lands at -1.
    data = bytearray(zipped({"report.xml": report("before-the-file")}))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + 1)
    return bytes(data)


@case("zip-in-zip.zip", "refused", "nested archives are not opened")
def zip_in_zip() -> bytes:
    return zipped({"inner.zip": zipped({"report.xml": report("zip-in-zip")})})


@case("gzip-in-zip.zip", "refused", "nested archives are not opened")
def gzip_in_zip() -> bytes:
    return zipped({"report.xml.gz": gzipped(report("gzip-in-zip"))})


@case("zip-in-zip-in-zip.zip", "refused", "nested archives are not opened")
def zip_in_zip_in_zip() -> bytes:
    return zipped({"a.zip": zipped({"b.zip": zipped({"report.xml": report("zip3")})})})


@case("zip-50000-members.zip", "refused", "more than the cap of 20")
def zip_50000_members() -> bytes:
    return zip_bytes([Member.plain(f"{i}.xml", b"") for i in range(50_000)])


@case("zip-slip-dotdot.zip", "refused", "zip slip")
def zip_slip_dotdot() -> bytes:
    return zipped({"../../escaped.xml": report("slip")})


@case("zip-slip-absolute.zip", "refused", "zip slip")
def zip_slip_absolute() -> bytes:
    return zipped({"/tmp/dmarcdash-zip-slip.xml": report("slip")})


@case("zip-slip-backslash.zip", "refused", "zip slip")
def zip_slip_backslash() -> bytes:
    return zip_bytes([Member.plain("..\\..\\escaped.xml", report("slip"))])


@case("zip-slip-drive-letter.zip", "refused", "zip slip")
def zip_slip_drive_letter() -> bytes:
    return zip_bytes([Member.plain("C:/Windows/escaped.xml", report("slip"))])


@case("zip-truncated.zip", "refused", "not a readable zip archive")
def zip_truncated() -> bytes:
    data = zipped({"report.xml": report("truncated-zip")})
    return data[: len(data) // 2]


@case("zip-truncated-directory.zip", "refused", "not a readable zip archive")
def zip_truncated_directory() -> bytes:
    data = zipped({"a.xml": report("a"), "b.xml": report("b")})
    end = data.rindex(b"PK\x05\x06")
    return data[: end - 30] + data[end:]


@case("zip-no-members.zip", "refused", "zip archive contains no files")
def zip_no_members() -> bytes:
    return zip_bytes([])


@case("zip-with-macosx-junk.zip", "stored")
def zip_with_macosx_junk() -> bytes:
    return zipped({"report.xml": report("macosx"), "__MACOSX/._report.xml": b"\x00\x05\x16\x07junk"})


# XML structure, sizes and values ---------------------------------------------------------


@case("deep-nesting-100k.xml", "refused", "Excessive depth")
def deep_nesting_100k() -> bytes:
    return report("deep", records=[record_xml().replace("<count>", "<a>" * 100_000 + "</a>" * 100_000 + "<count>")])


@case("deep-nesting-20.xml", "refused", "nested deeper than 16 levels")
def deep_nesting_20() -> bytes:
    return report("deep", records=[record_xml().replace("<count>", "<a>" * 20 + "</a>" * 20 + "<count>")])


@case("deep-nesting-in-metadata.xml", "refused", "nested deeper than 16 levels")
def deep_nesting_in_metadata() -> bytes:
    return report("deep", metadata_extra="<x>" * 30 + "</x>" * 30)


@case("wide-element-300k-children.xml", "refused", "a single element of the report is larger than the 1 MiB cap")
def wide_element() -> bytes:
    return report("wide", records=[record_xml().replace("<count>", "<a/>" * 300_000 + "<count>")])


@case("field-100mb-header-from.xml", "refused", "a single element of the report is larger than the 1 MiB cap")
def field_100mb_header_from(path: Path) -> None:
    head, tail = split(report("huge-field", records=[record_xml(header_from="HOLE")]))
    stream_into(path, head, b"a" * MiB, 100, tail)


@case("field-100mb-org-name.xml", "refused", "a single element of the report is larger than the 1 MiB cap")
def field_100mb_org_name(path: Path) -> None:
    head, tail = split(report("huge-field", org_name="HOLE"))
    stream_into(path, head, b"a" * MiB, 100, tail)


@case("attribute-100mb.xml", "refused", "a single element of the report is larger than the 1 MiB cap")
def attribute_100mb(path: Path) -> None:
    head, tail = split(report("huge-attribute", records=[record_xml().replace("<row>", '<row x="HOLE">')]))
    stream_into(path, head, b"a" * MiB, 100, tail)


@case("comment-100mb.xml", "refused", "a single element of the report is larger than the 1 MiB cap")
def comment_100mb(path: Path) -> None:
    head, tail = split(report("huge-comment", records=[record_xml().replace("<row>", "<row><!--HOLE-->")]))
    stream_into(path, head, b"a" * MiB, 100, tail)


@case("junk-100mb-after-feedback.xml", "stored", "ignored malformed content after </feedback>")
def junk_100mb_after_feedback(path: Path) -> None:
    stream_into(path, report("junk-after"), b"<a/>" * (MiB // 4), 100, b"")


@case("field-100kb.xml", "refused", "is longer than the 64 KiB cap")
def field_100kb() -> bytes:
    return report("long-field", records=[record_xml(header_from="a" * 100_000)])


@case("count-10-to-the-30.xml", "refused", "is not a whole number below 10^18")
def count_huge() -> bytes:
    return report("huge-count", records=[record_xml(count="1" + "0" * 30)])


@case("timestamp-10-to-the-20.xml", "refused", "is not a Unix timestamp")
def timestamp_huge() -> bytes:
    return report("huge-time", begin="1" + "0" * 20)


@case("not-a-report.xml", "refused", "not a DMARC aggregate report")
def not_a_report() -> bytes:
    return b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@case("unclosed-feedback.xml", "refused", "Premature end of data")
def unclosed_feedback() -> bytes:
    return report("unclosed").replace(b"</feedback>", b"")


# Encodings and NUL bytes -----------------------------------------------------------------


@case("nul-in-text.xml", "refused", "Char 0x0 out of allowed range")
def nul_in_text() -> bytes:
    return report("nul", org_name="evil\0org")


@case("nul-char-reference.xml", "refused", "invalid xmlChar value 0")
def nul_char_reference() -> bytes:
    return report("nul", org_name="evil&#0;org")


@case("control-characters.xml", "refused", "invalid Char value")
def control_characters() -> bytes:
    return report("control", org_name="evil\x01\x1b[31morg")


@case("nul-bytes-only.bin", "refused", "input is not XML, gzip, zip or an email")
def nul_bytes_only() -> bytes:
    return b"\0" * 4096


@case("empty.xml", "refused", "input is empty")
def empty() -> bytes:
    return b""


@case("windows-1252-in-utf8.xml", "stored", "bytes that are not UTF-8 read as windows-1252")
def windows_1252_in_utf8() -> bytes:
    return report("cp1252", org_name="Soci\xe9t\xe9 G\xe9n\xe9rale").replace("\xe9".encode(), b"\xe9")


@case("invalid-utf8-sequences.xml", "stored", "bytes that are not UTF-8 read as windows-1252")
def invalid_utf8_sequences() -> bytes:
    # An encoded surrogate, an overlong "/", a lone continuation byte and a cut-off sequence.
    return report("bad-utf8", org_name="ORG").replace(b"ORG", b"a\xed\xa0\x80b\xc0\xafc\x80d\xe2\x82")


@case("unsupported-encoding.xml", "refused", "Unsupported encoding")
def unsupported_encoding() -> bytes:
    return report("encoding", prolog='<?xml version="1.0" encoding="x-no-such-charset"?>')


@case("utf32.xml", "refused", "input is not XML, gzip, zip or an email")
def utf32() -> bytes:
    return b"\x00\x00\xfe\xff" + report("utf32").decode().encode("utf-32-be")


@case("utf16-declared-but-ascii.xml", "refused", "XML is not well-formed")
def utf16_declared_but_ascii() -> bytes:
    return report("utf16-lie", prolog='<?xml version="1.0" encoding="UTF-16"?>')


# Email: MIME bombs, giant headers, non-report mail ---------------------------------------


def multipart(parts: list[bytes], boundary: str = "b0") -> bytes:
    body = b"".join(f"--{boundary}\n".encode() + part + b"\n" for part in parts) + f"--{boundary}--\n".encode()
    return email(body, content_type=f'multipart/mixed; boundary="{boundary}"')


@case("mime-bomb-5000-parts.eml", "refused", "more than 100 MIME parts")
def mime_bomb_5000_parts() -> bytes:
    return multipart([b"Content-Type: text/plain\n\nhello"] * 5000)


@case("mime-bomb-1m-parts.eml", "refused", "more than 100 MIME parts")
def mime_bomb_1m_parts(path: Path) -> None:
    with open(path, "wb") as out:
        out.write(email(b"", content_type='multipart/mixed; boundary="b"'))
        out.write(b"--b\n\nx\n" * 1_000_000 + b"--b--\n")


@case("mime-bomb-nested-5000.eml", "refused", "message nests MIME parts deeper than 32 levels")
def mime_bomb_nested_5000() -> bytes:
    body = b"Content-Type: text/plain\n\nthe bottom"
    for depth in range(5000):
        boundary = f"n{depth}".encode()
        body = (
            (b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\n\n--' + boundary + b"\n" + body)
            + b"\n--"
            + boundary
            + b"--\n"
        )
    return b"From: dmarc@reporter.example\nSubject: nested\nMIME-Version: 1.0\n" + body


@case("mime-report-then-5000-parts.eml", "refused", "more than 100 MIME parts")
def mime_report_then_5000_parts() -> bytes:
    attachment = b"Content-Type: application/gzip\nContent-Transfer-Encoding: base64\n\n" + base64.encodebytes(
        gzipped(report("before-the-bomb"))
    )
    return multipart([attachment] + [b"Content-Type: text/plain\n\nhello"] * 5000)


@case("mime-gzip-bomb-attachment.eml", "refused", "a single element of the report is larger than the 1 MiB cap")
def mime_gzip_bomb_attachment() -> bytes:
    bomb = gzip_bytes(deflate(b"<?xml version='1.0'?><feedback><report_metadata>", PADDING, 1024))
    return report_email([("report.xml.gz", "application/gzip", bomb)])


@case("mime-zip-slip-attachment.eml", "refused", "zip slip")
def mime_zip_slip_attachment() -> bytes:
    return report_email([("report.zip", "application/zip", zip_slip_dotdot())])


@case("mime-broken-base64.eml", "refused", "no report attachment")
def mime_broken_base64() -> bytes:
    attachment = b"Content-Type: application/gzip\nContent-Transfer-Encoding: base64\n\n" + b"!!!not base64===\n" * 100
    return multipart([b"Content-Type: text/plain\n\nhi", attachment])


@case("mime-truncated-attachment.eml", "refused", "gzip stream is truncated")
def mime_truncated_attachment() -> bytes:
    data = report_email(
        [("report.xml.gz", "application/gzip", gzipped(report("cut-mail", records=[record_xml()] * 300)))]
    )
    return data[: len(data) * 2 // 3]


@case("header-60mb-subject.eml", "refused", "header")
def header_60mb_subject(path: Path) -> None:
    stream_into(path, b"From: dmarc@reporter.example\nSubject: ", b"a" * MiB, 60, b"\n\n" + report("subject"))


@case("header-million-fields.eml", "refused", "header")
def header_million_fields(path: Path) -> None:
    head = b"From: dmarc@reporter.example\nSubject: report\n"
    stream_into(path, head, b"X-A: b\n" * 100_000, 10, b"Content-Type: text/xml\n\n" + report("many-headers"))


@case("header-folded-encoded-words.eml", "refused", "header")
def header_folded_encoded_words(path: Path) -> None:
    head = b"From: dmarc@reporter.example\nSubject: report\n"
    stream_into(path, head, b" =?utf-8?q?a?=\n" * 100_000, 30, b"Content-Type: text/xml\n\n" + report("folded"))


@case("header-giant-in-a-part.eml", "refused", "header")
def header_giant_in_a_part(path: Path) -> None:
    head = email(b"", content_type='multipart/mixed; boundary="b"') + b"--b\nX-Big: "
    stream_into(path, head, b"a" * MiB, 40, b"\nContent-Type: text/xml\n\n" + report("part-header") + b"\n--b--\n")


@case("message-over-64mib.eml", "refused", "more than the 64 MiB cap")
def message_over_64mib(path: Path) -> None:
    stream_into(path, email(b"", content_type="text/plain"), b"a" * 1023 + b"\n", 65 * 1024, b"")


@case("message-60mb-base64-gzip-bomb.eml", "refused", "a single element of the report is larger than the 1 MiB cap")
def message_60mb_base64(path: Path) -> None:
    # A large but legal attachment: 44 MiB of gzip (a bomb, once more) is 60 MB of base64.
    stream = deflate(b'<?xml version="1.0"?><feedback><report_metadata>', PADDING, 1024)
    gzip = gzip_bytes(stream) + bytes(range(256)) * (44 * MiB // 256)
    head = email(b"", content_type="application/gzip", headers="Content-Transfer-Encoding: base64\n")
    with open(path, "wb") as out:
        out.write(head)
        for start in range(0, len(gzip), 57 * 1024):
            out.write(base64.encodebytes(gzip[start : start + 57 * 1024]))


@case("human-reply.eml", "refused", "message has no report attachment")
def human_reply() -> bytes:
    return report_email([], subject="Re: your DMARC record", body="Please stop sending me these.")


@case("bounce.eml", "refused", "message has no report attachment")
def bounce() -> bytes:
    status = (
        b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
        b"Final-Recipient: rfc822; x@y\nAction: failed\nStatus: 5.1.1\n"
    )
    body = (
        b"--b\nContent-Type: text/plain\n\nDelivery failed\n"
        + b"--b\n"
        + status
        + b"--b\nContent-Type: message/rfc822\n\nFrom: a@b\nSubject: original\n\nhello\n--b--\n"
    )
    return email(body, content_type='multipart/report; report-type=delivery-status; boundary="b"')


@case("html-newsletter.eml", "refused", "message has no report attachment")
def html_newsletter() -> bytes:
    return email(
        b"<html><body><h1>Buy now</h1><img src='http://127.0.0.1:9/x.png'></body></html>", content_type="text/html"
    )


# Failure reports are stored only for domains an organization has added; the corpus runs with none.
UNKNOWN_DOMAIN = "which no organization has added"


@case("failure-report.eml", "refused", UNKNOWN_DOMAIN)
def failure_report() -> bytes:
    body = (
        b"--b\nContent-Type: text/plain\n\nA message failed DMARC\n"
        b"--b\nContent-Type: message/feedback-report\n\nFeedback-Type: auth-failure\nAuth-Failure: dmarc\n"
        b"--b\nContent-Type: text/rfc822-headers\n\nFrom: ceo@example.com\n--b--\n"
    )
    return email(body, content_type='multipart/report; report-type=feedback-report; boundary="b"')


@case("failure-100k-auth-failure-lines.eml", "refused", "message headers are larger than the 1 MiB cap")
def failure_100k_auth_failure_lines() -> bytes:
    # A message/feedback-report part is split as a message of its own: its fields are headers.
    return arf_email(auth_failures=("dkim",) * 100_000)


@case("failure-100k-auth-failure-lines-base64.eml", "refused", "more than the 64 KiB cap")
def failure_100k_auth_failure_lines_base64() -> bytes:
    return arf_email(auth_failures=("dkim",) * 100_000, feedback_encoding="base64")


@case("failure-garbage-feedback-part.eml", "refused", "failure report has no feedback fields and no returned message")
def failure_garbage_feedback_part() -> bytes:
    body = (
        b"--b\nContent-Type: text/plain\n\nA message failed DMARC\n"
        b"--b\nContent-Type: message/feedback-report\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(bytes(range(256)) * 64)
        + b"--b--\n"
    )
    return email(body, content_type='multipart/report; report-type=feedback-report; boundary="b"')


@case("failure-60mb-returned-body.eml", "refused", UNKNOWN_DOMAIN)
def failure_60mb_returned_body(path: Path) -> None:
    """A valid report whose returned message has a 60 MB body: read with the body dropped (and,
    as no organization has added example.com, not stored)."""
    head, tail = split(arf_email(original=original_message(body="HOLE")))
    stream_into(path, head, b"a" * 1023 + b"\r\n", 60 * 1000, tail)


# SMTP TLS reports (RFC 8460 JSON) ---------------------------------------------------------


@case("tlsrpt-email-incomplete-report.eml", "refused", "report-id is missing (RFC 8460 requires it)")
def tlsrpt_email_incomplete_report() -> bytes:
    return tls_report_email(b'{"organization-name": "x"}')


@case("tlsrpt-deep-nesting-100k.json", "refused", "JSON is nested deeper than 16 levels")
def tlsrpt_deep_nesting() -> bytes:
    head, tail = split(tls_report_json(report_id="deep", extra={"x": "HOLE"}), b'"HOLE"')
    return head + b"[" * 100_000 + b"]" * 100_000 + tail


@case("tlsrpt-field-100mb.json", "refused", "JSON report exceeds the 64 MiB cap")
def tlsrpt_field_100mb(path: Path) -> None:
    detail = failure_detail(additional_information="HOLE")
    head, tail = split(tls_report_json(report_id="huge-field", policies=[tls_policy(failures=[detail])]))
    stream_into(path, head, b"a" * MiB, 100, tail)


@case("tlsrpt-gzip-bomb-1gib.json.gz", "refused", "gzip output exceeds the 64 MiB cap")
def tlsrpt_gzip_bomb(path: Path) -> None:
    gzip_bomb(path, GiB, prefix=b'{"organization-name": "')


@case("tlsrpt-duplicate-keys.json", "refused", "duplicate key 'policies' in a JSON object")
def tlsrpt_duplicate_keys() -> bytes:
    # Which of the two a parser keeps differs between parsers: one may check the first, another store the second.
    return tls_report_json(report_id="duplicate").replace(b'"policies": [', b'"policies": [], "policies": [')


@case("tlsrpt-count-beyond-64-bits.json", "refused", "is beyond 64 bits")
def tlsrpt_count_beyond_64_bits() -> bytes:
    return tls_report_json(report_id="huge-count", policies=[tls_policy(successful=10**30)])


@case("tlsrpt-1m-failure-details.json", "refused", "report has more than 100000 failure details")
def tlsrpt_million_failure_details(path: Path) -> None:
    head, tail = split(tls_report_json(report_id="many-failures", policies=[tls_policy(failures="HOLE")]), b'"HOLE"')
    detail = b'{"result-type":"dane-required","failed-session-count":1},'
    stream_into(path, head + b"[", detail, 1_000_000, detail[:-1] + b"]" + tail)


@case("tlsrpt-nan-count.json", "refused", "NaN, which is not a finite number")
def tlsrpt_nan_count() -> bytes:
    return tls_report_json(report_id="nan", policies=[tls_policy(failed=float("nan"))])


# Legitimate inputs among them --------------------------------------------------------------


@case("million-records.xml.gz", "stored", time_cap=600.0)
def million_records(path: Path) -> None:
    """A million records (~480 MB of XML): under DMARC_MAX_RECORDS (2,000,000), so it must be stored."""
    head, tail = split(report("a-million-records", records=["HOLE"]))
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    template = record_xml(ip="IP", count="COUNT").replace("IP", "10.%d.%d.%d").replace("COUNT", "%d")
    with open(path, "wb") as out:
        out.write(compressor.compress(head))
        for start in range(0, 1_000_000, 10_000):
            batch = "".join(
                template % (i >> 16 & 255, i >> 8 & 255, i & 255, i % 7 + 1) for i in range(start, start + 10_000)
            )
            out.write(compressor.compress(batch.encode()))
        out.write(compressor.compress(tail))
        out.write(compressor.flush())


GOOD = Case("good-report-after-them.xml", lambda: report("still-works"), "stored", "", DEFAULT_TIME_CAP)

"""Offline ASN/country lookups: building from iptoasn TSV, lookups, refusals, the command."""

import gzip
import io
import os
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from reports.enrichment.asn import (
    MAX_LINE_BYTES,
    MAX_NAME_CHARS,
    UNKNOWN,
    AsnDatabaseMissing,
    AsnSourceError,
    Network,
    build_database,
    open_database,
)

# Lines as iptoasn writes them (tab-separated, end inclusive), deliberately out of order,
# with the nesting the real file has (a routed /48 inside a "Not routed" block) and more.
LINES = [
    "2c0f:fff0::\t2c0f:fff0:ffff:ffff:ffff:ffff:ffff:ffff\t37125\tNG\tLayer3-",
    "1.0.4.0\t1.0.7.255\t38803\tAU\tGTELECOM-AS-AP Gtelecom Pty Ltd",
    "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET",
    "1.0.1.0\t1.0.3.255\t0\tNone\tNot routed",
    "2c0f:fff1::\tfdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\t0\tNone\tNot routed",
    "fd00:448a:1130::\tfd00:448a:1130:ffff:ffff:ffff:ffff:ffff\t7713\tID\tTELKOMNET-AS-AP PT Telekomunikasi Indonesia",
    "1.0.128.0\t1.0.139.255\t23969\tTH\tTOT-NET TOT Public Company Limited",
    "1.0.140.0\t1.0.180.255\t23969\tTH\tTOT-NET TOT Public Company Limited",
    # An outer routed block with a more specific one inside, and a lower-case country.
    "10.0.0.0\t10.255.255.255\t64500\tde\tOUTER-AS",
    "10.1.0.0\t10.1.255.255\t64501\tFR\tINNER-AS",
    # Two ranges that overlap without nesting: the later start wins where they meet.
    "20.0.0.0\t20.0.0.200\t64510\tNL\tFIRST-AS",
    "20.0.0.100\t20.0.1.255\t64511\tBE\tSECOND-AS",
    # The same range twice: the later line wins.
    "30.0.0.0\t30.0.0.255\t64520\tSE\tOLD-NAME",
    "30.0.0.0\t30.0.0.255\t64520\tSE\tNEW-NAME",
    # Routed, but no country known.
    "40.0.0.0\t40.0.0.255\t64530\tNone\tNO-COUNTRY-AS",
    "2001:db8:1::\t2001:db8:1:ffff:ffff:ffff:ffff:ffff\t64540\tJP\tV6-AS",
    "255.255.255.0\t255.255.255.255\t64550\tUS\tTOP-OF-V4",
    "ffff:ffff::\tffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\t64560\tUS\tTOP-OF-V6",
    # IPv4 written as IPv4-mapped IPv6 is IPv4; a range that only touches that block stays IPv6.
    "::ffff:60.0.0.0\t::ffff:60.0.0.255\t64570\tIT\tMAPPED-IN-SOURCE",
    "::fffe:0:0\t::ffff:0.255.255.255\t0\tNone\tNot routed",
]


def tsv(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    source = tmp_path / "ip2asn-combined.tsv.gz"
    source.write_bytes(gzip.compress(tsv(LINES)))
    target = tmp_path / "asn.sqlite3"
    assert build_database(source, target) == len(LINES)
    return target


@pytest.fixture
def db(db_path: Path):
    with open_database(db_path) as database:
        yield database


@pytest.mark.parametrize(
    "ip, expected",
    [
        ("1.0.0.1", Network(13335, "CLOUDFLARENET", "US")),
        ("1.0.0.255", Network(13335, "CLOUDFLARENET", "US")),
        ("1.0.4.0", Network(38803, "GTELECOM-AS-AP Gtelecom Pty Ltd", "AU")),
        ("1.0.180.255", Network(23969, "TOT-NET TOT Public Company Limited", "TH")),
        ("2c0f:fff0::25", Network(37125, "Layer3-", "NG")),
        ("2001:db8:1:2::1", Network(64540, "V6-AS", "JP")),
        ("40.0.0.9", Network(64530, "NO-COUNTRY-AS", "")),
        ("255.255.255.255", Network(64550, "TOP-OF-V4", "US")),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Network(64560, "TOP-OF-V6", "US")),
    ],
)
def test_it_finds_the_network_and_country(db, ip, expected):
    assert db.lookup(ip) == expected


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(db):
    assert db.lookup("::ffff:1.0.0.7") == Network(13335, "CLOUDFLARENET", "US")
    assert db.lookup("::ffff:0100:0007") == Network(13335, "CLOUDFLARENET", "US")
    assert db.lookup(ip_address("::ffff:10.1.2.3")) == Network(64501, "INNER-AS", "FR")
    assert db.lookup(ip_address("1.0.0.7")) == Network(13335, "CLOUDFLARENET", "US")
    assert db.lookup("60.0.0.5") == db.lookup("::ffff:60.0.0.5") == Network(64570, "MAPPED-IN-SOURCE", "IT")
    assert db.lookup(ip_address("::ffff:60.0.0.5")).asn == 64570


@pytest.mark.parametrize(
    "ip",
    [
        "1.0.1.0",  # not routed
        "1.0.3.255",
        "fd00:448a:1131::1",  # not routed, in the big block around the routed /48
        "2c0f:fff1::",
        "8.8.8.8",  # in no range
        "0.0.0.1",
        "1.0.8.0",  # just past a range
        "2001:db8::1",
        "::",
        "::1.0.0.1",  # IPv4-compatible, not IPv4-mapped: an IPv6 address
        "not an ip",
        "",
        "1.0.0.01",
        "fe80::1%eth0",
        "1.0.0.1\x00",
    ],
)
def test_unrouted_and_unknown_addresses_have_no_network(db, ip):
    assert db.lookup(ip) == UNKNOWN == Network(None, "", "")


def test_the_more_specific_of_overlapping_ranges_wins(db):
    assert db.lookup("fd00:448a:1130:5::1") == Network(7713, "TELKOMNET-AS-AP PT Telekomunikasi Indonesia", "ID")
    assert db.lookup("10.0.255.255").asn == 64500
    assert db.lookup("10.1.0.0") == Network(64501, "INNER-AS", "FR")
    assert db.lookup("10.1.255.255").asn == 64501
    assert db.lookup("10.2.0.0") == Network(64500, "OUTER-AS", "DE")  # the outer range resumes
    assert db.lookup("20.0.0.99").asn == 64510
    assert db.lookup("20.0.0.100").asn == 64511
    assert db.lookup("20.0.0.201").asn == 64511
    assert db.lookup("30.0.0.1").as_name == "NEW-NAME"


@pytest.mark.parametrize("seed", range(5))
def test_random_overlaps_resolve_as_the_rule_says(tmp_path, seed):
    """Against brute force: of the ranges holding an address, the latest start wins, then the
    shortest, then the latest line."""
    rng = random.Random(seed)
    base = int(ip_address("10.0.0.0"))
    ranges = []
    for _ in range(150):
        start = rng.randrange(1000)
        end = min(999, start + rng.choice([0, 1, 5, 30, 200, 900]))
        asn = rng.choice([0, 0, 64500, 64501, 64502, 64503])
        ranges.append((start, end, asn))
    lines = [
        f"{ip_address(base + s)}\t{ip_address(base + e)}\t{a}\t{'None' if not a else 'NL'}\tAS{a}" for s, e, a in ranges
    ]
    build_database(io.BytesIO(tsv(lines)), tmp_path / "asn.sqlite3")
    with open_database(tmp_path / "asn.sqlite3") as db:
        for offset in range(-1, 1001):
            holding = [(s, -e, i, a) for i, (s, e, a) in enumerate(ranges) if s <= offset <= e]
            asn = max(holding)[3] if holding else 0
            expected = Network(asn, f"AS{asn}", "NL") if asn else UNKNOWN
            assert db.lookup(str(ip_address(base + offset))) == expected, offset


def test_the_file_is_disjoint_merged_and_keeps_no_unrouted_space(db_path):
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT lo, hi FROM ranges ORDER BY lo").fetchall()
    for (lo, hi), (next_lo, _) in zip(rows, rows[1:], strict=False):
        assert lo <= hi < next_lo
    names = [name for (name,) in conn.execute("SELECT name FROM networks")]
    assert "Not routed" not in names
    # The two adjacent TOT-NET lines became one range.
    (tot,) = conn.execute("SELECT id FROM networks WHERE asn = 23969").fetchone()
    assert conn.execute("SELECT count(*) FROM ranges WHERE network = ?", (tot,)).fetchone() == (1,)
    conn.close()


def test_metadata(db, db_path):
    assert db_path.stat().st_mode & 0o777 == 0o644  # readable by web and worker users
    assert db.ranges == len(LINES)
    assert db.source == "ip2asn-combined.tsv.gz"
    assert db.built_at.tzinfo is not None
    assert datetime.now(UTC) - db.built_at < timedelta(minutes=5)


def test_plain_tsv_and_streams_build_alike(tmp_path):
    plain = tmp_path / "plain.tsv"
    plain.write_bytes(tsv(LINES).replace(b"\n", b"\r\n"))
    assert build_database(plain, tmp_path / "a.sqlite3") == len(LINES)
    assert build_database(io.BytesIO(gzip.compress(tsv(LINES))), tmp_path / "b.sqlite3") == len(LINES)
    for name in ("a.sqlite3", "b.sqlite3"):
        with open_database(tmp_path / name) as db:
            assert db.lookup("1.0.0.1").asn == 13335
            assert db.lookup("2c0f:fff0::1").asn == 37125


def test_odd_descriptions_are_decoded_leniently_cleaned_and_capped(tmp_path):
    lines = [
        b"50.0.0.0\t50.0.0.255\t64600\tUS\tEVIL\x1b[31m-AS \xff\xfe\tTAB\r\x00 \xe2\x80\xaeDIB",
        b"50.0.1.0\t50.0.1.255\t64601\tFR\tCaf\xe9 R\xe9seau",  # Latin-1, not UTF-8
        b"50.0.2.0\t50.0.2.255\t64602\tDE\tM\xc3\xbcnchen  Netz",  # UTF-8
        b"50.0.3.0\t50.0.3.255\t64603\tGB\t" + b"X" * 3000,
        b"50.0.4.0\t50.0.4.255\t64604\tusa\tBAD-COUNTRY",
    ]
    build_database(io.BytesIO(b"\n".join(lines)), tmp_path / "asn.sqlite3")
    with open_database(tmp_path / "asn.sqlite3") as db:
        evil = db.lookup("50.0.0.1").as_name
        assert evil.startswith("EVIL [31m-AS")
        assert all(ch.isprintable() for ch in evil)
        assert "\u202e" not in evil and "\x1b" not in evil and "\t" not in evil
        assert db.lookup("50.0.1.1").as_name == "Café Réseau"
        assert db.lookup("50.0.2.1").as_name == "München Netz"
        assert db.lookup("50.0.3.1").as_name == "X" * MAX_NAME_CHARS
        assert db.lookup("50.0.4.1") == Network(64604, "BAD-COUNTRY", "")


@pytest.mark.parametrize(
    "line, message",
    [
        ("1.2.3.0\t1.2.3.255\t64500\tUS", "line 3: expected 5 tab-separated columns"),
        ("1.2.3.0 1.2.3.255 64500 US NAME", "line 3: expected 5 tab-separated columns"),
        ("<html><body>Not Found</body></html>", "line 3: expected 5 tab-separated columns"),
        ("1.2.3\t1.2.3.255\t64500\tUS\tNAME", "line 3: range_start '1.2.3' is not an IP address"),
        ("1.2.3.0\t1.2.3.256\t64500\tUS\tNAME", "line 3: range_end '1.2.3.256' is not an IP address"),
        ("1.2.3.0\t2001:db8::\t64500\tUS\tNAME", "line 3: range_start and range_end are not of the same IP version"),
        ("1.2.3.255\t1.2.3.0\t64500\tUS\tNAME", "line 3: range_start is after range_end"),
        ("1.2.3.0\t1.2.3.255\tAS64500\tUS\tNAME", "line 3: AS_number 'AS64500' is not a number below 2^32"),
        ("1.2.3.0\t1.2.3.255\t4294967296\tUS\tNAME", "line 3: AS_number '4294967296' is not a number below 2^32"),
        ("1.2.3.0\t1.2.3.255\t-1\tUS\tNAME", "line 3: AS_number '-1' is not a number below 2^32"),
        ("1.2.3.0\t1.2.3.255\t6450\u0661\tUS\tNAME", "line 3: AS_number"),
        ("1.2.3.0" + "x" * MAX_LINE_BYTES, "line 3: longer than"),
    ],
)
def test_garbage_is_refused_naming_the_line(tmp_path, line, message):
    source = tmp_path / "bad.tsv.gz"
    source.write_bytes(gzip.compress(tsv([LINES[0], LINES[1], line, LINES[2]])))
    with pytest.raises(AsnSourceError) as raised:
        build_database(source, tmp_path / "asn.sqlite3")
    assert message in str(raised.value)
    assert not (tmp_path / "asn.sqlite3").exists()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "no ranges"),
        (b"\n\n", "no ranges"),
        (gzip.compress(b""), "no ranges"),
        (gzip.compress(tsv(LINES))[:-20], "not a valid gzip file"),
        (b"\x1f\x8b\x08\x00garbage", "not a valid gzip file"),
        (b"\x00\x01\x02\x03" * 2000, "line 1: longer than"),
    ],
)
def test_empty_truncated_and_binary_input_is_refused(tmp_path, data, message):
    with pytest.raises(AsnSourceError, match=message):
        build_database(io.BytesIO(data), tmp_path / "asn.sqlite3")


def test_a_failed_build_keeps_the_old_database_and_leaves_no_temporary_files(db_path):
    before = db_path.read_bytes()
    with pytest.raises(AsnSourceError):
        build_database(io.BytesIO(tsv([LINES[0], "garbage"])), db_path)
    assert db_path.read_bytes() == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["asn.sqlite3", "ip2asn-combined.tsv.gz"]
    with open_database(db_path) as db:
        assert db.lookup("1.0.0.1").asn == 13335


def test_a_rebuild_replaces_the_file_and_open_readers_keep_theirs(db_path):
    with open_database(db_path) as old:
        build_database(io.BytesIO(tsv(["1.0.0.0\t1.0.0.255\t64999\tCA\tNEW-OWNER"])), db_path)
        # The open reader still answers from the file it opened, not from a half-written one.
        assert old.lookup("1.0.0.1").asn == 13335
    with open_database(db_path) as new:
        assert new.lookup("1.0.0.1") == Network(64999, "NEW-OWNER", "CA")
        assert new.ranges == 1


def test_a_missing_database_says_how_to_install_one(tmp_path):
    with pytest.raises(AsnDatabaseMissing) as raised:
        open_database(tmp_path / "nowhere" / "asn.sqlite3")
    message = str(raised.value)
    assert "no ASN database at" in message
    assert "manage.py update_asn_db" in message
    assert "--file" in message
    assert "ip2asn-combined.tsv.gz" in message


@pytest.mark.parametrize("content", [b"", b"this is not a database" * 100, "sqlite-without-meta"])
def test_a_file_that_is_no_asn_database_is_treated_as_missing(tmp_path, content):
    path = tmp_path / "asn.sqlite3"
    if content == "sqlite-without-meta":
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    else:
        path.write_bytes(content)
    with pytest.raises(AsnDatabaseMissing, match="is not a usable ASN database.*update_asn_db"):
        open_database(path)


def test_a_forked_child_reopens_the_database(db):
    assert db.lookup("1.0.0.1").asn == 13335
    pid = os.fork()
    if pid == 0:  # the child: exit status says whether the lookup worked
        ok = db.lookup("1.0.0.1").asn == 13335 and db._pid == os.getpid()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert db.lookup("2c0f:fff0::1").asn == 37125


# -- the management command -----------------------------------------------------------------------


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    path = tmp_path / "download" / "ip2asn-combined.tsv.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(tsv(LINES)))
    return path


def test_the_command_builds_into_data_dir_by_default(settings, tmp_path, source_file):
    settings.DATA_DIR = tmp_path / "data"
    if hasattr(settings, "ASN_DATABASE"):
        del settings.ASN_DATABASE
    out = io.StringIO()
    call_command("update_asn_db", "--file", str(source_file), stdout=out)
    target = tmp_path / "data" / "asn.sqlite3"
    assert f"loaded {len(LINES)} ranges into {target} in " in out.getvalue()
    with open_database(target) as db:
        assert db.lookup("1.0.0.1") == Network(13335, "CLOUDFLARENET", "US")
        assert db.source == "ip2asn-combined.tsv.gz"


def test_the_command_honours_the_asn_database_setting(settings, tmp_path, source_file):
    settings.DATA_DIR = tmp_path / "data"
    settings.ASN_DATABASE = tmp_path / "elsewhere" / "networks.sqlite3"
    call_command("update_asn_db", "--file", str(source_file), stdout=io.StringIO())
    assert not (tmp_path / "data" / "asn.sqlite3").exists()
    with open_database(settings.ASN_DATABASE) as db:
        assert db.lookup("2c0f:fff0::1").asn == 37125


def test_the_command_refuses_garbage_and_keeps_the_old_database(settings, tmp_path, source_file):
    settings.DATA_DIR = tmp_path / "data"
    settings.ASN_DATABASE = tmp_path / "data" / "asn.sqlite3"
    call_command("update_asn_db", "--file", str(source_file), stdout=io.StringIO())
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(tsv([LINES[0], "1.2.3.0\tnonsense\t1\tUS\tX"]))
    with pytest.raises(CommandError, match=r"bad.tsv: line 2: range_end 'nonsense' is not an IP address.*left as it"):
        call_command("update_asn_db", "--file", str(bad), stdout=io.StringIO())
    with open_database(settings.ASN_DATABASE) as db:
        assert db.ranges == len(LINES)


def test_the_command_refuses_a_missing_file_and_a_url_that_is_not_https(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    with pytest.raises(CommandError, match="no file at"):
        call_command("update_asn_db", "--file", str(tmp_path / "absent.tsv.gz"), stdout=io.StringIO())
    for url in ("http://iptoasn.com/data/ip2asn-combined.tsv.gz", "file:///etc/passwd", "ftp://example.org/x"):
        with pytest.raises(CommandError, match="must be an https:// URL"):
            call_command("update_asn_db", "--url", url, stdout=io.StringIO())
    assert not any((tmp_path / "data").glob(".asn-download-*"))

"""Build a year of DMARC data for one large domain, then time every dashboard page.

    .venv/bin/python bench/dashboard.py [--records 10000000] [--days 365] [--repeat 15] [--rebuild]

The data set is the issue's: ``--records`` records for big.example over ``--days`` UTC
days ending today; about 40 reporters a day, one report each, sized Zipf-like (a few
send thousands of records, most send tens); named senders' IP pools, forwarders and a
long tail of spoofers that changes every day. It lives in its own database
(DATABASE_URL, default dmarcdash_dashboard on 127.0.0.1), built once and kept: a later
run with the same size only times the pages. A different size, or --rebuild, drops
and builds it again (a database this bench did not make is never dropped).

The build streams one day at a time, in one transaction each: the day's reports
inserted, their records COPYed, each report rolled up by reports.intake.rollups.add_report
(what ingest runs), the day's new source IPs registered. VACUUM ANALYZE at the end.

The timings are server-side: django.test.Client sends each request through the whole
middleware stack, logged in as ``bench`` (an owner of the domain), DEBUG off; one
warm-up request, then ``--repeat`` timed ones per page. One more request, untimed, counts the
queries and their time (``sql ms``); a page that misses the target shows its slowest query.
"""

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dmarcdash_dashboard")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DMARCDASH_DATA_DIR", tempfile.mkdtemp(prefix="dmarcdash-bench-"))
os.environ.setdefault("API_RATE_LIMIT", "0")  # the JSON API's pages are timed like the others
os.environ["DEBUG"] = "false"  # DEBUG logs every query: the timings would not be the production ones

import psycopg  # noqa: E402

from bench.common import create_database, peak_rss_mb, table_size  # noqa: E402

DOMAIN = "big.example"
SEED = 9990
TARGET_MEDIAN_MS = 300
TARGET_P95_MS = 1000
WINDOWS = (30, 90, 365)  # days, for the rollup row counts


def pages(domain: str, ip: str, sender: int, report: int, reporter: str = "google.com") -> list[tuple[str, list, str]]:
    """The pages timed, as (URL name, URL arguments, query string): every tab, the filtered views
    (header_from, disposition, reporter, failing only, a named sender), every CSV export and the
    JSON API."""
    header_from = f"header_from={domain}"
    return [
        ("home", [], ""),
        ("domain", [domain], "days=7"),
        ("domain", [domain], "days=30"),
        ("domain", [domain], "days=90"),
        ("domain", [domain], "days=365"),
        ("domain", [domain], f"days=30&{header_from}"),
        ("domain", [domain], f"days=365&{header_from}"),
        ("domain", [domain], "days=30&disposition=quarantine"),
        ("domain", [domain], f"days=30&reporter={reporter}"),
        ("domain", [domain], "days=30&failing=1"),
        ("domain", [domain], f"days=30&sender={sender}"),
        ("domain-sources", [domain], "days=30"),
        ("domain-sources", [domain], "days=90"),
        ("domain-sources", [domain], "days=30&sort=-dmarc_pass&page=3"),
        ("domain-sources", [domain], f"days=30&{header_from}"),
        ("domain-sources", [domain], "days=30&failing=1"),
        ("domain-sources", [domain], f"days=30&reporter={reporter}"),
        ("domain-senders", [domain], "days=30"),
        ("domain-senders", [domain], f"days=30&{header_from}"),
        ("domain-reporters", [domain], "days=30"),
        ("domain-reporters", [domain], f"days=30&{header_from}"),
        ("domain-dkim", [domain], "days=30"),
        ("source", [domain, ip], "days=90"),
        ("sender", [domain, sender], "days=30"),
        ("report", [report], ""),
        ("export-sources", [domain], "days=30"),
        ("export-sources", [domain], "days=365"),
        ("export-sources", [domain], f"days=30&{header_from}"),
        ("export-senders", [domain], "days=30"),
        ("export-reporters", [domain], "days=30"),
        ("export-dkim", [domain], "days=30"),
        ("export-report-records", [report], ""),
        ("api-domains", [], "days=30"),
        ("api-daily", [domain], "days=90"),
        ("api-daily", [domain], f"days=90&{header_from}"),
        ("api-sources", [domain], "days=30"),
        ("api-senders", [domain], "days=30"),
        ("api-reporters", [domain], "days=30"),
        ("api-report", [report], ""),
    ]


# The data set ------------------------------------------------------------------------------------------

# Reporters, the largest first: (org_name, email, format, authenticity label, report_id style).
NAMED_REPORTERS = (
    ("google.com", "noreply-dmarc-support@google.com", "legacy", "verified", "digits"),
    ("Enterprise Outlook", "dmarcreport@microsoft.com", "legacy", "verified", "uuid"),
    ("Outlook.com", "dmarcreport@microsoft.com", "legacy", "verified", "uuid"),
    ("Yahoo", "dmarchelp@yahooinc.com", "legacy", "verified", "stamp"),
    ("comcast.net", "dmarc-reports@comcast.net", "legacy", "unsigned", "stamp"),
    ("Mail.Ru", "dmarc_support@corp.mail.ru", "legacy", "verified", "digits"),
    ("web.de", "noreply-dmarc-support@web.de", "legacy", "verified", "uuid"),
    ("GMX", "noreply-dmarc-support@gmx.net", "legacy", "verified", "uuid"),
    ("Fastmail Pty Ltd", "noreply-dmarc-support@fastmail.com", "rfc9990", "verified", "digits"),
    ("Yandex", "dmarc_support@yandex.ru", "legacy", "verified", "digits"),
    ("Zoho Corporation", "noreply-dmarc@zoho.com", "legacy", "unsigned", "stamp"),
    ("Proton AG", "dmarc-reports@proton.me", "rfc9990", "verified", "uuid"),
    ("Seznam.cz", "dmarc-noreply@seznam.cz", "legacy", "", "stamp"),
    ("t-online.de", "dmarc-reports@t-online.de", "legacy", "", "digits"),
    ("Orange", "dmarc.rua@orange.com", "legacy", "unsigned", "stamp"),
    ("Mimecast", "dmarc-reports@mimecast.org", "rfc9990", "verified", "uuid"),
)
SMALL_REPORTERS = (
    "alder", "aurora", "basalt", "birch", "cobalt", "delta-mail", "ember", "fjord", "granite", "harbor",
    "iris", "juniper", "kestrel", "lumen", "meridian", "nimbus", "onyx", "pylon", "quartz", "rook",
    "sable", "tundra", "umber", "vortex", "willow", "xenon", "yarrow", "zephyr",
)  # fmt: skip
SMALL_PRESENCE = 0.85  # the small reporters skip a day now and then
REPORTER_ZIPF = 1.6  # report sizes by rank: the largest about half the day's records, the smallest tens

# Named senders' pools: (slug, IPs, IPv6 share, share of the records, IPv4 networks, IPv6 prefix,
# PTR name format, PTR base domain, ASN, AS name, country). "big-example-mail" is the domain's own.
SENDER_POOLS = (
    ("google", 2000, 0.2, 0.30, ("209.85", "74.125"), "2a00:1450:4864", "mail-{n}.google.com", "google.com",
     15169, "GOOGLE", "US"),
    ("microsoft", 1500, 0.2, 0.22, ("40.107", "52.100"), "2a01:111:f403", "mail-{n}.outbound.protection.outlook.com",
     "outlook.com", 8075, "MICROSOFT-CORP-MSN-AS-BLOCK", "US"),
    ("sendgrid", 500, 0.0, 0.12, ("167.89", "149.72"), "", "o{n}.ptr.sendgrid.net", "sendgrid.net",
     11377, "SENDGRID", "US"),
    ("mailchimp", 300, 0.0, 0.06, ("198.2", "205.201"), "", "mail{n}.atl11.rsgsv.net", "rsgsv.net",
     14291, "THE-ROCKET-SCIENCE-GROUP", "US"),
    ("big-example-mail", 10, 0.0, 0.05, ("203.0.113",), "", "mx{n}.big.example", "big.example",
     64500, "BIG-EXAMPLE", "NL"),
)  # fmt: skip
OWN_NETWORK = "203.0.113.0/24"
# Forwarders and mailing lists: (IPv4 network, PTR name format, base domain, ASN, AS name, country).
FORWARDERS = (
    ("141.20", "mx{n}.uni-example.de", "uni-example.de", 680, "DFN Verein zur Foerderung eines Deutschen "
     "Forschungsnetzes e.V.", "DE"),
    ("131.111", "lists{n}.cam-example.ac.uk", "cam-example.ac.uk", 786, "JANET Jisc Services Limited", "GB"),
    ("145.100", "relay{n}.surf-example.nl", "surf-example.nl", 1103, "SURF B.V.", "NL"),
    ("128.32", "fwd{n}.alumni-example.edu", "alumni-example.edu", 25, "UCB", "US"),
    ("192.30", "out{n}.lists-example.org", "lists-example.org", 36459, "GITHUB", "US"),
)  # fmt: skip
FORWARDER_IPS = 400
FORWARDER_SHARE = 0.12
# Spoofers: new IPs every day, as many as about 3.5% of the day's records (a few hundred to a few
# thousand on the full data set), each in 1.6 records on average. (first octet, ASN, AS name, country, ISP).
SPOOFER_NETWORKS = (
    (1, 4134, "CHINANET-BACKBONE", "CN", "chinanet-example.cn"),
    (14, 45899, "VNPT-AS-VN", "VN", "vnpt-example.vn"),
    (27, 7552, "VIETEL-AS-AP", "VN", "viettel-example.vn"),
    (36, 4766, "KIXS-AS-KR", "KR", "kt-example.kr"),
    (41, 8452, "TE-AS", "EG", "te-example.eg"),
    (59, 9829, "BSNL-NIB", "IN", "bsnl-example.in"),
    (103, 17552, "TRUE-AS-AP", "TH", "true-example.th"),
    (115, 9299, "IPG-AS-AP", "PH", "pldt-example.ph"),
    (177, 28573, "Claro NXT Telecomunicacoes Ltda", "BR", "claro-example.br"),
    (185, 16276, "OVH SAS", "FR", ""),
    (188, 14061, "DIGITALOCEAN-ASN", "US", ""),
    (190, 27699, "TELEFONICA BRASIL S.A", "BR", "telesp-example.br"),
)
SPOOFER_IPV6 = (("2400:cb00", 13335, "CLOUDFLARENET", "US"), ("2a02:4780", 47583, "AS-HOSTINGER", "LT"))
SPOOFER_SHARE = 0.056  # of the records, times a daily factor (about 0.3 to 3)

FORWARD_DOMAINS = ("lists-example.org", "uni-example.de", "alumni-example.edu", "surf-example.nl")


@dataclass
class Pool:
    """IPs that send alike: one named sender's, the forwarders', or one day's spoofers."""

    name: str
    share: float  # of the day's records
    ips: list[str]
    ip_weights: list[float] | None  # cumulative Zipf weights over ips; None: uniform
    tails: list[str]  # what follows source_ip and count in a record's COPY line
    tail_weights: list[float]  # cumulative
    passes: list[bool]  # whether each tail passes DMARC
    alpha: float  # Pareto shape of a record's message count
    cap: int  # largest message count of a record


def cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def zipf(n: int, s: float) -> list[float]:
    return cumulative([1 / (rank**s) for rank in range(1, n + 1)])


def split(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights``, rounded so that the parts add up to it exactly."""
    whole = sum(weights)
    parts, done, running = [], 0, 0.0
    for weight in weights:
        running += weight
        upto = round(total * running / whole)
        parts.append(upto - done)
        done = upto
    return parts


def tail(
    disposition: str,
    header_from: str,
    envelope_from: str,
    dkim: list[tuple[str, str, str]],
    spf: tuple[str, str],
    *,
    dkim_aligned: str,
    spf_aligned: str,
    reasons: tuple[tuple[str, str], ...] = (),
) -> tuple[str, bool]:
    """The COPY text of a record after source_ip and count, and whether it passes DMARC."""
    from reports.intake.store import RECORD_COLUMNS

    encode = json.JSONEncoder(separators=(",", ":")).encode
    values = {
        "disposition": disposition,
        "dkim": dkim_aligned,
        "spf": spf_aligned,
        "header_from": header_from,
        "envelope_from": envelope_from,
        "envelope_to": "",
        "reasons": encode([{"type": kind, "comment": comment} for kind, comment in reasons]),
        "dkim_results": encode([{"domain": d, "selector": s, "result": r} for d, s, r in dkim]),
        "spf_results": encode([{"domain": spf[0], "scope": "mfrom", "result": spf[1]}]),
    }
    assert RECORD_COLUMNS[:4] == ("report_id", "day", "source_ip", "count")  # the prefix, then these two
    return "\t".join(values[name] for name in RECORD_COLUMNS[4:]), "pass" in (dkim_aligned, spf_aligned)


def variants(slug: str, d: str = DOMAIN) -> list[tuple[float, tuple[str, bool]]]:
    """How a category's mail for domain ``d`` is evaluated, with weights: (weight, tail)."""
    if slug == "google":
        return [
            (0.90, tail("none", d, d, [(d, "google", "pass")], (d, "pass"), dkim_aligned="pass", spf_aligned="pass")),
            (0.06, tail("none", d, d, [(d, "google", "pass"), ("big-example.20230601.gappssmtp.com", "20230601",
             "pass")], (d, "pass"), dkim_aligned="pass", spf_aligned="pass")),
            (0.03, tail("none", d, "calendar-server.bounces.google.com", [(d, "google", "pass")],
             ("calendar-server.bounces.google.com", "pass"), dkim_aligned="pass", spf_aligned="fail")),
            (0.01, tail("none", d, d, [(d, "google", "fail")], (d, "pass"), dkim_aligned="fail", spf_aligned="pass")),
        ]  # fmt: skip
    if slug == "microsoft":
        onmicrosoft = ("bigexample.onmicrosoft.com", "selector1-bigexample-onmicrosoft-com", "pass")
        return [
            (0.93, tail("none", d, d, [(d, "selector1", "pass"), onmicrosoft], (d, "pass"), dkim_aligned="pass",
             spf_aligned="pass")),
            (0.05, tail("none", d, d, [(d, "selector2", "pass")], (d, "pass"), dkim_aligned="pass",
             spf_aligned="pass")),
            (0.02, tail("none", d, d, [(d, "selector1", "fail")], (d, "pass"), dkim_aligned="fail",
             spf_aligned="pass")),
        ]  # fmt: skip
    if slug == "sendgrid":
        news = f"news.{d}"
        return [
            (0.85, tail("none", news, f"em4821.{news}", [(news, "s1", "pass"), ("sendgrid.info", "smtpapi", "pass")],
             (f"em4821.{news}", "pass"), dkim_aligned="pass", spf_aligned="pass")),
            (0.15, tail("none", d, f"em1190.{d}", [(d, "s2", "pass"), ("sendgrid.info", "smtpapi", "pass")],
             (f"em1190.{d}", "pass"), dkim_aligned="pass", spf_aligned="pass")),
        ]  # fmt: skip
    if slug == "mailchimp":
        bounce = "mail182.sea31.mcsv.net"
        return [
            (0.97, tail("none", d, bounce, [(d, "k1", "pass"), ("mcsv.net", "k1", "pass")], (bounce, "pass"),
             dkim_aligned="pass", spf_aligned="fail")),
            (0.03, tail("quarantine", d, bounce, [(d, "k2", "fail"), ("mcsv.net", "k1", "pass")], (bounce, "pass"),
             dkim_aligned="fail", spf_aligned="fail")),
        ]  # fmt: skip
    if slug == "big-example-mail":
        mail = f"mail.{d}"
        return [
            (0.97, tail("none", d, d, [(d, "mail2024", "pass")], (d, "pass"), dkim_aligned="pass", spf_aligned="pass")),
            (0.02, tail("none", mail, mail, [(mail, "mail2024", "pass")], (mail, "pass"), dkim_aligned="pass",
             spf_aligned="pass")),
            (0.01, tail("none", d, d, [(d, "mail2024", "fail")], (d, "pass"), dkim_aligned="fail", spf_aligned="pass")),
        ]  # fmt: skip
    if slug == "forwarders":
        out = []
        for via in FORWARD_DOMAINS:
            out += [
                (0.55, tail("none", d, via, [(d, "google", "pass")], (via, "pass"), dkim_aligned="pass",
                 spf_aligned="fail")),
                (0.25, tail("none", d, via, [(d, "selector1", "fail")], (via, "pass"), dkim_aligned="fail",
                 spf_aligned="fail", reasons=(("forwarded", ""),))),
                (0.12, tail("none", d, via, [(d, "google", "fail"), (via, "list", "pass")], (via, "pass"),
                 dkim_aligned="fail", spf_aligned="fail", reasons=(("mailing_list", f"list at {via}"),))),
                (0.08, tail("quarantine", d, via, [(d, "google", "fail")], (via, "pass"), dkim_aligned="fail",
                 spf_aligned="fail")),
            ]  # fmt: skip
        return out
    shop = f"shop.{d}"
    return [
        (0.45, tail("quarantine", d, d, [], (d, "fail"), dkim_aligned="fail", spf_aligned="fail")),
        (0.15, tail("quarantine", d, "bulk.spam-example.top", [("spam-example.top", "default", "pass")],
         ("bulk.spam-example.top", "pass"), dkim_aligned="fail", spf_aligned="fail")),
        (0.20, tail("reject", shop, shop, [], (shop, "fail"), dkim_aligned="fail", spf_aligned="fail")),
        (0.12, tail("none", d, d, [], (d, "softfail"), dkim_aligned="fail", spf_aligned="fail",
         reasons=(("local_policy", "arc=pass"),))),
        (0.08, tail("quarantine", d, d, [(d, "google", "fail")], (d, "softfail"), dkim_aligned="fail",
         spf_aligned="fail")),
    ]  # fmt: skip


def make_pool(
    name: str, share: float, ips: list[str], ip_weights, alpha: float, cap: int, domain: str = DOMAIN
) -> Pool:
    found = variants(name, domain)
    return Pool(
        name=name,
        share=share,
        ips=ips,
        ip_weights=ip_weights,
        tails=[text for _, (text, _) in found],
        tail_weights=cumulative([weight for weight, _ in found]),
        passes=[passed for _, (_, passed) in found],
        alpha=alpha,
        cap=cap,
    )


def random_ipv4(rng: Random, network: str) -> str:
    octets = network.split(".")
    octets += [str(rng.randrange(256)) for _ in range(3 - len(octets))] + [str(rng.randrange(1, 255))]
    return ".".join(octets)


def random_ipv6(rng: Random, prefix: str) -> str:
    groups = prefix.split(":") + [f"{rng.randrange(65536):x}" for _ in range(8 - len(prefix.split(":")) - 1)]
    return ip_address(":".join([*groups, f"{rng.randrange(1, 65536):x}"])).compressed


def unique_ips(rng: Random, count: int, make) -> list[str]:
    found: dict[str, None] = {}
    while len(found) < count:
        found[make()] = None
    return list(found)


@dataclass
class Reporter:
    org_name: str
    email: str
    format: str
    authenticity: str
    style: str
    every_day: bool


def reporters() -> list[Reporter]:
    found = [Reporter(*entry, every_day=True) for entry in NAMED_REPORTERS]
    for number, word in enumerate(SMALL_REPORTERS):
        found.append(
            Reporter(
                org_name=f"{word}.example",
                email=f"dmarc@{word}.example",
                format="rfc9990" if number % 7 == 3 else "legacy",
                authenticity=("verified", "unsigned", "")[number % 3],
                style="stamp",
                every_day=False,
            )
        )
    return found


def report_id(rng: Random, reporter: Reporter, begin: datetime) -> str:
    if reporter.style == "digits":
        return str(rng.randrange(10**19, 10**20))
    if reporter.style == "uuid":
        return f"{rng.getrandbits(128):032x}"
    return f"{int(begin.timestamp())}.{rng.randrange(100_000, 1_000_000)}"


def fingerprint(reporter: Reporter, rid: str, begin: datetime, end: datetime, domain: str = DOMAIN) -> str:
    """As reports.intake.pipeline.fingerprint computes it from a parsed report."""
    parts = (reporter.org_name.lower(), reporter.email.lower(), domain, rid, str(int(begin.timestamp())))
    return hashlib.sha256("\x1f".join([*parts, str(int(end.timestamp()))]).encode()).hexdigest()


def day_sizes(rng: Random, records: int, days: list[date]) -> list[int]:
    """Records per day: weekdays busier than weekends, 20% growth over the period, daily noise."""
    weights = []
    for number, day in enumerate(days):
        weekday = 1.15 if day.weekday() < 5 else 0.62
        weights.append(weekday * (1 + 0.2 * number / len(days)) * rng.uniform(0.9, 1.1))
    return split(records, weights)


def report_lines(rng: Random, size: int, pools: list[Pool], pool_weights: list[float]) -> tuple[list[str], int, int]:
    """``size`` records (COPY lines without the report id), their messages and messages passing DMARC."""
    lines: list[str] = []
    messages = passed = 0
    pareto = rng.paretovariate
    for index, count in Counter(rng.choices(range(len(pools)), cum_weights=pool_weights, k=size)).items():
        pool = pools[index]
        ips = rng.choices(pool.ips, cum_weights=pool.ip_weights, k=count)
        kinds = rng.choices(range(len(pool.tails)), cum_weights=pool.tail_weights, k=count)
        alpha, cap, tails, passes = pool.alpha, pool.cap, pool.tails, pool.passes
        for ip, kind in zip(ips, kinds, strict=True):
            messages_here = min(int(pareto(alpha)), cap)
            messages += messages_here
            if passes[kind]:
                passed += messages_here
            lines.append(f"{ip}\t{messages_here}\t{tails[kind]}")
    return lines, messages, passed


@dataclass
class SourceRow:
    ip: str
    ptr: str
    base_domain: str
    asn: int
    as_name: str
    country: str
    sender_id: int | None = None
    evidence: str = ""


def register_ips(rows: list[SourceRow], seen: datetime) -> None:
    """SourceIP rows as enrichment leaves them, looked up and not due again for a year."""
    from django.db import connection

    from reports.models import SourceIP

    columns = [
        ("ip", "inet"), ("ptr", "text"), ("forward_confirmed", "boolean"), ("base_domain", "text"),
        ("rdns_status", "text"), ("rdns_detail", "text"), ("asn", "bigint"), ("as_name", "text"),
        ("country", "text"), ("sender_id", "bigint"), ("sender_evidence", "text"),
        ("first_seen_at", "timestamptz"), ("looked_up_at", "timestamptz"), ("expires_at", "timestamptz"),
    ]  # fmt: skip
    values = [
        [row.ip for row in rows],
        [row.ptr for row in rows],
        [bool(row.ptr) for row in rows],
        [row.base_domain for row in rows],
        ["ok" if row.ptr else "no-ptr" for row in rows],
        ["" for _ in rows],
        [row.asn for row in rows],
        [row.as_name for row in rows],
        [row.country for row in rows],
        [row.sender_id for row in rows],
        [row.evidence for row in rows],
        [seen] * len(rows),
        [seen] * len(rows),
        [seen + timedelta(days=365)] * len(rows),
    ]
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SourceIP._meta.db_table} ({', '.join(name for name, _ in columns)}) "  # noqa: S608
            f"SELECT * FROM unnest({arrays}) ON CONFLICT (ip) DO NOTHING",
            values,
        )


def setup_tenancy():
    """The organization, its owner ``bench``, the domain, its senders and their IPs; returns the
    domain and the fixed pools (named senders and forwarders)."""
    from django.contrib.auth import get_user_model

    from reports.enrichment.ip_lookup import sync_catalog
    from reports.models import Domain, DomainSender, Membership, Organization, Sender

    organization = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench")
    Membership.objects.create(user=user, organization=organization, role=Membership.Role.OWNER)
    domain = Domain.objects.create(organization=organization, name=DOMAIN)
    senders = sync_catalog()
    senders["big-example-mail"] = Sender.objects.create(
        organization=organization, slug="big-example-mail", name="Big Example mail servers", networks=[OWN_NETWORK]
    )
    for slug in ("google", "microsoft", "sendgrid", "mailchimp", "big-example-mail"):
        DomainSender.objects.create(domain=domain, sender=senders[slug], authorised=True)
    DomainSender.objects.create(domain=domain, sender=senders["mailgun"], authorised=False, note="account closed")

    pools, rows = sender_pools(Random(SEED), senders, senders["big-example-mail"])
    return domain, pools, rows


def sender_pools(rng: Random, senders: dict, own) -> tuple[list[Pool], list[SourceRow]]:
    """The named senders' and the forwarders' IP pools, as big.example's mail comes from them, and
    their SourceIP rows; ``own`` is the Sender of the domain's own servers (None: not declared)."""
    pools, rows = [], []
    for slug, size, ipv6, share, networks, prefix, ptr, base, asn, as_name, country in SENDER_POOLS:
        v6 = round(size * ipv6)
        ips = unique_ips(rng, size - v6, lambda networks=networks: random_ipv4(rng, rng.choice(networks)))
        ips += unique_ips(rng, v6, lambda prefix=prefix: random_ipv6(rng, prefix))
        alpha, cap = (0.9, 5000) if slug == "big-example-mail" else (0.75, 50_000)
        pools.append(make_pool(slug, share, ips, zipf(len(ips), 0.9), alpha, cap))
        sender = own if slug == "big-example-mail" else senders[slug]
        if sender is None:
            evidence = ""
        elif slug == "big-example-mail":
            evidence = f"in {sender.name}'s network {OWN_NETWORK}"
        else:
            evidence = f"matched by PTR base domain {base}"
        rows += [
            SourceRow(ip, ptr.format(n=n + 1), base, asn, as_name, country, sender and sender.pk, evidence)
            for n, ip in enumerate(ips)
        ]
    ips = []
    for network, ptr, base, asn, as_name, country in FORWARDERS:
        found = unique_ips(rng, FORWARDER_IPS // len(FORWARDERS), lambda network=network: random_ipv4(rng, network))
        ips += found
        rows += [SourceRow(ip, ptr.format(n=n + 1), base, asn, as_name, country) for n, ip in enumerate(found)]
    pools.append(make_pool("forwarders", FORWARDER_SHARE, ips, zipf(len(ips), 0.8), 1.3, 500))
    return pools, rows


def for_domain(pools: list[Pool], domain: str) -> list[Pool]:
    """The same IP pools sending ``domain``'s mail."""
    return [make_pool(pool.name, pool.share, pool.ips, pool.ip_weights, pool.alpha, pool.cap, domain) for pool in pools]


def spoofers(rng: Random, count: int) -> list[SourceRow]:
    rows = []
    for _ in range(count):
        if rng.random() < 0.1:
            prefix, asn, as_name, country = rng.choice(SPOOFER_IPV6)
            rows.append(SourceRow(random_ipv6(rng, prefix), "", "", asn, as_name, country))
            continue
        first, asn, as_name, country, isp = rng.choice(SPOOFER_NETWORKS)
        ip = random_ipv4(rng, str(first))
        ptr = f"{ip.replace('.', '-')}.dynamic.{isp}" if isp and rng.random() < 0.4 else ""
        rows.append(SourceRow(ip, ptr, isp if ptr else "", asn, as_name, country))
    return rows


def copy_records(reports: list, bodies: list[list[str]]) -> None:
    from django.db import connection

    from reports.intake.store import RECORD_COLUMNS, copy_prefix
    from reports.models import Record

    sql = f"COPY {Record._meta.db_table} ({', '.join(RECORD_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for report, lines in zip(reports, bodies, strict=True):
            prefix = copy_prefix(report)
            for start in range(0, len(lines), 1000):
                copy.write(prefix + ("\n" + prefix).join(lines[start : start + 1000]) + "\n")


def reporters_today(rng: Random, everyone: list[Reporter], size: int) -> list[tuple[Reporter, int]]:
    """Who reports today, and how many of the day's ``size`` records each: Zipf by rank, with some noise."""
    present = [r for r in everyone if r.every_day or rng.random() < SMALL_PRESENCE]
    ranks = [everyone.index(r) + 1 for r in present]
    counts = split(size, [rng.lognormvariate(0, 0.15) / rank**REPORTER_ZIPF for rank in ranks])
    return list(zip(present, counts, strict=True))


def day_reports(
    rng: Random, domain, day: date, sent: list[tuple[Reporter, int]], pools: list[Pool], pool_weights: list[float]
) -> tuple[list, list[list[str]]]:
    """The reports ``sent`` for ``domain`` (a Domain) on ``day``, unsaved, and their records' COPY lines."""
    from reports.models import Report

    begin = datetime.combine(day, datetime.min.time(), UTC)
    end = begin + timedelta(seconds=86399)
    reports, bodies = [], []
    for reporter, count in sent:
        if count == 0:
            continue
        lines, messages, passed = report_lines(rng, count, pools, pool_weights)
        rid = report_id(rng, reporter, begin)
        rfc9990 = reporter.format == "rfc9990"
        reports.append(
            Report(
                domain=domain,
                fingerprint=fingerprint(reporter, rid, begin, end, domain.name),
                format=reporter.format,
                version="" if rfc9990 else "1.0",
                org_name=reporter.org_name,
                email=reporter.email,
                report_id=rid,
                begin=begin,
                end=end,
                policy_domain=domain.name,
                p="quarantine",
                sp="reject",
                np="reject" if rfc9990 else "",
                pct=None if rfc9990 else 100,
                testing="n" if rfc9990 else "",
                adkim="r",
                aspf="r",
                fo="1",
                discovery_method="treewalk" if rfc9990 else "",
                authenticity=reporter.authenticity,
                record_count=count,
                message_count=messages,
                pass_count=passed,
                sources_registered=True,
            )
        )
        bodies.append(lines)
    return reports, bodies


def store_day(reports: list, bodies: list[list[str]], new_ips: list[SourceRow], day: date, phases: Counter) -> None:
    """Store a day as ingest would: reports, records, rollups (reports.intake.rollups.add_report, what ingest
    runs), the new IPs; in one transaction. Adds the seconds spent to ``phases``."""
    from django.db import transaction

    from reports.intake import rollups
    from reports.models import Report

    with transaction.atomic():
        tick = time.perf_counter()
        Report.objects.bulk_create(reports)
        copy_records(reports, bodies)
        phases["copy"] += time.perf_counter() - tick
        tick = time.perf_counter()
        for report in reports:
            rollups.add_report(report)
        phases["rollup"] += time.perf_counter() - tick
        tick = time.perf_counter()
        register_ips(new_ips, datetime.combine(day, datetime.min.time(), UTC))
        phases["source IPs"] += time.perf_counter() - tick


def progress(number: int, days: int, day: date, done: int, records: int, started: float) -> None:
    if (number + 1) % max(1, days // 20) == 0 or number + 1 == days:
        elapsed = time.perf_counter() - started
        print(
            f"  day {number + 1}/{days} {day}: {done:,} records, {done / elapsed:,.0f} records/s, "
            f"{elapsed:.0f} s, about {elapsed / done * (records - done):.0f} s to go, "
            f"peak RSS {peak_rss_mb():.0f} MB",
            file=sys.stderr,
            flush=True,
        )


def finish_build(started: float, phases: Counter) -> float:
    """VACUUM ANALYZE, print where the time went; return the seconds the build took."""
    from django.db import connection

    tick = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    phases["vacuum analyze"] += time.perf_counter() - tick
    seconds = time.perf_counter() - started
    spent = ", ".join(f"{name} {value:.0f} s" for name, value in phases.items())
    print(f"built in {seconds:.0f} s ({spent}); peak RSS {peak_rss_mb():.0f} MB")
    return seconds


def build(records: int, days: int) -> float:
    """Generate and store the data set; return the seconds it took."""
    from django.db import connection

    started = time.perf_counter()
    phases = Counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")  # 365 commits; a crash only costs a rebuild
    domain, fixed, rows = setup_tenancy()
    today = datetime.now(UTC).date()
    dates = [today - timedelta(days=days - 1 - number) for number in range(days)]
    register_ips(rows, datetime.combine(dates[0], datetime.min.time(), UTC))
    rng = Random(SEED + 1)
    sizes = day_sizes(rng, records, dates)
    everyone = reporters()
    done = 0
    for number, (day, size) in enumerate(zip(dates, sizes, strict=True)):
        tick = time.perf_counter()
        # 1. Who reports today, and how many records each.
        sent = reporters_today(rng, everyone, size)
        # 2. Today's spoofers, and each category's share of the records.
        share = min(0.3, SPOOFER_SHARE * rng.lognormvariate(0, 0.6))
        today_spoofers = spoofers(rng, max(1, round(size * share / 1.6)))
        pools = [*fixed, make_pool("spoofers", share, [row.ip for row in today_spoofers], None, 2.0, 200)]
        pool_weights = cumulative([pool.share * (1 - share) for pool in fixed] + [share])
        # 3. The reports and their records, in memory for one day only.
        reports, bodies = day_reports(rng, domain, day, sent, pools, pool_weights)
        phases["generate"] += time.perf_counter() - tick
        # 4. Stored as ingest would; one transaction a day.
        store_day(reports, bodies, today_spoofers, day, phases)
        done += size
        progress(number, days, day, done, records, started)
    return finish_build(started, phases)


# The database ------------------------------------------------------------------------------------------

MARKER = "bench_dataset"  # the bench's own table: what was built, and whether it finished


def dataset_state(url: str) -> tuple[str, dict | None]:
    """'absent', 'empty' (no reports), 'ours' (made by this bench) with its marker row, or 'foreign'."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return "absent", None
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("select to_regclass(%s)", (MARKER,)).fetchone()[0]:
            row = conn.execute(f"select records, days, seconds, built_at, complete from {MARKER}").fetchone()  # noqa: S608
            keys = ("records", "days", "seconds", "built_at", "complete")
            return "ours", dict(zip(keys, row, strict=True)) if row else None
        if not conn.execute("select to_regclass('reports_report')").fetchone()[0]:
            return "empty", None
        if not conn.execute("select exists(select 1 from reports_report)").fetchone()[0]:
            return "empty", None
    return "foreign", None


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'drop database "{name}"')


def prepare(records: int, days: int, rebuild: bool, build=build) -> None:
    """Make sure the database holds a finished data set of this size, made by ``build``: keep it,
    build it, or refuse."""
    import django
    from django.core.management import call_command

    url = os.environ["DATABASE_URL"]
    if not url.startswith("postgres"):
        raise SystemExit("this bench needs PostgreSQL (it COPYs): set DATABASE_URL to a postgres:// URL")
    state, marker = dataset_state(url)
    if state == "foreign":
        raise SystemExit(f"{url} holds reports this bench did not make; set DATABASE_URL to another database")
    finished = marker is not None and marker["complete"]
    same = finished and (marker["records"], marker["days"]) == (records, days)
    if finished and not same and not rebuild:
        raise SystemExit(
            f"{url} holds {marker['records']:,} records over {marker['days']} days: pass --rebuild to replace "
            "them, or set DATABASE_URL to another database"
        )
    if same and not rebuild:
        django.setup()
        call_command("migrate", verbosity=0)  # the views' own migrations (indexes) apply to the kept data
        print(
            f"data set kept: {records:,} records over {days} days, built {marker['built_at']:%Y-%m-%d %H:%M} UTC "
            f"in {marker['seconds']:.0f} s (--rebuild to build it again)"
        )
        return
    if state == "ours":
        drop_database(url)  # also an unfinished build: its days cannot be told apart from a finished one's
    create_database(url)
    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"create table {MARKER} (records bigint, days integer, seconds double precision, "
            "built_at timestamptz, complete boolean)"
        )
        cursor.execute(f"insert into {MARKER} values (%s, %s, null, now(), false)", [records, days])  # noqa: S608
    print(f"building {records:,} records over {days} days in {url.rsplit('/', 1)[1]} ...", file=sys.stderr)
    seconds = build(records, days)
    with connection.cursor() as cursor:
        cursor.execute(f"update {MARKER} set seconds = %s, complete = true", [seconds])  # noqa: S608


def describe() -> None:
    """The shape and size of the data set."""
    from django.db import connection
    from django.db.models import Count, Max, Min, Sum

    from reports.models import (
        DailyDkim,
        DailySource,
        DailyTotal,
        Domain,
        Record,
        Report,
        Sender,
        SourceIP,
        SourceWindow,
    )

    domain = Domain.objects.get(name=DOMAIN)
    today = datetime.now(UTC).date()
    reports = Report.objects.filter(domain=domain)
    totals = reports.aggregate(
        reports=Count("id"),
        records=Sum("record_count"),
        messages=Sum("message_count"),
        passed=Sum("pass_count"),
        first=Min("begin"),
        last=Max("begin"),
    )
    reporters = reports.values("org_name").distinct().count()
    days = reports.values("begin").distinct().count()
    largest = reports.order_by("-record_count").values_list("org_name", "record_count").first()
    print(
        f"records {totals['records']:,} in {totals['reports']:,} reports from {reporters} reporters "
        f"({totals['reports'] / days:.1f} reports a day over {days} days, {totals['first']:%Y-%m-%d} to "
        f"{totals['last']:%Y-%m-%d}; largest {largest[1]:,} records from "
        f"{largest[0]}); {totals['messages']:,} messages, {totals['passed'] / totals['messages']:.1%} passing DMARC"
    )
    per_day = sorted(
        DailySource.objects.filter(domain=domain)
        .values("day")
        .annotate(ips=Count("source_ip", distinct=True))
        .values_list("ips", flat=True)
    )
    # Distinct IPs over 30/90/365 days are the source windows' row counts, printed below: counting
    # them here with DISTINCT took minutes in some runs (a hash aggregate planned for 13k groups).
    print(
        f"distinct source IPs: a day {per_day[0]:,} to {per_day[-1]:,} (median {statistics.median(per_day):,.0f}); "
        f"SourceIP rows {SourceIP.objects.count():,}, senders {Sender.objects.count()}"
    )
    print(f"{'rollup rows':<14}" + "".join(f"{f'{window} days':>12}" for window in WINDOWS))
    for model in (DailyTotal, DailySource, DailyDkim):
        counts = [
            model.objects.filter(domain=domain, day__gte=today - timedelta(days=window - 1)).count()
            for window in WINDOWS
        ]
        print(f"{model.__name__:<14}" + "".join(f"{count:>12,}" for count in counts))
    models = (Record, Report, DailyTotal, DailySource, DailyDkim, SourceWindow, SourceIP)
    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        cursor.execute("select pg_database_size(current_database())")
        (size,) = cursor.fetchone()
        sizes = [f"{table} {mb(sum(table_size(cursor, table)))}" for table in tables]
    per_million = size / (totals["records"] / 1e6)
    print(f"database {mb(size)}, {mb(per_million)} per million records; with indexes: {', '.join(sizes)}")


def mb(size: float) -> str:
    return f"{size / 2**30:.2f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


# The timings -------------------------------------------------------------------------------------------


def fetch(client, url: str) -> tuple[int, float]:
    """One request, the body read to the end (a streamed CSV too); its status and milliseconds."""
    started = time.perf_counter()
    response = client.get(url)
    if response.streaming:
        b"".join(response.streaming_content)
    else:
        response.content  # noqa: B018 (read, as a server would before sending it)
    return response.status_code, (time.perf_counter() - started) * 1000


def p95(times: list[float]) -> float:
    """Nearest-rank 95th percentile: with 15 requests, the slowest."""
    ordered = sorted(times)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def refresh_windows() -> None:
    """Bring the per-source sums of the preset periods up to date, as beat does every 10 minutes in
    production: the timings are of the steady state, not of the minutes after an ingest."""
    from reports.dashboard import windows
    from reports.models import SourceWindow

    started = time.perf_counter()
    refreshed = windows.refresh_stale()
    seconds = time.perf_counter() - started
    rows = ", ".join(f"{days} days {SourceWindow.objects.filter(days=days).count():,}" for days in windows.PRESETS)
    print(f"source windows: {refreshed} domain(s) refreshed in {seconds:.1f} s (windows.refresh_stale); rows {rows}")


def time_pages(repeat: int, domain_name: str = DOMAIN, username: str = "bench") -> list[float]:
    """Time every page of ``domain_name`` as ``username``; return every timed request's milliseconds."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count, Sum
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import NoReverseMatch, reverse

    from reports.models import DailySource, Domain, Report, Sender, SourceIP

    domain = Domain.objects.get(name=domain_name)
    since = datetime.now(UTC).date() - timedelta(days=89)
    busiest = (
        DailySource.objects.filter(domain=domain, day__gte=since)
        .values("source_ip")
        .annotate(messages=Sum("messages"))
        .order_by("-messages")
        .first()
    )
    ip = busiest["source_ip"]
    sender = SourceIP.objects.get(ip=ip).sender_id or Sender.objects.get(organization=None, slug="google").pk
    report = Report.objects.filter(domain=domain).order_by("-record_count").first()
    reporter = (Report.objects.filter(domain=domain).values("org_name").annotate(n=Count("id")).order_by("-n").first())[
        "org_name"
    ]
    print(
        f"\n{domain.name}: busiest IP {ip} (sender {sender}), largest report {report.pk} "
        f"({report.record_count:,} records)"
    )

    host = next((h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")), "localhost")
    client = Client(HTTP_HOST=host, raise_request_exception=False)  # a failing page is logged, the rest timed
    client.force_login(get_user_model().objects.get(username=username))
    # "first ms" is the first request of a page (the warm-up): nothing of it cached yet, so the
    # page as computed after its domain's data changed. The median and p95 are of the requests after it.
    print(
        f"{'page':<70} {'first ms':>8} {'median ms':>9} {'p95 ms':>8} {'max ms':>8} {'queries':>7} {'sql ms':>7}"
        "  target"
    )
    met = missing = failed = timed = 0
    every = []
    for name, args, query in pages(domain.name, ip, sender, report.pk, reporter):
        try:
            url = reverse(name, args=args) + (f"?{query}" if query else "")
        except NoReverseMatch:
            print(f"page not available: {name}")
            missing += 1
            continue
        status, first = fetch(client, url)  # the warm-up: caches filled, the plans and pages read
        if status != 200:
            print(f"{url:<70} HTTP {status}")
            failed += 1
            continue
        times = []
        for _ in range(repeat):
            status, ms = fetch(client, url)
            times.append(ms)
        every += times
        with CaptureQueriesContext(connection) as queries:
            fetch(client, url)  # one more, untimed: its queries say where the time goes
        captured = queries.captured_queries  # now: the next request clears the log they are read from
        sql_ms = sum(float(query["time"]) for query in captured) * 1000
        median, slow = statistics.median(times), p95(times)
        ok = median < TARGET_MEDIAN_MS and slow < TARGET_P95_MS
        met += ok
        timed += 1
        figures = f"{first:>8.0f} {median:>9.0f} {slow:>8.0f} {max(times):>8.0f} {len(captured):>7} {sql_ms:>7.0f}"
        print(f"{url:<70} {figures}  {'yes' if ok else 'NO'}")
        if not ok and captured:
            slowest = max(captured, key=lambda query: float(query["time"]))
            sql = " ".join(slowest["sql"].split())
            print(f"    its slowest query {float(slowest['time']) * 1000:.0f} ms: {sql[:300]}")
    print(
        f"summary: {met} of {timed} pages timed met the target (median < {TARGET_MEDIAN_MS} ms, "
        f"p95 < {TARGET_P95_MS} ms over {repeat} requests); {missing} not available, {failed} failed"
    )
    return every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="records in the data set")
    parser.add_argument("--days", type=int, default=365, help="UTC days, ending today")
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per page (0: no timings)")
    parser.add_argument("--rebuild", action="store_true", help="build the data set again even if it exists")
    args = parser.parse_args()
    if args.records < args.days:
        raise SystemExit("--records must be at least --days")
    prepare(args.records, args.days, args.rebuild)
    describe()
    if args.repeat > 0:
        refresh_windows()
        time_pages(args.repeat)


if __name__ == "__main__":
    main()

"""A demo data set: 90 days of aggregate reports for two demo domains, through the real ingest path.

``python manage.py demo`` calls ``load_demo``:

1. The "Demo" organization, its two domains and their own mail servers are created first,
   so the reports are claimed (and rolled up) as they arrive.
2. For every (reporter, domain, day) one aggregate report is built from that day's mail
   (``day_flows``), packed the way that reporter packs it (zip, gzip or plain XML) and
   handed to ``ingest_bytes``. The unique fingerprint makes a second run store nothing.
3. The source IPs are registered and looked up by the real enrichment code, with the DNS
   answers coming from an in-memory zone (``DemoResolver``). Every demo address is in a
   documentation range (RFC 5737, RFC 3849), so no real DNS knows them.
4. The domains' sender inventories authorise their legitimate senders.

Everything derives from random generators seeded with the domain and the calendar date,
so the same date always gives the same reports, byte for byte.
"""

import gzip
import hashlib
import ipaddress
import random
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from io import BytesIO
from xml.sax.saxutils import escape

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from reports.enrichment import ip_lookup
from reports.intake import claims
from reports.intake.pipeline import ingest_bytes
from reports.lib import rdns
from reports.lib import resolver as dns_resolver
from reports.lib.names import organizational_domain
from reports.lib.parsing.aggregate import passes_dmarc
from reports.models import Domain, DomainSender, Intake, Membership, Organization, Sender, SourceIP

DAYS = 90
DKIM_BREAK_DAY = 45  # day of the window (0 = the oldest) from which the newsletter's DKIM signature fails
ORGANIZATION_NAME = "Demo"
ORGANIZATION_SLUG = "demo"
SHOP = "demo-shop.example"
NEWS = "demo-news.example"
DEMO_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# The demo zone is the only DNS that knows these addresses: a lookup in real DNS would erase
# their names, so after the demo's own lookup they are not due again for this long.
PINNED = timedelta(days=365)
ENRICH_ROUNDS = 3
# A batch of due IPs may hold other (real) ones too, looked up in real DNS: bound the wait for them.
ENRICH_SECONDS = 60.0

OWN = "own"
PROVIDER = "provider"
ESP = "esp"
FORWARDER = "forwarder"
LIST = "list"
SPOOF = "spoof"


class DemoError(Exception):
    """The demo cannot be loaded as asked (a demo domain belongs to someone else, no such user)."""


# --- who sends ---------------------------------------------------------------------------


def _ip(text: str) -> str:
    """The address as the report parser writes it (IPv6 through inet_ntop)."""
    if ":" in text:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    return text


@dataclass(frozen=True)
class Host:
    ip: str
    ptr: str = ""  # its PTR name in the demo zone; "" for none (NXDOMAIN)
    confirmed: bool = True  # the PTR name's A/AAAA record leads back to the IP

    def __post_init__(self):
        object.__setattr__(self, "ip", _ip(self.ip))


@dataclass(frozen=True)
class DemoSource:
    """A sending source of a demo domain: who, from which hosts, how much, and how its mail authenticates."""

    name: str
    kind: str  # OWN, PROVIDER, ESP, FORWARDER, LIST or SPOOF
    hosts: tuple[Host, ...]
    daily: int  # messages on an ordinary weekday, all reporters together
    envelope: str = ""  # the envelope_from domain; "" is the policy domain itself
    signatures: tuple[tuple[str, str], ...] = ()  # DKIM (domain, selector) it signs with
    weekend: float = 1.0  # volume on Saturdays and Sundays, relative to a weekday
    first_day: int = 0  # day of the window it starts sending on
    broken_from: int | None = None  # from this day its signature of the policy domain fails
    campaigns: tuple[tuple[int, int, float], ...] = ()  # (first day, days, volume factor)


def _google(first: int, count: int) -> tuple[Host, ...]:
    hosts = [Host(f"192.0.2.{first + n}", f"mail-sor-f{41 + n * 7}.google.com") for n in range(count)]
    hosts += [Host(f"2001:db8:4860:4::{0x1A + n:x}", f"mail-qk1-x{0x72A + n:x}.google.com") for n in range(2)]
    return tuple(hosts)


def _microsoft(first: int, count: int) -> tuple[Host, ...]:
    regions = ("eur05", "eur03", "nam11", "nam12")
    hosts = [
        Host(f"192.0.2.{first + n}", f"mail-{regions[n % 4]}on{2101 + n * 13}.outbound.protection.outlook.com")
        for n in range(count)
    ]
    hosts += [
        Host(f"2001:db8:111:f400::{0x7E1A + n:x}", f"mail-am6eur05on{2070 + n}.outbound.protection.outlook.com")
        for n in range(2)
    ]
    return tuple(hosts)


def _spoofers(seed: str, count: int) -> tuple[Host, ...]:
    """Hosts on random-looking networks: most without a name, some with one that does not lead
    back, some rented cloud servers (which the catalog names: a named sender is not an authorised one)."""
    rng = random.Random(seed)
    octets = rng.sample(range(2, 250), count)
    hosts = []
    for n, octet in enumerate(octets):
        if n % 4 == 3:
            a, b, c = rng.randrange(0x100, 0xFFFF), rng.randrange(0x100, 0xFFFF), rng.randrange(2, 0xFFFF)
            hosts.append(Host(f"2001:db8:{a:x}:{b:x}::{c:x}"))
            continue
        ip = f"203.0.113.{octet}"
        match n % 6:
            case 1:
                hosts.append(Host(ip, f"203-0-113-{octet}.dyn.cheap-broadband.example", confirmed=False))
            case 2:
                hosts.append(Host(ip, f"ec2-203-0-113-{octet}.compute-1.amazonaws.com"))
            case _:
                hosts.append(Host(ip))
    return tuple(hosts)


@dataclass(frozen=True)
class Policy:
    """The domain's DMARC record on one day, as reporters publish it back."""

    p: str
    pct: int = 100
    testing: bool = False  # t=y


def shop_policy(day: int) -> Policy:
    """demo-shop.example walks the staged plan: monitor, quarantine in testing, ramp, quarantine."""
    if day < 48:
        return Policy("none")
    if day < 62:
        return Policy("quarantine", pct=0, testing=True)
    if day < 76:
        return Policy("quarantine", pct=50)
    return Policy("quarantine")


def news_policy(day: int) -> Policy:
    """demo-news.example stays at p=none: its newsletter fails DKIM since mid-period."""
    return Policy("none")


@dataclass(frozen=True)
class DomainPlan:
    name: str
    policy: Callable[[int], Policy]  # by day of the window
    shares: dict[str, float]  # reporter key -> its share of the domain's recipients
    sources: tuple[DemoSource, ...]
    authorised: tuple[str, ...]  # catalog slugs of the services it uses (its own server is authorised too)


PLANS = (
    DomainPlan(
        SHOP,
        shop_policy,
        {"google": 0.5, "outlook": 0.22, "yahoo": 0.18, "mailru": 0.1},
        (
            DemoSource(
                "Own mail server (mail.demo-shop.example)",
                OWN,
                (
                    Host("192.0.2.10", "mail.demo-shop.example"),
                    Host("192.0.2.11", "mail2.demo-shop.example"),
                    Host("2001:db8:5e0:1::25", "mail.demo-shop.example"),
                ),
                daily=320,
                signatures=((SHOP, "mail2025"),),
                weekend=0.8,
            ),
            DemoSource(
                "Google Workspace", PROVIDER, _google(40, 8), daily=900, signatures=((SHOP, "google"),), weekend=0.3
            ),
            DemoSource(
                "Twilio SendGrid",
                ESP,
                tuple(Host(f"198.51.100.{20 + n}", f"o{n + 1}.ptr{4384 + n * 29}.sendgrid.net") for n in range(4)),
                daily=1400,
                envelope=f"em8271.{SHOP}",
                signatures=((SHOP, "s1"), ("sendgrid.info", "smtpapi")),
                campaigns=((4, 1, 3.0), (32, 1, 3.0), (67, 1, 3.0), (81, 2, 2.5)),
            ),
            DemoSource(
                "Northfield University alumni forwarding",
                FORWARDER,
                (
                    Host("198.51.100.60", "mx1.alumni.northfield-university.example"),
                    Host("198.51.100.61", "mx2.alumni.northfield-university.example"),
                ),
                daily=45,
                signatures=((SHOP, "s1"), (SHOP, "google")),
            ),
            DemoSource(
                "Spoofing",
                SPOOF,
                _spoofers("spoof|" + SHOP, 24),
                daily=40,
                first_day=12,
                campaigns=((20, 3, 6.0), (55, 3, 4.0), (80, 2, 5.0)),
            ),
        ),
        ("google", "sendgrid"),
    ),
    DomainPlan(
        NEWS,
        news_policy,
        {"google": 0.45, "outlook": 0.3, "yahoo": 0.17, "mailru": 0.08},
        (
            DemoSource(
                "Own mail server (smtp.demo-news.example)",
                OWN,
                (Host("192.0.2.20", "smtp.demo-news.example"), Host("2001:db8:20::25", "smtp.demo-news.example")),
                daily=150,
                signatures=((NEWS, "cms"),),
            ),
            DemoSource(
                "Microsoft 365",
                PROVIDER,
                _microsoft(100, 8),
                daily=700,
                signatures=((NEWS, "selector1"),),
                weekend=0.25,
            ),
            DemoSource(
                "Intuit Mailchimp (newsletter)",
                ESP,
                tuple(Host(f"198.51.100.{80 + n}", f"mail{180 + n * 3}.atl{221 + n // 3}.mcdlv.net") for n in range(6)),
                daily=3200,
                envelope="",  # the host's own bounce domain: SPF passes, not aligned
                signatures=((NEWS, "k2"), ("mcsv.net", "k1")),
                weekend=0.6,
                broken_from=DKIM_BREAK_DAY,
            ),
            DemoSource(
                "Open Press mailing list",
                LIST,
                (Host("198.51.100.70", "lists.openpress.example"),),
                daily=30,
                envelope="lists.openpress.example",
                signatures=((NEWS, "selector1"), ("lists.openpress.example", "mm1")),
                weekend=0.5,
            ),
            DemoSource(
                "Spoofing",
                SPOOF,
                _spoofers("spoof|" + NEWS, 16),
                daily=25,
                first_day=30,
                campaigns=((66, 4, 5.0),),
            ),
        ),
        ("microsoft", "mailchimp"),
    ),
)

SPAM_DOMAINS = ("secure-account-verify.example", "invoice-notice.example")


def all_hosts() -> dict[str, Host]:
    """Every demo host by IP."""
    return {host.ip: host for plan in PLANS for source in plan.sources for host in source.hosts}


def sources_by_ip(domain: str) -> dict[str, DemoSource]:
    """The demo source each IP of ``domain`` belongs to."""
    plan = next(plan for plan in PLANS if plan.name == domain)
    return {host.ip: source for source in plan.sources for host in source.hosts}


# --- what they send on one day -------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """``count`` messages from one IP that authenticated alike (before the receivers split them)."""

    ip: str
    count: int
    header_from: str
    envelope_from: str
    dkim: tuple[tuple[str, str, str], ...]  # (domain, selector, result) of each signature
    spf: str  # the SPF result for envelope_from
    override: str = ""  # "forwarded" or "mailing_list": a receiver may accept it despite a DMARC fail


@cache
def aligned(domain: str, header_from: str) -> bool:
    """Relaxed alignment: the same organizational domain."""
    return organizational_domain(domain) == organizational_domain(header_from)


def passes(flow: Flow) -> tuple[str, str]:
    """The aligned DKIM and SPF results a receiver evaluates (policy_evaluated)."""
    dkim = any(result == "pass" and aligned(d, flow.header_from) for d, _, result in flow.dkim)
    spf = flow.spf == "pass" and aligned(flow.envelope_from, flow.header_from)
    return ("pass" if dkim else "fail"), ("pass" if spf else "fail")


def _volume(source: DemoSource, day: int, weekday: int, rng: random.Random) -> int:
    factor = source.weekend if weekday >= 5 else 1.0
    for first, length, boost in source.campaigns:
        if first <= day < first + length:
            factor *= boost
    return round(source.daily * factor * rng.uniform(0.85, 1.15))


def _spread(total: int, hosts: tuple[Host, ...], rng: random.Random, least: int) -> list[tuple[Host, int]]:
    """``total`` messages over a random subset of at least ``least`` hosts, in random proportions."""
    chosen = rng.sample(hosts, rng.randint(min(least, len(hosts)), len(hosts)))
    weights = [rng.uniform(0.3, 1.0) for _ in chosen]
    scale = total / sum(weights)
    return [(host, round(weight * scale)) for host, weight in zip(chosen, weights, strict=True)]


def _part(count: int, share: float, rng: random.Random) -> int:
    """About ``share`` of ``count``, with the noise of a real split."""
    spread = (count * share * (1 - share)) ** 0.5
    return max(0, min(count, round(count * share + rng.gauss(0, spread))))


def day_flows(plan: DomainPlan, day: int, when: date) -> list[Flow]:
    """What every source of ``plan`` sent on ``when`` (day ``day`` of the window), all reporters together."""
    rng = random.Random(f"flows|{plan.name}|{when.isoformat()}")
    domain = plan.name
    flows: list[Flow] = []
    for source in plan.sources:
        if day < source.first_day:
            continue
        total = _volume(source, day, when.weekday(), rng)
        if source.kind == SPOOF:
            flows.extend(_spoof_flows(source, domain, total, rng))
            continue
        for host, count in _spread(total, source.hosts, rng, least=max(1, len(source.hosts) * 2 // 3)):
            envelope = source.envelope or (host.ptr if source.kind == ESP else domain)
            if source.kind in (OWN, PROVIDER, ESP):
                broken = source.broken_from is not None and day >= source.broken_from
                signed = tuple((d, s, "fail" if broken and d == domain else "pass") for d, s in source.signatures)
                flows.append(Flow(host.ip, count, domain, envelope, signed, "pass"))
            elif source.kind == FORWARDER:
                # Plain forwarding: the university's IP is not in the shop's SPF record (softfail),
                # the signature survives, except when the forwarder adds a footer.
                d, s = rng.choice(source.signatures)
                changed = _part(count, 0.12, rng)
                flows.append(Flow(host.ip, count - changed, domain, domain, ((d, s, "pass"),), "softfail"))
                flows.append(Flow(host.ip, changed, domain, domain, ((d, s, "fail"),), "softfail", "forwarded"))
            elif source.kind == LIST:
                # The list adds a footer (the author's signature fails) and signs with its own domain.
                (author, author_selector), (list_domain, list_selector) = source.signatures
                intact = _part(count, 0.3, rng)
                own = (list_domain, list_selector, "pass")
                flows.append(Flow(host.ip, intact, domain, envelope, ((author, author_selector, "pass"), own), "pass"))
                flows.append(
                    Flow(
                        host.ip,
                        count - intact,
                        domain,
                        envelope,
                        ((author, author_selector, "fail"), own),
                        "pass",
                        "mailing_list",
                    )
                )
    return [flow for flow in flows if flow.count > 0]


def _spoof_flows(source: DemoSource, domain: str, total: int, rng: random.Random) -> list[Flow]:
    """Forged mail from a handful of the pool's hosts, each failing both checks its own way."""
    flows = []
    busy = total > source.daily * 2
    picked = rng.sample(source.hosts, rng.randint(4, 9) if busy else rng.randint(1, 4))
    for n, (host, count) in enumerate(_spread(total, tuple(picked), rng, least=len(picked))):
        header_from = domain if rng.random() < 0.85 else f"{rng.choice(('secure', 'billing', 'account'))}.{domain}"
        match int(hashlib.sha256(host.ip.encode()).hexdigest(), 16) % 3:
            case 0:  # no signature, the domain's own envelope: SPF fails
                flow = Flow(host.ip, count, header_from, domain, (), "fail")
            case 1:  # the spammer's own domain signs and passes SPF: nothing aligns
                spam = SPAM_DOMAINS[n % 2]
                flow = Flow(host.ip, count, header_from, spam, ((spam, "default", "pass"),), "pass")
            case _:  # a forged signature of the domain
                flow = Flow(host.ip, count, header_from, domain, ((domain, "google", "fail"),), "softfail")
        flows.append(flow)
    return flows


# --- who reports it, and how -----------------------------------------------------------------


@dataclass(frozen=True)
class Reporter:
    key: str
    org_name: str
    email: str
    contact: str
    receiver: str  # first part of the file name: receiver!policy-domain!begin!end
    packing: str  # "zip", "gzip" or "xml"
    envelope_from: bool = False  # whether its records carry identifiers/envelope_from
    rfc9990_from: int | None = None  # the day of the window it starts sending RFC 9990 reports
    skips: float = 0.0  # share of days it sends no report (it saw little mail from the domain)

    def report_id(self, domain: str, begin: int) -> str:
        digest = int(hashlib.sha256(f"{self.key}|{domain}|{begin}".encode()).hexdigest(), 16)
        match self.key:
            case "google":
                return str(10**19 + digest % (9 * 10**19))
            case "outlook":
                return f"{digest % 16**32:032x}"
            case "yahoo":
                return f"{begin}.{digest % 10**6:06d}"
            case _:
                return f"{digest % 10**17:017d}{begin}"

    def override(self, kind: str, rfc9990: bool) -> tuple[str, str] | None:
        """The reason this receiver gives for accepting forwarded or list mail that failed; None when
        it applies the policy anyway."""
        if self.key == "mailru":
            return None
        if self.key == "outlook" or (rfc9990 and kind == "forwarded"):  # RFC 9990 has no "forwarded"
            return "local_policy", "arc=pass"
        return kind, ""


REPORTERS = (
    Reporter(
        "google",
        "google.com",
        "noreply-dmarc-support@google.com",
        "https://support.google.com/a/answer/2466580",
        "google.com",
        "zip",
    ),
    Reporter("outlook", "Outlook.com", "dmarcreport@microsoft.com", "", "protection.outlook.com", "gzip", True),
    Reporter("yahoo", "Yahoo", "dmarchelp@yahooinc.com", "", "yahoo.com", "gzip", rfc9990_from=60),
    Reporter(
        "mailru",
        "Mail.Ru",
        "dmarc_support@corp.mail.ru",
        "http://help.mail.ru/mail-help",
        "mail.ru",
        "xml",
        True,
        skips=0.12,
    ),
)


@dataclass(frozen=True)
class Row:
    """One <record> of a report."""

    flow: Flow
    count: int
    disposition: str
    dkim: str
    spf: str
    reasons: tuple[tuple[str, str], ...] = ()


def evaluate(
    reporter: Reporter, flow: Flow, count: int, policy: Policy, rfc9990: bool, rng: random.Random
) -> list[Row]:
    """How ``reporter`` evaluated ``count`` messages of ``flow`` under ``policy``: one row, or two
    when a legacy receiver sampled a pct below 100."""
    dkim, spf = passes(flow)
    if passes_dmarc(dkim, spf):
        return [Row(flow, count, "pass" if rfc9990 else "none", dkim, spf)]
    override = reporter.override(flow.override, rfc9990) if flow.override else None
    if override is not None:
        return [Row(flow, count, "none", dkim, spf, (override,))]
    if policy.p == "none":
        return [Row(flow, count, "none", dkim, spf)]
    if rfc9990:  # RFC 9989 receivers ignore pct and honour testing mode
        if policy.testing:
            return [Row(flow, count, "none", dkim, spf, (("policy_test_mode", ""),))]
        return [Row(flow, count, policy.p, dkim, spf)]
    applied = _part(count, policy.pct / 100, rng)
    rows = [Row(flow, applied, policy.p, dkim, spf)]
    rows.append(Row(flow, count - applied, "none", dkim, spf, (("sampled_out", ""),)))
    return [row for row in rows if row.count > 0]


def _record_xml(row: Row, reporter: Reporter, rfc9990: bool) -> str:
    flow = row.flow
    reasons = "".join(
        f"<reason><type>{kind}</type>{f'<comment>{escape(comment)}</comment>' if comment else ''}</reason>"
        for kind, comment in row.reasons
    )
    envelope = f"<envelope_from>{flow.envelope_from}</envelope_from>" if reporter.envelope_from or rfc9990 else ""
    signatures = "".join(
        f"<dkim><domain>{d}</domain><selector>{s}</selector><result>{r}</result></dkim>" for d, s, r in flow.dkim
    )
    scope = "<scope>mfrom</scope>" if reporter.key != "mailru" else ""
    return (
        f"<record><row><source_ip>{flow.ip}</source_ip><count>{row.count}</count><policy_evaluated>"
        f"<disposition>{row.disposition}</disposition><dkim>{row.dkim}</dkim><spf>{row.spf}</spf>{reasons}"
        f"</policy_evaluated></row><identifiers><header_from>{flow.header_from}</header_from>{envelope}"
        f"</identifiers><auth_results>{signatures}<spf><domain>{flow.envelope_from}</domain>{scope}"
        f"<result>{flow.spf}</result></spf></auth_results></record>"
    )


def report_xml(reporter: Reporter, domain: str, day: int, begin: int, rows: list[Row], policy: Policy) -> bytes:
    """One aggregate report document, legacy (RFC 7489) or RFC 9990 as ``reporter`` sends it on ``day``."""
    rfc9990 = reporter.rfc9990_from is not None and day >= reporter.rfc9990_from
    contact = f"<extra_contact_info>{escape(reporter.contact)}</extra_contact_info>" if reporter.contact else ""
    if rfc9990:
        root = '<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"><version>1.0</version>'
        generator = f"<generator>{reporter.receiver} DMARC reporter</generator>"
        published = (
            f"<domain>{domain}</domain><discovery_method>treewalk</discovery_method><p>{policy.p}</p>"
            f"<sp>{policy.p}</sp><adkim>r</adkim><aspf>r</aspf><testing>{'y' if policy.testing else 'n'}</testing>"
        )
    else:
        root = "<feedback><version>1.0</version>" if reporter.key == "google" else "<feedback>"
        generator = ""
        np = f"<np>{policy.p}</np>" if reporter.key == "google" else ""
        fo = "<fo>0</fo>" if reporter.key == "outlook" else ""
        published = (
            f"<domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>{policy.p}</p><sp>{policy.p}</sp>"
            f"<pct>{policy.pct}</pct>{np}{fo}"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{root}<report_metadata><org_name>{reporter.org_name}</org_name><email>{reporter.email}</email>{contact}"
        f"<report_id>{reporter.report_id(domain, begin)}</report_id>"
        f"<date_range><begin>{begin}</begin><end>{begin + 86399}</end></date_range>{generator}</report_metadata>"
        f"<policy_published>{published}</policy_published>"
        f"{''.join(_record_xml(row, reporter, rfc9990) for row in rows)}</feedback>\n"
    ).encode()


def pack(reporter: Reporter, domain: str, begin: int, document: bytes) -> tuple[str, bytes]:
    """The file name and bytes the reporter sends: zip, gzip or plain XML, with fixed timestamps so a
    report is the same bytes on every run."""
    stem = f"{reporter.receiver}!{domain}!{begin}!{begin + 86399}"
    if reporter.packing == "zip":
        out = BytesIO()
        member = zipfile.ZipInfo(f"{stem}.xml", datetime.fromtimestamp(begin + 86400, UTC).timetuple()[:6])
        member.compress_type = zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr(member, document)
        return f"{stem}.zip", out.getvalue()
    if reporter.packing == "gzip":
        return f"{stem}.xml.gz", gzip.compress(document, mtime=begin + 86400)
    return f"{stem}.xml", document


@dataclass(frozen=True)
class DemoReport:
    reporter: str
    domain: str
    day: int
    name: str
    data: bytes


def window(today: date) -> list[date]:
    """The DAYS whole UTC days before ``today``, oldest first."""
    return [today - timedelta(days=DAYS - n) for n in range(DAYS)]


def demo_reports(today: date) -> Iterator[DemoReport]:
    """Every report of the demo, one per (reporter, domain, day) that saw mail, oldest day first."""
    for day, when in enumerate(window(today)):
        begin = int(datetime(when.year, when.month, when.day, tzinfo=UTC).timestamp())
        for plan in PLANS:
            flows = day_flows(plan, day, when)
            policy = plan.policy(day)
            for reporter in REPORTERS:
                rng = random.Random(f"report|{reporter.key}|{plan.name}|{when.isoformat()}")
                if rng.random() < reporter.skips:
                    continue
                rfc9990 = reporter.rfc9990_from is not None and day >= reporter.rfc9990_from
                share = plan.shares[reporter.key]
                rows = []
                for flow in flows:
                    count = round(flow.count * share * rng.uniform(0.75, 1.25))
                    if count > 0:
                        rows.extend(evaluate(reporter, flow, count, policy, rfc9990, rng))
                if rows:
                    document = report_xml(reporter, plan.name, day, begin, rows, policy)
                    name, data = pack(reporter, plan.name, begin, document)
                    yield DemoReport(reporter.key, plan.name, day, name, data)


# --- DNS for the demo addresses ---------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    rrset: dns.rrset.RRset | None


class DemoResolver:
    """Answers PTR queries for the demo addresses and A/AAAA queries for their names from the demo
    zone, the way ``rdns.reverse_lookup`` calls a dnspython resolver; anything else goes to ``fallback``
    (the resolver enrichment uses otherwise), so other IPs looked up in the same batch are unaffected."""

    def __init__(self, demo_hosts: dict[str, Host], fallback=None):
        self.fallback = fallback
        self.lifetime = getattr(fallback, "lifetime", rdns.DNS_TIMEOUT)
        self.ptrs = {ip: host.ptr for ip, host in demo_hosts.items() if host.ptr}
        self.forward: dict[str, list[str]] = {}
        for host in demo_hosts.values():
            if host.ptr and host.confirmed:
                self.forward.setdefault(host.ptr, []).append(host.ip)

    def resolve(self, qname, rdtype=dns.rdatatype.A, *args, raise_on_no_answer: bool = True, **kwargs):
        name = dns.name.from_text(qname) if isinstance(qname, str) else qname
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        text = name.to_text(omit_final_dot=True).lower()
        if rdtype == dns.rdatatype.PTR and self._demo_address(name):
            ptr = self.ptrs.get(_ip(dns.reversename.to_address(name)))
            if ptr is None:
                raise dns.resolver.NXDOMAIN(qnames=[name], responses={})
            return _Answer(dns.rrset.from_text_list(name, 300, "IN", "PTR", [ptr + "."]))
        if text in self.forward or text.endswith(".example"):  # .example names exist nowhere else (RFC 2606)
            if text not in self.forward:
                raise dns.resolver.NXDOMAIN(qnames=[name], responses={})
            version = 4 if rdtype == dns.rdatatype.A else 6
            found = [ip for ip in self.forward[text] if ipaddress.ip_address(ip).version == version]
            if rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA) or not found:
                if raise_on_no_answer:
                    raise dns.resolver.NoAnswer
                return _Answer(None)
            return _Answer(dns.rrset.from_text_list(name, 300, "IN", rdtype, found))
        if self.fallback is None:
            raise dns.resolver.NoNameservers
        return self.fallback.resolve(qname, rdtype, *args, raise_on_no_answer=raise_on_no_answer, **kwargs)

    @staticmethod
    def _demo_address(name: dns.name.Name) -> bool:
        try:
            address = ipaddress.ip_address(dns.reversename.to_address(name))
        except (dns.exception.DNSException, ValueError):
            return False
        return any(address in network for network in DEMO_NETWORKS)


# --- loading -------------------------------------------------------------------------------


@dataclass
class DemoSummary:
    organization: Organization
    domains: list[str]
    owner: str  # username of the owner added, "" when none was
    first_day: date
    last_day: date
    reports: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    records: int = 0  # of the whole demo data set (stored now or before)
    messages: int = 0
    refusals: list[str] = field(default_factory=list)
    source_ips: int = 0
    named_ips: int = 0
    senders: list[str] = field(default_factory=list)
    seconds: float = 0.0


def pick_owner(username: str | None) -> AbstractBaseUser | None:
    """The user to make owner: the one named, else the only superuser (None when there is not exactly one)."""
    users = get_user_model().objects
    if username:
        try:
            return users.get(username=username)
        except users.model.DoesNotExist:
            raise DemoError(f"there is no user {username!r} (create it first, e.g. manage.py createsuperuser)")
    superusers = list(users.filter(is_superuser=True)[:2])
    return superusers[0] if len(superusers) == 1 else None


def _own_sender(organization: Organization, plan: DomainPlan) -> Sender:
    own = next(source for source in plan.sources if source.kind == OWN)
    sender, _ = Sender.objects.update_or_create(
        organization=organization,
        slug=plan.name.replace(".", "-") + "-mail",
        defaults={
            "name": own.name,
            "ptr_domains": [plan.name],
            "networks": [str(ipaddress.ip_network(host.ip)) for host in own.hosts],
        },
    )
    return sender


def set_up(owner: AbstractBaseUser | None = None) -> tuple[Organization, dict[str, Sender]]:
    """The Demo organization with its domains and their own mail servers, and ``owner`` as its owner."""
    with transaction.atomic():
        organization, _ = Organization.objects.get_or_create(
            slug=ORGANIZATION_SLUG, defaults={"name": ORGANIZATION_NAME}
        )
        own = {}
        for plan in PLANS:
            domain, created = Domain.objects.get_or_create(name=plan.name, defaults={"organization": organization})
            if domain.organization_id != organization.pk:
                raise DemoError(f"{plan.name} belongs to the organization {domain.organization}, not to the demo")
            if created:
                claims.claim_reports(domain)
            own[plan.name] = _own_sender(organization, plan)
        if owner is not None:
            Membership.objects.update_or_create(
                user=owner, organization=organization, defaults={"role": Membership.Role.OWNER}
            )
    return organization, own


def enrich(demo_hosts: dict[str, Host]) -> None:
    """Look up the demo IPs with the real enrichment code, answered by the demo zone.

    A background poller may have looked them up in real DNS already (where documentation
    addresses have no names), or do so while this runs: rows whose answer differs from the
    zone's are made due and looked up again, for a few rounds.
    """
    resolver = DemoResolver(demo_hosts, fallback=dns_resolver.make())
    expected = {ip: rdns.reverse_lookup(ip, resolver) for ip in demo_hosts}
    ips = list(expected)
    with dns_resolver.using(lambda: resolver):
        ip_lookup.register_new_ips()
        for _ in range(ENRICH_ROUNDS):
            rows = SourceIP.objects.filter(ip__in=ips).values_list("ip", "ptr", "forward_confirmed", "rdns_status")
            stale = [
                ip
                for ip, ptr, confirmed, status in rows
                if (ptr, confirmed, status) != (expected[ip].ptr, expected[ip].confirmed, expected[ip].status)
            ]
            if not stale:
                break
            SourceIP.objects.filter(ip__in=stale).update(expires_at=None)
            while SourceIP.objects.filter(ip_lookup.due(), ip__in=stale).exists():
                if not ip_lookup.enrich_due(seconds=ENRICH_SECONDS).looked_up:
                    break
    SourceIP.objects.filter(ip__in=ips).update(expires_at=timezone.now() + PINNED)


def authorise(own: dict[str, Sender]) -> None:
    """Each demo domain's inventory: its own server and the services it uses are authorised."""
    catalog = ip_lookup.sync_catalog()
    for plan in PLANS:
        domain = Domain.objects.get(name=plan.name)
        for sender in (own[plan.name], *(catalog[slug] for slug in plan.authorised)):
            DomainSender.objects.get_or_create(domain=domain, sender=sender, defaults={"authorised": True})


def ingest_demo(reports: Iterator[DemoReport], organization: Organization) -> tuple[int, int, list[str]]:
    """Ingest demo reports of another kind (TLS, failure) for ``organization``: (stored, duplicates, refusals)."""
    stored = duplicates = 0
    refusals = []
    for report in reports:
        result = ingest_bytes(report.data, source=Intake.Channel.CLI, name=report.name, organization=organization)
        for outcome in result.outcomes:
            if outcome.status == "stored":
                stored += 1
            elif outcome.status == "duplicate":
                duplicates += 1
            else:
                refusals.append(f"{outcome.name}: {outcome.reason}")
    return stored, duplicates, refusals


def utc_today() -> date:
    return timezone.now().astimezone(UTC).date()


def load_demo(owner: AbstractBaseUser | None = None, today: date | None = None) -> DemoSummary:
    """Create the Demo organization, ingest the demo reports, look up their IPs; say what happened.

    The reports cover the DAYS whole UTC days before ``today`` (default: today in UTC).
    """
    started = time.monotonic()
    today = today or utc_today()
    days = window(today)
    organization, own = set_up(owner)
    username = owner.get_username() if owner else ""
    summary = DemoSummary(organization, [plan.name for plan in PLANS], username, days[0], days[-1])
    for report in demo_reports(today):
        result = ingest_bytes(report.data, source=Intake.Channel.CLI, name=report.name, organization=organization)
        for outcome in result.outcomes:
            summary.reports += 1
            if outcome.status == "stored":
                summary.stored += 1
            elif outcome.status == "duplicate":
                summary.duplicates += 1
            else:
                summary.refused += 1
                summary.refusals.append(f"{outcome.name}: {outcome.reason}")
                continue
            summary.records += outcome.records
            summary.messages += outcome.messages
    demo_hosts = all_hosts()
    enrich(demo_hosts)
    authorise(own)
    named = SourceIP.objects.filter(ip__in=list(demo_hosts), sender__isnull=False)
    summary.source_ips = SourceIP.objects.filter(ip__in=list(demo_hosts)).count()
    summary.named_ips = named.count()
    summary.senders = sorted(set(named.values_list("sender__name", flat=True)))
    summary.seconds = time.monotonic() - started
    return summary

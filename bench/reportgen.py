"""Generate realistic DMARC aggregate reports of any size, streamed to a file.

Records mix IPv4 and IPv6 sources, aligned and unaligned DKIM/SPF, several
DKIM signatures per record, override reasons and both report formats.
"""

import gzip
import random
from typing import BinaryIO

SENDERS = ["sendgrid.net", "amazonses.com", "mailgun.org", "google.com", "outlook.com", "mcsv.net"]


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
    first = rng.choice((192, 198, 203, 45, 52, 74))
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _record(rng: random.Random, domain: str) -> str:
    dkim_ok = rng.random() < 0.8
    spf_ok = rng.random() < 0.7
    sender = rng.choice(SENDERS)
    disposition = "none" if (dkim_ok or spf_ok) else rng.choice(("none", "quarantine", "reject"))
    reason = ""
    if not (dkim_ok or spf_ok) and rng.random() < 0.3:
        reason = "<reason><type>forwarded</type><comment>looks forwarded</comment></reason>"
    dkims = [
        f"<dkim><domain>{domain if dkim_ok else sender}</domain><selector>s{rng.randrange(4)}</selector>"
        f"<result>{'pass' if dkim_ok else 'fail'}</result></dkim>"
    ]
    for _ in range(rng.randrange(3)):
        dkims.append(f"<dkim><domain>{sender}</domain><selector>k1</selector><result>pass</result></dkim>")
    return (
        f"<record><row><source_ip>{_ip(rng)}</source_ip><count>{rng.randrange(1, 500)}</count>"
        f"<policy_evaluated><disposition>{disposition}</disposition><dkim>{'pass' if dkim_ok else 'fail'}</dkim>"
        f"<spf>{'pass' if spf_ok else 'fail'}</spf>{reason}</policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from><envelope_from>bounce.{sender}</envelope_from></identifiers>"
        f"<auth_results>{''.join(dkims)}<spf><domain>{domain if spf_ok else sender}</domain><scope>mfrom</scope>"
        f"<result>{'pass' if spf_ok else 'softfail'}</result></spf></auth_results></record>\n"
    )


def write_report(
    out: BinaryIO,
    records: int,
    *,
    domain: str = "example.com",
    report_id: str = "bench-1",
    org_name: str = "bench.example",
    begin: int = 1_700_000_000,
    seed: int = 1,
    rfc9990: bool = False,
) -> None:
    rng = random.Random(seed)
    ns = ' xmlns="urn:ietf:params:xml:ns:dmarc-2.0"' if rfc9990 else ""
    out.write(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<feedback{ns}><version>1.0</version><report_metadata>'
        f"<org_name>{org_name}</org_name><email>noreply-dmarc@{org_name}</email><report_id>{report_id}</report_id>"
        f"<date_range><begin>{begin}</begin><end>{begin + 86399}</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp>"
        f"<pct>100</pct><fo>0</fo></policy_published>\n".encode()
    )
    batch = []
    for _ in range(records):
        batch.append(_record(rng, domain))
        if len(batch) == 1000:
            out.write("".join(batch).encode())
            batch = []
    out.write(("".join(batch) + "</feedback>\n").encode())


def write_report_file(path: str, records: int, **kwargs) -> None:
    if path.endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=6) as out:
            write_report(out, records, **kwargs)
    else:
        with open(path, "wb") as out:
            write_report(out, records, **kwargs)

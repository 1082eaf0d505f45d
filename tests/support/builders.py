"""Small report, archive and email builders: the project's own fixtures."""

import gzip
import io
import zipfile
from email.message import EmailMessage

RFC9990_NS = "urn:ietf:params:xml:ns:dmarc-2.0"


def record_xml(
    ip: str = "192.0.2.1",
    count: int | str = 1,
    disposition: str = "none",
    dkim: str = "pass",
    spf: str = "pass",
    header_from: str = "example.com",
    envelope_from: str | None = "example.com",
    reasons: tuple[tuple[str, str], ...] = (),
    dkim_auth: tuple[tuple[str, str, str], ...] = (("example.com", "s1", "pass"),),
    spf_auth: tuple[tuple[str, str, str], ...] = (("example.com", "mfrom", "pass"),),
    identifiers_tag: str = "identifiers",
) -> str:
    reason = "".join(f"<reason><type>{t}</type><comment>{c}</comment></reason>" for t, c in reasons)
    envelope = f"<envelope_from>{envelope_from}</envelope_from>" if envelope_from is not None else ""
    dkims = "".join(
        f"<dkim><domain>{d}</domain><selector>{s}</selector><result>{r}</result></dkim>" for d, s, r in dkim_auth
    )
    spfs = "".join(f"<spf><domain>{d}</domain><scope>{s}</scope><result>{r}</result></spf>" for d, s, r in spf_auth)
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>{disposition}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>{reason}"
        f"</policy_evaluated></row><{identifiers_tag}><header_from>{header_from}</header_from>{envelope}"
        f"</{identifiers_tag}><auth_results>{dkims}{spfs}</auth_results></record>"
    )


def report_xml(
    records: list[str] | None = None,
    *,
    org_name: str = "reporter.example",
    email: str = "dmarc@reporter.example",
    report_id: str = "r-1",
    begin: int | str = 1700000000,
    end: int | str = 1700086399,
    domain: str = "example.com",
    policy: str = "<p>none</p><sp>none</sp><pct>100</pct>",
    namespace: str | None = None,
    metadata_extra: str = "",
    prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n',
) -> bytes:
    if records is None:
        records = [record_xml()]
    ns = f' xmlns="{namespace}"' if namespace else ""
    return (
        f"{prolog}<feedback{ns}><version>1.0</version><report_metadata><org_name>{org_name}</org_name>"
        f"<email>{email}</email><report_id>{report_id}</report_id>{metadata_extra}"
        f"<date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf>{policy}</policy_published>"
        f"{''.join(records)}</feedback>\n"
    ).encode()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def report_email(
    attachments: list[tuple[str, str, bytes]],
    subject: str = "Report Domain: example.com Submitter: reporter.example Report-ID: r-1",
    body: str = "This is a DMARC aggregate report.",
) -> bytes:
    """An email with (filename, content type, bytes) attachments."""
    message = EmailMessage()
    message["From"] = "dmarc@reporter.example"
    message["To"] = "rua@example.com"
    message["Subject"] = subject
    message.set_content(body)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()

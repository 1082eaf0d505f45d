from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Caps on hostile input. Each refusal names the cap it hit."""

    max_message_bytes: int = 64 * 1024 * 1024
    max_xml_bytes: int = 1024 * 1024 * 1024
    max_members: int = 20
    max_mime_parts: int = 100
    # All header sections of an email together. Real report emails carry a few KiB; the
    # email package keeps each header line as objects several times its size.
    max_header_bytes: int = 1024 * 1024
    max_depth: int = 16
    max_field_bytes: int = 64 * 1024
    # Bytes the parser may read without completing one top-level element (metadata,
    # policy, a record). libxml2 keeps an unfinished element's whole subtree in memory,
    # and at four bytes per empty element, 1 MiB of markup is ~260k nodes (~30 MB).
    max_element_bytes: int = 1024 * 1024
    max_records: int = 2_000_000
    # SMTP TLS reports (RFC 8460) are one JSON document that json builds whole in memory,
    # so its size and the number of values in it are capped before it is built. Real reports
    # are a few KiB: a policy and its summary per domain, a few failure details.
    max_json_bytes: int = 64 * 1024 * 1024
    # Values of any kind (objects, lists, strings, numbers): about 100 bytes of memory each
    # at worst, and a failure detail with every field is ten of them.
    max_json_values: int = 1_000_000
    max_tls_policies: int = 1000
    max_tls_failures: int = 100_000


def human_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:g} {unit}"
        n = n / 1024
    raise AssertionError("unreachable")

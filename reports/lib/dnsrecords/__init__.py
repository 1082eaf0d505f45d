"""The DNS side of the guided policy workflow: DMARC, SPF and DKIM records read, checked and written.

``dmarc`` parses and generates DMARC policy records (RFC 9989, read by RFC 7489 receivers too),
``spf`` parses SPF records and counts their DNS lookups, ``dkim`` checks a published DKIM key, and
``dns`` holds the lookups over an injectable dnspython resolver. Pure Python and dnspython: no Django.
"""

SHOWN = 60  # characters of published text quoted in a message


def shown(text: str) -> str:
    """Text from DNS for a message: printable characters only, and clipped to ``SHOWN``."""
    text = "".join(char if char.isprintable() else "?" for char in text[: SHOWN * 2])
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."

"""Any input (file, upload, email) -> the report documents (XML or JSON) inside it."""

from collections.abc import Iterator
from typing import BinaryIO

from reports.lib.parsing.archive import Document, Refusal, payload_documents, peek, sniff
from reports.lib.parsing.errors import ReportError
from reports.lib.parsing.limits import Limits, human_bytes
from reports.lib.parsing.message import message_documents


def find_documents(source: BinaryIO, name: str, limits: Limits) -> Iterator[Document | Refusal]:
    """Yield the documents of a seekable input, or a Refusal for each part that cannot be read.

    A refusal of the input as a whole is raised as ReportError.
    """
    if sniff(peek(source)) == "email":
        data = source.read(limits.max_message_bytes + 1)
        if len(data) > limits.max_message_bytes:
            raise ReportError(f"message is more than the {human_bytes(limits.max_message_bytes)} cap")
        yield from message_documents(data, name, limits)
    else:
        yield from payload_documents(source, name, limits)

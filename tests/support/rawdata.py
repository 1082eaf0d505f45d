"""Looking at the raw store as an operator could: every stored byte, an input's age, a damaged input."""

import datetime
import io
from collections.abc import Callable

from reports.intake import rawstore


def stored_bytes() -> bytes:
    """Every input as stored (encrypted where it was), in every store this process reads."""
    pieces = []
    for store in rawstore.stores():
        for sha256 in store.digests():
            with store.open(sha256) as stream:
                pieces.append(stream.read())
    return b"\n".join(pieces)


def stored_digests() -> set[str]:
    return {sha256 for store in rawstore.stores() for sha256 in store.digests()}


def set_written_at(sha256: str, when: datetime.datetime) -> None:
    """As if the input had been written at ``when`` (retention keeps inputs written in the last hour)."""
    store = rawstore.backend()
    if hasattr(store, "path_for"):
        import os

        os.utime(store.path_for(sha256), (when.timestamp(), when.timestamp()))
    else:
        from reports.models import RawBlob

        assert RawBlob.objects.using(store.alias).filter(pk=sha256).update(written_at=when) == 1


def alter(sha256: str, change: Callable[[bytes], bytes]) -> None:
    """Replace the input's stored bytes with ``change(bytes)``, as damage on the store's disk would."""
    store = rawstore.backend()
    with store.open(sha256) as stream:
        data = change(stream.read())
    store.replace(sha256, io.BytesIO(data), len(data))

"""The raw store in a directory (``file:///path``): ``ab/abcdef...`` under the sha256.

The default before the store moved into the database, and still right for one host, or for hosts
sharing a volume. A file is written to a temporary name and renamed into place, so a crash never
leaves a half-written input under a valid name.
"""

import datetime
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reports.intake.rawbase import RawMissing, check_digest


class FileBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"the directory {root}"

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / check_digest(sha256)

    def put(self, sha256: str, source: BinaryIO, size: int) -> bool:
        if self.exists(sha256):
            return False
        self.replace(sha256, source, size)
        return True

    def replace(self, sha256: str, source: BinaryIO, size: int) -> None:
        target = self.path_for(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self.path_for(sha256), "rb")
        except FileNotFoundError:
            raise RawMissing(f"no raw input {sha256} in {self.description}") from None

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def written_at(self, sha256: str) -> datetime.datetime | None:
        try:
            return datetime.datetime.fromtimestamp(self.path_for(sha256).stat().st_mtime, datetime.UTC)
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        for path in sorted(self.root.glob("??/*")) if self.root.is_dir() else ():
            if len(path.name) == 64 and path.name.startswith(path.parent.name):
                yield path.name

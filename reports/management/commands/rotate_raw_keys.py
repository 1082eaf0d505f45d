"""Re-encrypt the encrypted raw inputs (failure reports) with the first key of DMARCDASH_RAW_KEYS."""

import os
import tempfile

from django.core.management.base import BaseCommand

from reports.intake import rawcrypt, rawstore


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted raw input (failure reports) with the first key of DMARCDASH_RAW_KEYS, so the "
        "old keys can be removed; --new-key prints a fresh key to put first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--new-key", action="store_true", help="print a new key and change nothing")

    def handle(self, *args, new_key: bool, **options):
        if new_key:
            self.stdout.write(rawcrypt.new_key())
            return
        rotated = current = 0
        for path in sorted(rawstore.root().glob("??/*")):
            with open(path, "rb") as stream:
                head = stream.read(len(rawcrypt.MAGIC) + 8)
                if not rawcrypt.is_encrypted(head):
                    continue
                if rawcrypt.current_key_wrote(head):
                    current += 1
                    continue
                stream.seek(0)
                plain = rawcrypt.decrypt(stream)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".rotating-")
            with os.fdopen(fd, "wb") as out:
                for piece in rawcrypt.encrypt_chunks(iter([plain])):
                    out.write(piece)
            os.replace(temp, path)
            rotated += 1
        self.stdout.write(f"{rotated} raw inputs re-encrypted with the current key; {current} already were.")

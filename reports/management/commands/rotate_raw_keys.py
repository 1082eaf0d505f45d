"""Re-encrypt the encrypted raw inputs (failure reports) with the first key of DMARCDASH_RAW_KEYS."""

import io

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
        for store in rawstore.stores():
            for sha256 in list(store.digests()):
                with store.open(sha256) as stream:
                    head = stream.read(len(rawcrypt.MAGIC) + 8)
                    if not rawcrypt.is_encrypted(head):
                        continue
                    if rawcrypt.current_key_wrote(head):
                        current += 1
                        continue
                    stream.seek(0)
                    plain = rawcrypt.decrypt(stream)
                sealed = b"".join(rawcrypt.encrypt_chunks(iter([plain])))
                store.replace(sha256, io.BytesIO(sealed), len(sealed))
                rotated += 1
        self.stdout.write(f"{rotated} raw inputs re-encrypted with the current key; {current} already were.")

"""The raw store in an S3-compatible object store (``DMARCDASH_RAW_STORE=s3://bucket/prefix``):
AWS S3, MinIO, Ceph, Garage, R2 and the like, through boto3.

What operators run at scale: the store grows apart from the database, costs little per GB, and
every host reaches it over HTTPS. An object appears only once its upload completes (a single PUT,
or a multipart upload's completion), so a client or server cut mid-upload leaves no object, only
parts of an unfinished multipart upload, which S3 never lists as an object and which a bucket
lifecycle rule (AbortIncompleteMultipartUpload) removes. Objects are keyed by the sha256 of the
input as received, so writing one twice writes the same input.
"""

import datetime
from collections.abc import Iterator
from functools import cached_property
from typing import BinaryIO
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from reports.intake.rawbase import CHUNK, ChunkReader, RawMissing, check_digest

# Larger inputs go up in parts of this size, one at a time: memory stays at one part.
PART = 8 * CHUNK


class S3Backend:
    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket, self.prefix = bucket, prefix
        self.description = f"the object store s3://{bucket}/{prefix}"

    @classmethod
    def from_url(cls, spec: str) -> "S3Backend":
        parts = urlsplit(spec)
        if not parts.netloc:
            raise ImproperlyConfigured(f"DMARCDASH_RAW_STORE {spec!r} names no bucket (s3://bucket/prefix)")
        prefix = parts.path.lstrip("/")
        return cls(parts.netloc, prefix + "/" if prefix and not prefix.endswith("/") else prefix)

    @cached_property
    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=settings.S3_ENDPOINT_URL or None,
            region_name=settings.S3_REGION,
            aws_access_key_id=settings.S3_ACCESS_KEY_ID or None,
            aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY or None,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # Most S3-compatible servers want the bucket in the path, not the host name.
                s3={"addressing_style": "path" if settings.S3_ENDPOINT_URL else "auto"},
            ),
        )

    def key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256[:2]}/{check_digest(sha256)}"

    def put(self, sha256: str, source: BinaryIO, size: int) -> bool:
        if self.exists(sha256):
            return False
        self.replace(sha256, source, size)
        return True

    def replace(self, sha256: str, source: BinaryIO, size: int) -> None:
        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, use_threads=False)
        self.client.upload_fileobj(source, self.bucket, self.key(sha256), Config=transfer)

    def _missing(self, error) -> bool:
        return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")

    def _head(self, sha256: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as error:
            if self._missing(error):
                return None
            raise

    def _range(self, sha256: str, seq: int) -> dict:
        from botocore.exceptions import ClientError

        start = seq * CHUNK
        try:
            return self.client.get_object(
                Bucket=self.bucket, Key=self.key(sha256), Range=f"bytes={start}-{start + CHUNK - 1}"
            )
        except ClientError as error:
            if self._missing(error):
                raise RawMissing(f"no raw input {sha256} in {self.description}") from None
            if error.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty input
                return {"Body": None, "ContentRange": "bytes */0"}
            raise

    def open(self, sha256: str) -> BinaryIO:
        # The first range answers with the whole size too: a one-chunk input is one request.
        first = self._range(sha256, 0)
        size = int(first["ContentRange"].rsplit("/", 1)[1])
        data = first["Body"].read() if first["Body"] is not None else b""
        return ChunkReader.buffered(size, lambda seq: self._range(sha256, seq)["Body"].read(), first=data)

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def written_at(self, sha256: str) -> datetime.datetime | None:
        head = self._head(sha256)
        return head["LastModified"] if head is not None else None

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def digests(self) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                    yield name

"""An S3-compatible server on 127.0.0.1 for the raw store's S3 backend: moto's standalone server
(``moto_server``), started as a process of its own, speaking the S3 REST API over HTTP, so boto3 goes
through the same requests, signatures, multipart uploads and ranged reads it does against AWS or MinIO.
It keeps its objects in memory, so each test takes a bucket of its own.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.tcpproxy import free_port, wait_for_port

ACCESS_KEY = "dmarcdash-test"
SECRET_KEY = "dmarcdash-test-secret"


@dataclass
class S3Server:
    port: int
    process: subprocess.Popen

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, endpoint: str | None = None):
        import boto3

        return boto3.client(
            "s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip

    def new_bucket(self) -> str:
        name = f"raw-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, process, "the S3 server (moto_server)")
        yield S3Server(port, process)
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture
def s3_store(s3_server, settings) -> str:
    """The raw store in a fresh bucket of the suite's S3 server; returns the bucket."""
    bucket = s3_server.new_bucket()
    settings.S3_ENDPOINT_URL = s3_server.endpoint
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY = ACCESS_KEY, SECRET_KEY
    settings.RAW_STORE = f"s3://{bucket}/raw"
    return bucket

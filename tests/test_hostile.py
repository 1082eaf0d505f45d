"""Hostile inputs through the real CLI in a separate process: each refused with its reason,
within the memory cap, with nothing written to disk outside the data store, and the good
report after them still stored."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

from tests.builders import record_xml, report_xml, zipped

ROOT = Path(__file__).resolve().parent.parent
MEMORY_CAP_MB = 256  # the worker's cap (issue 10); the ingest process must stay under it

# Peak RSS is read from VmHWM: ru_maxrss would also count the parent's memory, which
# Linux carries into a child across fork and exec.
RUNNER = """
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
code = 0
try:
    call_command("ingest", *sys.argv[1:], as_json=True)
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"exit": code, "max_rss_mb": int(peak.split()[1]) / 1024}))
"""


def bomb_gzip(path: Path, size: int) -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1024 * 1024)
    with open(path, "wb") as out:
        out.write(deflate.compress(b'<?xml version="1.0"?><feedback><report_metadata>'))
        for _ in range(size // len(block)):
            out.write(deflate.compress(block))
        out.write(deflate.flush())


def bomb_zip(path: Path, size: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("report.xml", "w", force_zip64=True) as member:
            block = b" " * (1024 * 1024)
            for _ in range(size // len(block)):
                member.write(block)


def hostile_inputs(folder: Path, secret: Path) -> dict[str, str]:
    """Write the hostile inputs; return file name -> a phrase its refusal reason must contain."""
    laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    files = {
        "01-xxe.xml": (
            report_xml(
                org_name="&xxe;", prolog=f'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY xxe SYSTEM "file://{secret}">]>'
            ),
            "DOCTYPE",
        ),
        "02-billion-laughs.xml": (
            report_xml(org_name="&i;", prolog=f"<?xml version='1.0'?><!DOCTYPE f [{laughs}]>"),
            "DOCTYPE",
        ),
        "03-zip-slip.zip": (zipped({"../../../tmp/evil.xml": report_xml()}), "zip slip"),
        "04-deep.xml": (
            report_xml([record_xml().replace("<count>", "<a>" * 100_000 + "</a>" * 100_000 + "<count>")]),
            "XML",
        ),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    head, tail = report_xml([record_xml(header_from="HUGE")]).split(b"HUGE")
    with open(folder / "05-100mb-field.xml", "wb") as out:
        out.write(head)
        for _ in range(100):
            out.write(b"a" * (1024 * 1024))
        out.write(tail)
    bomb_gzip(folder / "06-gzip-bomb.xml.gz", 300 * 1024 * 1024)
    bomb_zip(folder / "07-zip-bomb.zip", 300 * 1024 * 1024)
    expected = {name: phrase for name, (_, phrase) in files.items()}
    expected.update(
        {
            "05-100mb-field.xml": "a single element of the report is larger than the 1 MiB cap",
            "06-gzip-bomb.xml.gz": "larger than the 1 MiB cap",
            "07-zip-bomb.zip": "zip members declare 300 MiB uncompressed, more than the 256 MiB cap",
        }
    )
    return expected


def test_it_refuses_each_hostile_input_within_the_memory_cap_and_writes_nothing_outside_the_store(tmp_path):
    inputs, data, temp, cwd = (tmp_path / name for name in ("inputs", "data", "tmp", "cwd"))
    for folder in (inputs, data, temp, cwd):
        folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    expected = hostile_inputs(inputs, secret)
    (inputs / "99-good.xml").write_bytes(report_xml(report_id="still-works"))
    assert (inputs / "06-gzip-bomb.xml.gz").stat().st_size * 1000 < 300 * 1024 * 1024

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(
        DMARCDASH_DATA_DIR=str(data),
        TMPDIR=str(temp),
        DMARC_MAX_XML_BYTES=str(256 * 1024 * 1024),
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="dmarcdash.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(inputs)], cwd=cwd, env=env, capture_output=True, text=True, timeout=280
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines.pop()
    by_name = {Path(line["path"]).name: line for line in lines}

    for name, phrase in expected.items():
        assert by_name[name]["status"] == "refused", (name, by_name[name])
        assert phrase in by_name[name]["reason"], (name, by_name[name]["reason"])
        assert "TOP-SECRET" not in by_name[name]["reason"]
    assert by_name["99-good.xml"]["status"] == "stored"
    assert summary["exit"] == 1
    print(f"peak RSS of the ingest process: {summary['max_rss_mb']:.0f} MB")
    assert summary["max_rss_mb"] < MEMORY_CAP_MB

    # Nothing on disk but the data store: no temporary files, nothing extracted, nothing in the cwd.
    assert list(temp.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert not Path("/tmp/evil.xml").exists()
    stored = {p.name for p in (data / "raw").rglob("*") if p.is_file()}
    given = {hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs.iterdir()}
    assert stored == given
    assert {p.name for p in data.iterdir()} == {"raw", "uploads", "dmarcdash.sqlite3", "secret_key"}
    assert list((data / "uploads").iterdir()) == []

"""Hostile inputs through the real CLI in a separate process: each refused with its reason,
within the memory cap, with nothing written to disk outside the data store, and the good
report after them still stored."""

import hashlib
import sqlite3
from pathlib import Path

from tests.support.builders import record_xml, report_xml, zipped
from tests.support.hostile.bombs import PADDING, Member, MiB, deflate, gzip_bomb, write_zip
from tests.support.hostile.worker import MEMORY_CAP_MB, Worker, worker_env


def bomb_zip(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        write_zip(out, [Member("report.xml", deflate(b"", PADDING, size // MiB))])


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
    gzip_bomb(folder / "06-gzip-bomb.xml.gz", 300 * MiB)
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

    env = worker_env(data, temp, DMARC_MAX_XML_BYTES=str(256 * MiB))
    with Worker(env, cwd, tmp_path / "worker.log", migrate=True) as worker:
        run = worker.ingest(inputs, time_cap=280)
    assert not run.killed, run.killed
    by_name = {Path(line["path"]).name: line for line in run.outcomes}

    for name, phrase in expected.items():
        assert by_name[name]["status"] == "refused", (name, by_name[name])
        assert phrase in by_name[name]["reason"], (name, by_name[name]["reason"])
        assert "TOP-SECRET" not in by_name[name]["reason"]
    assert by_name["99-good.xml"]["status"] == "stored"
    assert run.exit == 1
    print(f"peak RSS of the ingest process: {run.peak_mb:.0f} MB")
    assert run.peak_mb < MEMORY_CAP_MB

    # Nothing on disk but the data store: no temporary files, nothing extracted, nothing in the cwd.
    assert list(temp.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert not Path("/tmp/evil.xml").exists()
    with sqlite3.connect(data / "dmarcdash.sqlite3") as database:  # the raw store is the database
        stored = {sha256 for (sha256,) in database.execute("SELECT sha256 FROM reports_rawblob")}
    given = {hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs.iterdir()}
    assert stored == given
    # (and SQLite's write-ahead log beside its database, in WAL mode)
    found = {p.name for p in data.iterdir()} - {"dmarcdash.sqlite3-wal", "dmarcdash.sqlite3-shm"}
    assert found == {"uploads", "dmarcdash.sqlite3", "secret_key"}
    assert list((data / "uploads").iterdir()) == []

"""Reports delivered the way the operator's import does (``manage.py ingest``): through the real
pipeline, dated whole UTC days back from today."""

import datetime

from reports.intake.pipeline import ingest_bytes
from reports.models import Intake
from tests.support.builders import report_xml

TODAY = datetime.datetime.now(datetime.UTC).date()


def midnight(days_ago: int) -> int:
    day = TODAY - datetime.timedelta(days=days_ago)
    return int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())


def deliver(records: list[str], days_ago: int, org_name: str = "google.com", domain: str = "example.com", **kw):
    begin = midnight(days_ago)
    data = report_xml(
        records,
        org_name=org_name,
        email=f"noreply@{org_name}",
        report_id=f"{org_name}-{days_ago}-{kw.pop('suffix', '')}",
        begin=begin,
        end=begin + 86399,
        domain=domain,
        **kw,
    )
    return ingest_bytes(data, source=Intake.Channel.CLI, name="r.xml")

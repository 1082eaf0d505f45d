import io

from reports.lib.parsing import Limits, Refusal, find_documents, parse_aggregate


def parse_all(data: bytes, limits: Limits | None = None, name: str = "input", salvage: bool = False):
    """Every document of an input, each as (report, records) or a Refusal."""
    limits = limits or Limits()
    results = []
    for found in find_documents(io.BytesIO(data), name, limits):
        if isinstance(found, Refusal):
            results.append(found)
            continue
        report = parse_aggregate(found.open(), limits, found.notes, salvage=salvage)
        results.append((report, list(report.records)))
    return results


def parse_one(data: bytes, limits: Limits | None = None, salvage: bool = False):
    (result,) = parse_all(data, limits, salvage=salvage)
    return result

"""The COPY text lines of a report's records: pure, so that a parsing process without Django
(reports.intake.prepare) builds them as well as the storing one (reports.intake.store).

A line holds the record's own columns, tab-separated in RECORD_COLUMNS order after the
report's two; ``store`` puts the report's id and day in front of each when it writes them.
"""

import json
from collections.abc import Iterable, Iterator

from reports.lib.parsing.aggregate import Record as ParsedRecord

# The parser keeps an unknown disposition or aligned result as sent, up to the field cap;
# the columns are short, so it is cut to fit rather than failing the whole report. (The
# Record model's max_length: tests/intake/test_prepare.py holds the two equal.)
CODE_LENGTH = 20
# COPY text format: a field with one of these characters is escaped (report text can hold any).
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
JSON_CACHE = 4096  # distinct auth-result lists remembered per report
JSON_CACHE_TEXT = 512  # longer JSON is not remembered: report values are attacker-sized
JSON_KEYS = {
    name: f'"{name}":' for name in ("type", "comment", "domain", "selector", "scope", "result", "human_result")
}
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_string = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept, as _encode_json does


def record_lines(records: Iterable[ParsedRecord], totals: list[int]) -> Iterator[str]:
    """Yield the COPY line of each record (without the report's prefix) and add it to ``totals``,
    [records, messages, messages passing DMARC], as it goes."""
    cache: dict = {}
    count = messages = passed = 0
    try:
        for record in records:
            count += 1
            messages += record.count
            if record.passed:
                passed += record.count
            fields = (
                record.source_ip,
                str(record.count),
                record.disposition[:CODE_LENGTH],
                record.dkim[:CODE_LENGTH],
                record.spf[:CODE_LENGTH],
                record.header_from,
                record.envelope_from,
                record.envelope_to,
                _json(record.reasons, cache),
                _json(record.dkim_results, cache),
                _json(record.spf_results, cache),
            )
            line = "\t".join(fields)
            # One scan of the joined line finds the rare field that needs escaping (JSON text
            # has no raw tab, newline or CR; a backslash in it is escaped like any other).
            if line.count("\t") != len(fields) - 1 or "\\" in line or "\n" in line or "\r" in line:
                line = "\t".join([field.translate(COPY_ESCAPES) for field in fields])
            yield line
    finally:
        totals[0] += count
        totals[1] += messages
        totals[2] += passed


def _json(value: list, cache: dict) -> str:
    """JSON text of a list of flat dicts of strings, remembered in ``cache``.

    A report repeats the same few auth results across thousands of records, and
    json.dumps of the three small lists of a record costs a third of parsing it.
    """
    if not value:
        return "[]"
    try:
        key = tuple([tuple(item.items()) for item in value])
        text = cache.get(key)
        if text is None:
            # _json_object raises TypeError on a value that is not a string, so only lists of
            # strings are cached, and a str never compares equal to another type in a key.
            text = "[" + ",".join(map(_json_object, value)) + "]"
            if len(text) <= JSON_CACHE_TEXT:
                if len(cache) >= JSON_CACHE:
                    cache.clear()
                cache[key] = text
        return text
    except (AttributeError, TypeError):  # not flat dicts of strings: encode them as they are
        return _encode_json(value)


def _json_object(item: dict) -> str:
    return (
        "{"
        + ",".join([(JSON_KEYS.get(k) or _encode_string(k) + ":") + _encode_string(v) for k, v in item.items()])
        + "}"
    )

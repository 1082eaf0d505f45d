"""CSV exports that are safe to open in a spreadsheet.

Report text is attacker-controlled: a cell starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return would be run as a formula by Excel or LibreOffice (CSV
injection), so such text cells are prefixed with a single quote, as OWASP advises.
Numbers are written as numbers.
"""

import csv
from collections.abc import Iterable, Iterator

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])

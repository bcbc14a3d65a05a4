"""CSV output that spreadsheets cannot turn into formulas (a cell starting with = + - @ is text)."""

import csv
import io
from collections.abc import Iterable, Iterator

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value) -> str:
    """The cell as text; a leading apostrophe when it starts like a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def stream(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """CSV text in pieces of a few hundred rows: a UTF-8 BOM (for spreadsheets), the header,
    then the rows, every cell escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([escape_cell(h) for h in header])
    for n, row in enumerate(rows, 1):
        writer.writerow([escape_cell(cell) for cell in row])
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()

"""CSV output that spreadsheets cannot turn into formulas (a cell starting with = + - @ is text).

Two ways to the same bytes: ``stream`` writes rows with the csv module, and on PostgreSQL
``sql_cell`` and ``sql_iso`` let the database render a row's cells itself (the export of a
million subscriptions: ``audience.export_csv``), escaped and quoted exactly as ``stream``
would write them (tests/test_csv_export.py compares the two on hostile values)."""

import csv
import io
from collections.abc import Iterable, Iterator
from itertools import islice

from sqlalchemy import case, func, literal
from sqlalchemy.sql.elements import ColumnElement

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(_FORMULA_START)
BOM = "\ufeff"
CHUNK_ROWS = 2000  # rows a piece of the streamed body holds (a few hundred kB)


def escape_cell(value) -> str:
    """The cell as text; a leading apostrophe when it starts like a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _escaped(row) -> list[str]:
    # escape_cell called only for a cell that is not text or starts like a formula: a call a
    # cell was most of the time ``stream`` took
    return [c if c.__class__ is str and c[:1] not in _FORMULA_FIRST else escape_cell(c) for c in row]


def stream(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """CSV text in pieces of CHUNK_ROWS rows: a UTF-8 BOM (for spreadsheets), the header,
    then the rows, every cell escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow(_escaped(header))
    rows = iter(rows)
    while chunk := list(islice(rows, CHUNK_ROWS)):
        writer.writerows([_escaped(row) for row in chunk])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def text_cell(text: str) -> str:
    """One escaped cell as ``stream`` writes it in a row of several: quoted when it holds a
    comma, a quote or a line break (csv's QUOTE_MINIMAL with the excel dialect)."""
    if text[:1] in _FORMULA_FIRST:
        text = "'" + text
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


# --- The same cells rendered by PostgreSQL ------------------------------------------------

def sql_cell(value: ColumnElement) -> ColumnElement[str]:
    """PostgreSQL: a text value (NULL as empty) as ``text_cell`` writes it. One regular
    expression tells the usual cell, left as it is, from one to escape or quote."""
    text = func.coalesce(value, literal(""))
    escaped = case((func.left(text, 1).in_(_FORMULA_START), literal("'") + text), else_=text)
    return case((~text.regexp_match('^[-=+@\t\r]|[,"\r\n]'), text),
                (text.regexp_match('[,"\r\n]'), literal('"') + func.replace(escaped, '"', '""') + literal('"')),
                else_=escaped)


def sql_iso(value: ColumnElement) -> ColumnElement[str]:
    """PostgreSQL: a timestamp with time zone (NULL as empty) as Python writes
    ``value.astimezone(timezone.utc).isoformat()``: microseconds only when not zero. Such a
    cell never needs escaping or quotes."""
    text = func.to_char(func.timezone("UTC", value), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
    return func.coalesce(func.replace(text, ".000000+", "+"), literal(""))

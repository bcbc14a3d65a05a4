"""Reading an uploaded CSV file: UTF-8 (a BOM allowed), streamed from disk, never whole."""

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

from ..errors import InvalidInput

COPY_CHUNK = 1 << 16
MAX_FIELD = 10_000       # characters in one cell; more is a hostile file
MAX_COLUMNS = 100
NOT_UTF8 = "The file is not in UTF-8. Save it as \"CSV UTF-8\" and upload it again."


def first_line(path: Path) -> str:
    """The file's first line, after checking that the whole file is UTF-8 text; raises
    InvalidInput (binary, another encoding)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    first = ""
    with open(path, "rb") as raw:
        while chunk := raw.read(COPY_CHUNK):
            if b"\x00" in chunk:
                raise InvalidInput("This is not a CSV text file.", "file")
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise InvalidInput(NOT_UTF8, "file") from exc
            if len(first) < MAX_FIELD and "\n" not in first:
                first += text[:MAX_FIELD]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise InvalidInput(NOT_UTF8, "file") from exc
    return first.splitlines()[0] if first.strip() else ""


def rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every non-empty row; raises InvalidInput naming the line of
    a row that is broken, too wide or too long."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD + 1))
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            for row in reader:  # the checks with map(): a generator a row cost 2 us of 4 (issue 14)
                if len(row) > MAX_COLUMNS:
                    raise InvalidInput("Line %(line)s has too many columns.", "file", line=reader.line_num)
                if max(map(len, row), default=0) > MAX_FIELD:
                    raise InvalidInput("Line %(line)s is too long.", "file", line=reader.line_num)
                if any(map(str.strip, row)):
                    yield reader.line_num, row
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidInput("Line %(line)s cannot be read as CSV.", "file", line=reader.line_num) from exc

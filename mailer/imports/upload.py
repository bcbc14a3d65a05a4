"""Keeping an uploaded CSV file: copied to IMPORT_DIR in chunks, checked whole before it is
accepted (encoding, binary, line sizes, an email column), its columns guessed, a preview."""

import time
import uuid
from pathlib import Path
from typing import IO, Any

from flask import current_app
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput
from ..lookups import get_or_404
from ..models import ImportJob, ImportStatus
from .csv_rows import COPY_CHUNK, first_line, rows

YIELD_EVERY = 10_000  # rows checked between two yields to the web worker's other requests

EMAIL_HEADERS = {"email", "e-mail", "mail", "adres", "adres e-mail", "adres email", "email address",
                 "e-mail address", "adres_email", "email_address"}
NAME_HEADERS = {"name", "imię", "imie", "imię i nazwisko", "nazwisko", "full name", "imie i nazwisko"}
LOCALE_HEADERS = {"locale", "language", "lang", "język", "jezyk"}


def import_dir() -> Path:
    path = Path(current_app.config["IMPORT_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def stored_path(job: ImportJob) -> Path:
    return import_dir() / job.stored_name


def _guess_column(header: list[str], names: set[str]) -> int | None:
    for index, cell in enumerate(header):
        if cell.strip().lower() in names:
            return index
    return None


def inspect(path: Path) -> dict[str, Any]:
    """Check a whole file (encoding, binary, line sizes, an email column) in one streamed
    pass; return delimiter, has_header, columns, rows (data rows) and guessed columns.
    Raises InvalidInput with a message for the staff member."""
    first = first_line(path)
    if not first:
        raise InvalidInput("The file is empty.", "file")
    delimiter = max([",", ";", "\t"], key=first.count)
    header: list[str] | None = None
    total = columns = 0
    for _line, row in rows(path, delimiter):
        if header is None:
            header = row
        total += 1
        columns = max(columns, len(row))
        if not total % YIELD_EVERY:
            # A million rows take seconds: a gevent web worker (gunicorn.conf.py) serves its
            # other requests meanwhile (a thread lets the others run, as it does anyway).
            time.sleep(0)
    if header is None:
        raise InvalidInput("The file is empty.", "file")
    email_col = _guess_column(header, EMAIL_HEADERS)
    has_header = email_col is not None
    if email_col is None:  # no header row: the first column holding addresses
        email_col = next((i for i, cell in enumerate(header) if "@" in cell), None)
    if email_col is None:
        raise InvalidInput("No column with email addresses was found.", "file")
    return {
        "delimiter": delimiter, "has_header": has_header, "columns": columns,
        "rows": total - (1 if has_header else 0),
        "guess": {"email_col": email_col,
                  "name_col": _guess_column(header, NAME_HEADERS) if has_header else None,
                  "locale_col": _guess_column(header, LOCALE_HEADERS) if has_header else None},
    }


def save_upload(session: Session, stream: IO[bytes], filename: str,
                created_by_id: int | None = None) -> ImportJob:
    """Copy an uploaded file to IMPORT_DIR in chunks, check it, and record an ImportJob
    waiting for its column mapping. Raises InvalidInput (nothing kept) for a hostile file."""
    stored = uuid.uuid4().hex + ".csv"
    path = import_dir() / stored
    try:
        with open(path, "wb") as out:
            while chunk := stream.read(COPY_CHUNK):
                out.write(chunk)
        info = inspect(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    job = ImportJob(filename=(filename or "")[:255], stored_name=stored, delimiter=info["delimiter"],
                    has_header=info["has_header"], columns=info["columns"], total_rows=info["rows"],
                    options=info["guess"], created_by_id=created_by_id, invalid_rows=[])
    session.add(job)
    session.flush()
    return job


def preview(session: Session, job_id: int, limit: int = 5) -> dict[str, Any]:
    """The header (or column numbers) and the first rows of an uploaded file. Raises NotFound,
    Conflict (file already imported)."""
    job = get_or_404(session, ImportJob, job_id)
    if job.status != ImportStatus.UPLOADED:
        raise Conflict("This file has already been imported.")
    header: list[str] = []
    sample: list[list[str]] = []
    for _line, row in rows(stored_path(job), job.delimiter):
        if job.has_header and not header:
            header = row
            continue
        sample.append(row + [""] * (job.columns - len(row)))
        if len(sample) >= limit:
            break
    if not header:
        header = [str(n + 1) for n in range(job.columns)]
    header += [""] * (job.columns - len(header))
    return {"job": job, "header": header, "rows": sample}

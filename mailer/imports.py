"""CSV import of subscribers: check the upload up front, preview it, then import it in
chunks (bulk INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL) with progress
kept in the ImportJob row. The file is read from disk with csv.reader, never whole."""

import codecs
import csv
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from flask import current_app
from datetime import timedelta

from sqlalchemy import JSON, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import jobs
from .errors import Conflict, InvalidInput, NotFound
from .models import (ConsentRecord, ImportJob, ImportStatus, MailingList, Subscriber, Subscription,
                     SubscriptionStatus, Suppression, utcnow)
from .subscribers import normalize_email
from .suppression import email_hash

COPY_CHUNK = 1 << 16
MAX_FIELD = 10_000       # characters in one cell; more is a hostile file
MAX_COLUMNS = 100
MAX_INVALID_KEPT = 1000  # invalid rows listed in the report (all are counted)
MAX_NAME = 200
MAX_CONSENT_SOURCE = 200
STALE_AFTER = timedelta(minutes=10)  # a RUNNING job silent this long is taken over
LOCALES = ("pl", "en")
EMAIL_HEADERS = {"email", "e-mail", "mail", "adres", "adres e-mail", "adres email", "email address",
                 "e-mail address", "adres_email", "email_address"}
NAME_HEADERS = {"name", "imię", "imie", "imię i nazwisko", "nazwisko", "full name", "imie i nazwisko"}
LOCALE_HEADERS = {"locale", "language", "lang", "język", "jezyk"}


def _dir() -> Path:
    path = Path(current_app.config["IMPORT_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _path(job: ImportJob) -> Path:
    return _dir() / job.stored_name


def _check_encoding(path: Path) -> str:
    """Raise InvalidInput unless the file is UTF-8 text (a BOM allowed); return its first line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    first_line = ""
    with open(path, "rb") as raw:
        while chunk := raw.read(COPY_CHUNK):
            if b"\x00" in chunk:
                raise InvalidInput("This is not a CSV text file.", "file")
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise InvalidInput("The file is not in UTF-8. Save it as \"CSV UTF-8\" and upload it again.",
                                   "file") from exc
            if len(first_line) < MAX_FIELD and "\n" not in first_line:
                first_line += text[:MAX_FIELD]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise InvalidInput("The file is not in UTF-8. Save it as \"CSV UTF-8\" and upload it again.",
                               "file") from exc
    return first_line.splitlines()[0] if first_line.strip() else ""


def _bad_line(msgid: str, line: int) -> InvalidInput:
    """An InvalidInput whose message names a line; ``params`` lets the view translate it."""
    error = InvalidInput(msgid, "file")
    error.params = {"line": line}
    return error


def _rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every non-empty row; raises InvalidInput on a broken row."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD + 1))
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise _bad_line("Line %(line)s cannot be read as CSV.", reader.line_num) from exc
            if len(row) > MAX_COLUMNS:
                raise _bad_line("Line %(line)s has too many columns.", reader.line_num)
            if any(len(cell) > MAX_FIELD for cell in row):
                raise _bad_line("Line %(line)s is too long.", reader.line_num)
            if any(cell.strip() for cell in row):
                yield reader.line_num, row


def _guess_column(header: list[str], names: set[str]) -> int | None:
    for index, cell in enumerate(header):
        if cell.strip().lower() in names:
            return index
    return None


def inspect(path: Path) -> dict[str, Any]:
    """Check a whole file (encoding, binary, line sizes, an email column) in one streamed
    pass; return delimiter, has_header, columns, rows (data rows) and guessed columns.
    Raises InvalidInput with a message for the staff member."""
    first = _check_encoding(path)
    if not first:
        raise InvalidInput("The file is empty.", "file")
    delimiter = max([",", ";", "\t"], key=first.count)
    header: list[str] | None = None
    sample: list[list[str]] = []
    total = columns = 0
    for _line, row in _rows(path, delimiter):
        if header is None:
            header = row
        elif len(sample) < 5:
            sample.append(row)
        total += 1
        columns = max(columns, len(row))
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
    path = _dir() / stored
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


def get_job(session: Session, job_id: int) -> ImportJob:
    """Raises NotFound."""
    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound("This import does not exist.")
    return job


def recent_jobs(session: Session, limit: int = 20) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


def preview(session: Session, job_id: int, rows: int = 5) -> dict[str, Any]:
    """The header (or column numbers) and the first rows of an uploaded file. Raises NotFound,
    Conflict (file already imported)."""
    job = get_job(session, job_id)
    if job.status != ImportStatus.UPLOADED:
        raise Conflict("This file has already been imported.")
    header: list[str] = []
    sample: list[list[str]] = []
    for _line, row in _rows(_path(job), job.delimiter):
        if job.has_header and not header:
            header = row
            continue
        sample.append(row + [""] * (job.columns - len(row)))
        if len(sample) >= rows:
            break
    if not header:
        header = [str(n + 1) for n in range(job.columns)]
    header += [""] * (job.columns - len(header))
    return {"job": job, "header": header, "rows": sample}


def _column(value, columns: int, field: str, required: bool = False) -> int | None:
    if value in (None, "", -1, "-1"):
        if required:
            raise InvalidInput("Choose the column with email addresses.", field)
        return None
    try:
        index = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("Choose a column from the file.", field) from exc
    if not 0 <= index < columns:
        raise InvalidInput("Choose a column from the file.", field)
    return index


def start(session: Session, job_id: int, *, email_col, name_col=None, locale_col=None,
          list_ids: list[int], status: str, consent_source: str = "") -> ImportJob:
    """Record the mapping and options and queue "mailer.import_csv". A "confirmed" import
    needs the source of the consent (e.g. "paper form 2025"). Raises NotFound, Conflict
    (already started), InvalidInput."""
    job = get_job(session, job_id)
    if job.status != ImportStatus.UPLOADED:
        raise Conflict("This file has already been imported.")
    email_col = _column(email_col, job.columns, "email_col", required=True)
    name_col = _column(name_col, job.columns, "name_col")
    locale_col = _column(locale_col, job.columns, "locale_col")
    try:
        status = SubscriptionStatus(status)
    except ValueError as exc:
        raise InvalidInput("Unknown status.", "status") from exc
    if status == SubscriptionStatus.UNSUBSCRIBED:
        raise InvalidInput("Unknown status.", "status")
    consent_source = " ".join((consent_source or "").split())
    if status == SubscriptionStatus.CONFIRMED and not consent_source:
        raise InvalidInput("Say where the consent of these people is recorded (for example \"paper form 2025\").",
                           "consent_source")
    if len(consent_source) > MAX_CONSENT_SOURCE:
        raise InvalidInput("The consent source is too long.", "consent_source")
    wanted = sorted({int(i) for i in list_ids or []})
    if not wanted:
        raise InvalidInput("Choose at least one list.", "list_ids")
    found = set(session.scalars(select(MailingList.id).where(MailingList.id.in_(wanted))))
    if found != set(wanted):
        raise InvalidInput("This list does not exist.", "list_ids")
    job.options = {"email_col": email_col, "name_col": name_col, "locale_col": locale_col,
                   "list_ids": wanted, "status": status.value}
    job.consent_source = consent_source
    job.status = ImportStatus.QUEUED
    jobs.enqueue(session, "mailer.import_csv", job.id)
    return job


def _bulk_insert(session: Session, model, rows: list[dict[str, Any]], *, varying: list[str],
                 conflict: list[str], returning: list[str] = ()) -> list:
    """INSERT ... ON CONFLICT DO NOTHING [RETURNING] of many rows whose columns are either
    ``varying`` or the same in every row. PostgreSQL: one statement over unnest() of one
    array per varying column (a short query, whatever the row count); SQLite: executemany
    with SQLAlchemy's "insertmanyvalues" batching."""
    if not rows:
        return []
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
        if returning:
            statement = statement.returning(*(table.c[name] for name in returning))
            return connection.execute(statement, rows).all()
        connection.execute(statement, rows)
        return []
    dialect = postgresql.dialect()
    pg_type = {c.name: c.type.compile(dialect=dialect) for c in table.columns}
    constant = [name for name in rows[0] if name not in varying]
    params = {f"a_{name}": [row[name] for row in rows] for name in varying}
    params |= {f"k_{name}": json.dumps(rows[0][name]) if isinstance(table.c[name].type, JSON)
               else rows[0][name] for name in constant}
    arrays = ", ".join(f"CAST(:a_{name} AS {pg_type[name]}[])" for name in varying)
    selected = [f"t.{name}" for name in varying] + [f"CAST(:k_{name} AS {pg_type[name]})" for name in constant]
    sql = (f"INSERT INTO {table.name} ({', '.join(varying + constant)}) SELECT {', '.join(selected)} "
           f"FROM unnest({arrays}) AS t({', '.join(varying)}) "
           f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING")
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
        return connection.execute(text(sql), params).all()
    connection.execute(text(sql), params)
    return []


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def _import_chunk(session: Session, job: ImportJob, chunk: list[tuple[int, list[str]]]) -> None:
    """Validate, deduplicate, skip suppressed, then insert subscribers, subscriptions and
    consent records for one chunk of rows, in a few set-based statements."""
    options = job.options
    now = utcnow()
    fresh: dict[str, dict[str, Any]] = {}
    for line, row in chunk:
        try:
            email = normalize_email(_cell(row, options["email_col"]))
        except InvalidInput as exc:
            job.invalid_count += 1
            if len(job.invalid_rows) < MAX_INVALID_KEPT:
                job.invalid_rows = job.invalid_rows + [[line, exc.message]]
            continue
        if email in fresh:
            job.existing_count += 1
            continue
        name = " ".join(_cell(row, options["name_col"]).split())[:MAX_NAME]
        locale = _cell(row, options["locale_col"]).lower()[:2]
        fresh[email] = {"email": email, "email_hash": email_hash(email), "name": name,
                        "locale": locale if locale in LOCALES else "pl", "attributes": {},
                        "confirm_sent_today": 0, "created_at": now, "updated_at": now}
    if not fresh:
        return
    suppressed = set(session.scalars(select(Suppression.email_hash).where(
        Suppression.email_hash.in_([v["email_hash"] for v in fresh.values()]))))
    if suppressed:
        job.suppressed_count += sum(1 for v in fresh.values() if v["email_hash"] in suppressed)
        fresh = {e: v for e, v in fresh.items() if v["email_hash"] not in suppressed}
        if not fresh:
            return
    created = _bulk_insert(session, Subscriber, list(fresh.values()), conflict=["email"], returning=["id"],
                           varying=["email", "email_hash", "name", "locale"])
    job.created_count += len(created)
    job.existing_count += len(fresh) - len(created)
    ids = list(session.scalars(select(Subscriber.id).where(Subscriber.email.in_(list(fresh)))))
    status = SubscriptionStatus(options["status"])
    confirmed_at = now if status == SubscriptionStatus.CONFIRMED else None
    pairs = [{"subscriber_id": sid, "list_id": lid, "status": status.value, "created_at": now,
              "confirmed_at": confirmed_at} for sid in ids for lid in options["list_ids"]]
    added = _bulk_insert(session, Subscription, pairs, varying=["subscriber_id", "list_id"],
                         conflict=["subscriber_id", "list_id"], returning=["subscriber_id", "list_id"])
    job.subscribed_count += len(added)
    _bulk_insert(session, ConsentRecord, [
        {"subscriber_id": sid, "list_id": lid, "action": f"import-{status.value}", "source": "import",
         "consent_version": f"import:{job.id}", "ip": "", "user_agent": "", "created_at": now}
        for sid, lid in added], varying=["subscriber_id", "list_id"], conflict=["id"])


def run(session: Session, job_id: int) -> None:
    """Task body of "mailer.import_csv": import a queued job chunk by chunk, committing the
    progress after each chunk. Safe to run twice: the job is claimed atomically (a second
    run returns at once unless the first one's heartbeat stopped) and inserts skip what
    exists. A file that became unreadable marks the job failed."""
    now = utcnow()
    claimed = session.execute(
        update(ImportJob).where(
            ImportJob.id == job_id,
            or_(ImportJob.status == ImportStatus.QUEUED,
                (ImportJob.status == ImportStatus.RUNNING) & (ImportJob.heartbeat_at < now - STALE_AFTER)))
        .values(status=ImportStatus.RUNNING, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if claimed != 1:  # finished, unknown, or another worker is on it
        return
    job = session.get(ImportJob, job_id)
    session.refresh(job)
    for counter in ("done_rows", "created_count", "subscribed_count", "existing_count",
                    "suppressed_count", "invalid_count"):
        setattr(job, counter, 0)
    job.invalid_rows = []
    session.commit()
    size = current_app.config["IMPORT_CHUNK"]
    chunk: list[tuple[int, list[str]]] = []
    header_skipped = not job.has_header
    try:
        for line, row in _rows(_path(job), job.delimiter):
            if not header_skipped:
                header_skipped = True
                continue
            chunk.append((line, row))
            if len(chunk) >= size:
                _import_chunk(session, job, chunk)
                job.done_rows += len(chunk)
                job.heartbeat_at = utcnow()
                session.commit()
                chunk = []
        _import_chunk(session, job, chunk)
        job.done_rows += len(chunk)
        job.status = ImportStatus.DONE
    except (InvalidInput, OSError) as exc:
        session.rollback()
        job = session.get(ImportJob, job_id)
        job.status = ImportStatus.FAILED
        message = getattr(exc, "message", None) or "The file could not be read."
        job.error = message % getattr(exc, "params", {}) if getattr(exc, "params", None) else message
    job.finished_at = utcnow()
    session.commit()
    try:
        os.unlink(_path(job))  # the addresses are in the database now; do not keep a copy
    except FileNotFoundError:
        pass


def progress(session: Session, job_id: int) -> dict[str, Any]:
    """Status and counters of an import for the polling page. Raises NotFound."""
    job = get_job(session, job_id)
    percent = 100 if job.status == ImportStatus.DONE else (
        int(job.done_rows * 100 / job.total_rows) if job.total_rows else 0)
    return {"status": job.status.value, "total": job.total_rows, "done": job.done_rows,
            "percent": min(percent, 100), "created": job.created_count,
            "subscribed": job.subscribed_count, "existing": job.existing_count,
            "suppressed": job.suppressed_count, "invalid": job.invalid_count, "error": job.error}

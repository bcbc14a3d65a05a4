"""The import job: the column mapping chosen by staff, the queued task that imports the file
chunk by chunk with its progress kept in the ImportJob row, and that progress for the page."""

import os
import queue
import threading
from collections.abc import Generator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from .. import jobs
from ..audience import MAX_ATTRIBUTES
from ..errors import Conflict, DomainError, InvalidInput
from ..folding import fold
from ..lookups import get_or_404
from ..models import ImportJob, ImportStatus, MailingList, SubscriptionStatus, utcnow
from ..segments import attribute_key
from ..subscribers import email_hasher
from .bulk import Checked, Stored, analyze, analyze_due, check, known_rows, record, store, store_copied
from .csv_rows import rows
from .upload import stored_path

MAX_CONSENT_SOURCE = 200
STALE_AFTER = timedelta(minutes=10)  # a RUNNING job silent this long is taken over
WRITERS = 2  # PostgreSQL connections writing chunks of one import at once
COUNTERS = ("done_rows", "created_count", "subscribed_count", "existing_count", "suppressed_count",
            "invalid_count")


def recent_jobs(session: Session, limit: int = 20) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


def _column(value: Any, columns: int, field: str, required: bool = False) -> int | None:
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


def _list_ids(session: Session, list_ids: list[Any] | None) -> list[int]:
    try:
        wanted = sorted({int(i) for i in list_ids or []})
    except (TypeError, ValueError) as exc:
        raise InvalidInput("This list does not exist.", "list_ids") from exc
    if not wanted:
        raise InvalidInput("Choose at least one list.", "list_ids")
    found = set(session.scalars(select(MailingList.id).where(MailingList.id.in_(wanted))))
    if found != set(wanted):
        raise InvalidInput("This list does not exist.", "list_ids")
    return wanted


def suggested_attributes(job: ImportJob, header: list[str]) -> str:
    """The mapping offered for the columns that are not the address, name or language: each
    titled column as an attribute named after its title ("4 = dzielnica")."""
    taken = {job.options.get(key) for key in ("email_col", "name_col", "locale_col")}
    lines = []
    for index, title in enumerate(header):
        key = "_".join(fold(title).split())
        key = "".join(ch for ch in key if ch.isalnum() or ch in "_-")[:64]
        if job.has_header and index not in taken and key:
            lines.append(f"{index + 1} = {key}")
    return "\n".join(lines)


def _attribute_columns(raw: Any, columns: int, used: set[int | None]) -> list[list[Any]]:
    """"column number = attribute name" lines as [[index, name]]; raises InvalidInput."""
    mapping: list[list[Any]] = []
    for line in str(raw or "").splitlines():
        if not line.strip():
            continue
        number, sep, key = line.partition("=")
        if not sep or not number.strip().isdigit():
            raise InvalidInput("Write each attribute column as: column number = attribute name.", "attributes")
        index = int(number.strip()) - 1
        if not 0 <= index < columns or index in used:
            raise InvalidInput("Choose a column from the file.", "attributes")
        mapping.append([index, attribute_key(key)])
    if len(mapping) > MAX_ATTRIBUTES:
        raise InvalidInput("A subscriber may have at most 50 attributes.", "attributes")
    return mapping


def start(session: Session, job_id: int, *, email_col: Any, name_col: Any = None,
          locale_col: Any = None, list_ids: list[Any], status: str,
          consent_source: str = "", attributes: Any = "") -> ImportJob:
    """Record the mapping and options and queue "mailer.import_csv". A "confirmed" import
    needs the source of the consent (e.g. "paper form 2025"). ``attributes``: lines of
    "column number = attribute name" (new subscribers get those cells as attributes).
    Raises NotFound, Conflict (already started), InvalidInput."""
    job = get_or_404(session, ImportJob, job_id)
    if job.status != ImportStatus.UPLOADED:
        raise Conflict("This file has already been imported.")
    email_index = _column(email_col, job.columns, "email_col", required=True)
    name_index = _column(name_col, job.columns, "name_col")
    locale_index = _column(locale_col, job.columns, "locale_col")
    try:
        chosen = SubscriptionStatus(status)
    except ValueError as exc:
        raise InvalidInput("Unknown status.", "status") from exc
    if chosen == SubscriptionStatus.UNSUBSCRIBED:
        raise InvalidInput("Unknown status.", "status")
    consent_source = " ".join((consent_source or "").split())
    if chosen == SubscriptionStatus.CONFIRMED and not consent_source:
        raise InvalidInput("Say where the consent of these people is recorded (for example \"paper form 2025\").",
                           "consent_source")
    if len(consent_source) > MAX_CONSENT_SOURCE:
        raise InvalidInput("The consent source is too long.", "consent_source")
    job.options = {"email_col": email_index, "name_col": name_index, "locale_col": locale_index,
                   "list_ids": _list_ids(session, list_ids), "status": chosen.value,
                   "attributes": _attribute_columns(attributes, job.columns, {email_index, name_index, locale_index})}
    job.consent_source = consent_source
    job.status = ImportStatus.QUEUED
    jobs.enqueue(session, "mailer.import_csv", job.id)
    return job


def _claim(session: Session, job_id: int) -> bool:
    """Take a queued job, or a running one whose heartbeat stopped, in one UPDATE; commits."""
    now = utcnow()
    claimed = cast(CursorResult[Any], session.execute(
        update(ImportJob).where(
            ImportJob.id == job_id,
            or_(ImportJob.status == ImportStatus.QUEUED,
                (ImportJob.status == ImportStatus.RUNNING) & (ImportJob.heartbeat_at < now - STALE_AFTER)))
        .values(status=ImportStatus.RUNNING, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )).rowcount
    session.commit()
    return claimed == 1


def _checked_chunks(path: Path, job: ImportJob, size: int, for_copy: bool) -> Generator[Checked, None, None]:
    """The file's rows read and validated chunk by chunk on a thread of their own, at most two
    chunks ahead (memory stays flat): the reading and checking of one chunk (Python) runs
    while the previous one is written (PostgreSQL, the GIL released), on another core. An
    error of the file (InvalidInput, OSError) is raised here, after the chunks before it."""
    options, hasher, delimiter, has_header = job.options, email_hasher(), job.delimiter, job.has_header
    ahead: queue.Queue[Checked | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: Checked | BaseException | None) -> None:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read() -> None:
        try:
            chunk: list[tuple[int, list[str]]] = []
            header_skipped = not has_header
            for line, row in rows(path, delimiter):
                if not header_skipped:
                    header_skipped = True
                    continue
                chunk.append((line, row))
                if len(chunk) >= size:
                    put(check(options, hasher, chunk, for_copy))
                    chunk = []
                if stop.is_set():
                    return
            put(check(options, hasher, chunk, for_copy))
            put(None)
        except BaseException as exc:  # handed to the importing thread, which raises it
            put(exc)

    reader = threading.Thread(target=read, name=f"import-{job.id}-reader", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _write_chunks(session: Session, job: ImportJob, chunks: Iterator[Checked]) -> None:
    """PostgreSQL: the checked chunks written by WRITERS threads, each with a connection of
    its own, a chunk a transaction with its counters added to the job (``bulk.record``);
    the statistics brought up to date from this session as the tables grow. One backend
    was the bound (about 60 us of PostgreSQL CPU a row: index upkeep, the trigram index, the
    foreign-key checks), so two share the work. Returns when every chunk handed over is
    written; raises the first writer's error, or the reader's (the chunks before it written)."""
    engine = session.get_bind()
    job_id, options, consent_source = job.id, dict(job.options), job.consent_source
    work: queue.Queue[Checked | None] = queue.Queue(maxsize=WRITERS)
    written: queue.Queue[int] = queue.Queue()
    failed: list[BaseException] = []

    def write() -> None:
        with Session(engine) as own:
            while (checked := work.get()) is not None:
                if failed:
                    continue  # another writer failed: drain what is handed over, write nothing
                try:
                    stored = store_copied(own, job_id, options, consent_source, checked) if checked.rows \
                        else Stored()
                    record(own, job_id, checked, stored)
                    own.commit()
                    written.put(checked.size)
                except BaseException as exc:
                    own.rollback()
                    failed.append(exc)

    threads = [threading.Thread(target=write, name=f"import-{job_id}-writer-{n}", daemon=True)
               for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    done = analyzed_at = 0  # rows written; when the statistics were last brought up to date
    known = known_rows(session)  # the subscribers they counted then
    try:
        for checked in chunks:
            while not failed:
                try:
                    work.put(checked, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if failed:
                break
            while not written.empty():
                done += written.get()
            # The planner's statistics kept current as the tables grow (autovacuum may be
            # off or late), not gathered again for a table they already describe well.
            if analyze_due(done - analyzed_at, known):
                known, analyzed_at = analyze(session), done
    finally:
        for _thread in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    if failed:
        raise failed[0]
    while not written.empty():
        done += written.get()
    if analyze_due(done - analyzed_at, known, last=True):
        analyze(session)


def _store_chunks(session: Session, job: ImportJob, chunks: Iterator[Checked]) -> None:
    """SQLite (one writer at a time): each chunk written and counted in a transaction of its own."""
    for checked in chunks:
        store(session, job, checked)
        job.done_rows += checked.size
        job.heartbeat_at = utcnow()
        session.commit()


def run(session: Session, job_id: int) -> None:
    """Task body of "mailer.import_csv": import a queued job chunk by chunk, committing the
    progress after each chunk. Safe to run twice: the job is claimed atomically (a second
    run returns at once unless the first one's heartbeat stopped) and inserts skip what
    exists. A file that became unreadable marks the job failed, with the reason."""
    if not _claim(session, job_id):  # finished, unknown, or another worker is on it
        return
    job = session.get_one(ImportJob, job_id)
    session.refresh(job)
    for counter in COUNTERS:
        setattr(job, counter, 0)
    job.invalid_rows = []
    session.commit()
    for_copy = session.get_bind().dialect.name == "postgresql"
    chunks = _checked_chunks(stored_path(job), job, current_app.config["IMPORT_CHUNK"], for_copy)
    try:
        if for_copy:
            _write_chunks(session, job, chunks)
            session.expire(job)  # its counters were added by the writers
        else:
            _store_chunks(session, job, chunks)
        job.status = ImportStatus.DONE
    except (InvalidInput, OSError) as exc:
        session.rollback()
        job = session.get_one(ImportJob, job_id)
        job.status = ImportStatus.FAILED
        # The reason as a message id and its parameters: the page shows it in its language.
        if isinstance(exc, DomainError):
            job.error, job.error_params = exc.msgid, exc.params
        else:
            job.error, job.error_params = "The file could not be read.", {}
    finally:
        chunks.close()  # the reader thread stopped and joined, whatever happened
    job.finished_at = utcnow()
    session.commit()
    try:
        os.unlink(stored_path(job))  # the addresses are in the database now; do not keep a copy
    except FileNotFoundError:
        pass


def progress(session: Session, job_id: int) -> dict[str, Any]:
    """Status and counters of an import for the polling page. Raises NotFound."""
    job = get_or_404(session, ImportJob, job_id)
    percent = 100 if job.status == ImportStatus.DONE else (
        int(job.done_rows * 100 / job.total_rows) if job.total_rows else 0)
    return {"status": job.status.value, "total": job.total_rows, "done": job.done_rows,
            "percent": min(percent, 100), "created": job.created_count,
            "subscribed": job.subscribed_count, "existing": job.existing_count,
            "suppressed": job.suppressed_count, "invalid": job.invalid_count}

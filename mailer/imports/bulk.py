"""One chunk of imported rows: checked (``check``, no database needed), then stored
(``store``) in a few set-based statements: subscribers, subscriptions and consent records,
each an INSERT ... ON CONFLICT DO NOTHING. PostgreSQL takes the rows with COPY into a
temporary table and merges them from there; SQLite through SQLAlchemy's executemany."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from ..consent import MAX_WORDING, keep_text, text_hash
from ..errors import InvalidInput
from ..folding import subscriber_text
from ..models import ConsentRecord, ImportJob, Subscriber, Subscription, SubscriptionStatus, Suppression, utcnow
from ..statements import on_its_own
from ..subscribers import MAX_NAME, clean_name, normalize_email

ANALYZED = ("subscribers", "subscriptions", "consent_records")
ANALYZE_FIRST = 20_000  # rows imported before the statistics are worth bringing up to date


def analyze(session: Session) -> int:
    """Bring the planner's statistics of the tables an import fills up to date (PostgreSQL;
    a first large import into a freshly vacuumed table otherwise crawls on plans made for an
    empty one). Commits what came before; returns the subscribers the planner now knows of."""
    session.commit()
    for table in ANALYZED:
        session.execute(text(f"ANALYZE {table}"))
    session.commit()
    return known_rows(session)


def known_rows(session: Session) -> int:
    """The subscribers the planner's statistics count (0 when never gathered); read on its
    own when ``session`` has no transaction, so none is left open while the import runs."""
    [(rows,)] = on_its_own(session, _KNOWN_ROWS, {})
    return max(int(rows), 0)


_KNOWN_ROWS = text("SELECT reltuples FROM pg_class WHERE oid = 'subscribers'::regclass")


def analyze_due(written: int, known: int, *, last: bool = False) -> bool:
    """Whether ``written`` rows imported since the statistics counted ``known`` subscribers
    make them worth gathering again (an ANALYZE of the three tables took 1.8 s at two million
    subscribers): while importing, once the table may have doubled (plans made for a table half
    its size are the ones that crawl); at the end, once it grew by a tenth, as autovacuum's
    default would, so the staff pages plan on current figures without waiting for it."""
    return written >= max(ANALYZE_FIRST, known // 10 if last else known)


MAX_INVALID_KEPT = 1000  # invalid rows listed in the report (all are counted)
MAX_ATTRIBUTE = 500
LOCALES = ("pl", "en")


def bulk_insert(session: Session, model, rows: list[dict[str, Any]], *, conflict: list[str],
                returning: Sequence[str] = ()) -> list[Any]:
    """SQLite: INSERT ... ON CONFLICT DO NOTHING [RETURNING] of many rows, an executemany with
    SQLAlchemy's "insertmanyvalues" batching."""
    if not rows:
        return []
    table = model.__table__
    connection = session.connection()
    statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
    if returning:
        return list(connection.execute(statement.returning(*(table.c[name] for name in returning)), rows))
    connection.execute(statement, rows)
    return []


# One valid row: address, its keyed hash, name, language, attributes, search text.
Row = tuple[str, str, str, str, dict[str, str], str]
# COPY's text format: a backslash, tab, line feed or carriage return in a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_COLUMNS = 7


@dataclass
class Checked:
    """One chunk of rows, validated (no database needed: ``check`` runs while the previous
    chunk is being written): the first valid row of each address, the refused ones, and on
    PostgreSQL those rows already in COPY's text format."""

    size: int  # rows read
    rows: dict[str, Row]
    invalid: list[list[Any]] = field(default_factory=list)  # [line, message id], at most MAX_INVALID_KEPT
    invalid_count: int = 0
    repeated: int = 0  # an address met earlier in the chunk
    copy_data: bytes = b""


@dataclass
class Stored:
    """What writing a chunk's valid rows did."""

    created: int = 0
    existing: int = 0  # the address was there already
    suppressed: int = 0
    subscribed: int = 0  # subscriptions added (each with its consent record)


def check(options: dict[str, Any], hasher: Callable[[str], str], chunk: list[tuple[int, list[str]]],
          for_copy: bool = False) -> Checked:
    """Validate a chunk of (line, cells) by the job's ``options`` (the same rules as every
    sign-up), keep the first row of each address; ``for_copy``: also as COPY text."""
    email_col, name_col, locale_col = options["email_col"], options["name_col"], options["locale_col"]
    mapped = options.get("attributes") or []
    width = 1 + max(index for index in (email_col, name_col, locale_col, *(i for i, _ in mapped))
                    if index is not None)
    normalize = normalize_email.__wrapped__  # no cache: each address comes once
    result = Checked(size=len(chunk), rows={})
    fresh = result.rows
    for line, row in chunk:
        if len(row) < width:  # a short row: the missing cells are empty
            row = row + [""] * (width - len(row))
        try:
            email = normalize(row[email_col])
            if email in fresh:
                result.repeated += 1
                continue
            # the same rules as every sign-up: no control characters reach a To: header
            name = clean_name(" ".join(row[name_col].split())[:MAX_NAME]) if name_col is not None else ""
        except InvalidInput as exc:
            result.invalid_count += 1
            if len(result.invalid) < MAX_INVALID_KEPT:
                result.invalid.append([line, exc.msgid])  # translated on the page
            continue
        locale = row[locale_col].strip().lower()[:2] if locale_col is not None else ""
        attributes = {key: value[:MAX_ATTRIBUTE] for index, key in mapped if (value := " ".join(row[index].split()))}
        fresh[email] = (email, hasher(email), name, locale if locale in LOCALES else "pl", attributes,
                        subscriber_text(email, name))
    if for_copy and fresh:
        result.copy_data = _copy_text(fresh, bool(mapped))
    return result


def _copy_text(fresh: dict[str, Row], mapped: bool) -> bytes:
    """The rows in COPY's text format: a tab between values, a line each. No value holds a tab
    or a line break after the checks (whitespace runs are folded, control characters refused,
    JSON escapes them), so a backslash is the only character to escape, in one pass over the
    whole text; were a tab or line break in a value after all, each value is escaped."""
    lines = [f"{n}\t{email}\t{hashed}\t{name}\t{locale}\t{json.dumps(attributes) if mapped else '{}'}\t{search}\n"
             for n, (email, hashed, name, locale, attributes, search) in enumerate(fresh.values())]
    text = "".join(lines)
    if text.count("\n") != len(lines) or text.count("\t") != (COPY_COLUMNS - 1) * len(lines) or "\r" in text:
        text = "".join(["\t".join([str(n), *(str(value).translate(_COPY_ESCAPES) for value in (
            email, hashed, name, locale, json.dumps(attributes) if mapped else "{}", search))]) + "\n"
            for n, (email, hashed, name, locale, attributes, search) in enumerate(fresh.values())])
    elif "\\" in text:
        text = text.replace("\\", "\\\\")
    return text.encode()


def store(session: Session, job: ImportJob, checked: Checked) -> None:
    """Count a checked chunk into the job and insert its rows (``check`` with ``for_copy``
    on PostgreSQL)."""
    job.invalid_count += checked.invalid_count
    room = MAX_INVALID_KEPT - len(job.invalid_rows)
    if checked.invalid and room > 0:
        job.invalid_rows = job.invalid_rows + checked.invalid[:room]
    job.existing_count += checked.repeated
    if not checked.rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        stored = store_copied(session, job.id, job.options, job.consent_source, checked)
        job.created_count += stored.created
        job.existing_count += stored.existing
        job.suppressed_count += stored.suppressed
        job.subscribed_count += stored.subscribed
    else:
        _store(session, job, checked.rows)


def record(session: Session, job_id: int, checked: Checked, stored: Stored) -> None:
    """Add a chunk written by ``store_copied`` to its job's counters in one UPDATE (two
    connections write the chunks of one job at once): the invalid lines merged under the row
    lock, the first MAX_INVALID_KEPT of the file kept whatever order the chunks commit in."""
    values: dict[str, Any] = {
        "done_rows": ImportJob.done_rows + checked.size, "heartbeat_at": utcnow(),
        "invalid_count": ImportJob.invalid_count + checked.invalid_count,
        "existing_count": ImportJob.existing_count + checked.repeated + stored.existing,
        "created_count": ImportJob.created_count + stored.created,
        "suppressed_count": ImportJob.suppressed_count + stored.suppressed,
        "subscribed_count": ImportJob.subscribed_count + stored.subscribed}
    if checked.invalid:
        kept = session.scalar(select(ImportJob.invalid_rows).where(ImportJob.id == job_id).with_for_update())
        values["invalid_rows"] = sorted([*(kept or []), *checked.invalid])[:MAX_INVALID_KEPT]
    session.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values)
                    .execution_options(synchronize_session=False))


STAGING = ("DROP TABLE IF EXISTS pg_temp.import_rows; CREATE TEMPORARY TABLE import_rows (n integer, email text,"
           " email_hash text, name text, locale text, attributes text, search_text text) ON COMMIT DROP")


def store_copied(session: Session, job_id: int, options: dict[str, Any], consent_source: str,
                 checked: Checked) -> Stored:
    """PostgreSQL: the rows streamed with COPY into a temporary table that lives until the
    commit, then merged from there: suppressed ones deleted, subscribers, then subscriptions
    and their consent records in one statement. No per-row parameters: the unnest() arrays
    and IN lists of 5,000 values before cost about 60 us of Python a row (issue 14).

    Safe with another connection writing another chunk of the same file at once: addresses
    are inserted in their order and subscriptions in (subscriber, list) order, so two
    transactions that meet on the same rows wait for each other in the same order, never in
    a circle (a deadlock)."""
    result = Stored()
    now = utcnow()
    status = SubscriptionStatus(options["status"])
    total = len(checked.rows)
    connection = session.connection()
    connection.exec_driver_sql(STAGING)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy("COPY import_rows (n, email, email_hash, name, locale, attributes, search_text)"
                     " FROM STDIN") as copy:
        copy.write(checked.copy_data)
    suppressed = cast(CursorResult[Any], session.execute(text(
        "DELETE FROM import_rows r USING suppressions s WHERE s.email_hash = r.email_hash"))).rowcount
    result.suppressed = suppressed
    if suppressed == total:
        return result
    created = cast(CursorResult[Any], session.execute(text(
        "INSERT INTO subscribers (email, email_hash, name, locale, attributes, search_text, confirm_sent_today,"
        " created_at, updated_at)"
        " SELECT email, email_hash, name, locale, CAST(attributes AS json), search_text, 0, :now, :now"
        " FROM import_rows ORDER BY email ON CONFLICT (email) DO NOTHING"), {"now": now})).rowcount
    result.created, result.existing = created, total - suppressed - created
    # The wording's hash as keep_text() makes it; the wording itself is kept below once a
    # subscription was added. Each address is looked up once by a subquery (an index probe;
    # a join chose to hash the whole subscribers table for every chunk, 130 ms at 100,000),
    # in a MATERIALIZED CTE (inlined, the probe ran twice a row and with three lists the
    # estimate passed jit_above_cost); one erased meanwhile is skipped.
    stated = text_hash(consent_source[:MAX_WORDING]) if consent_source else ""
    added = cast(CursorResult[Any], session.execute(text(
        "WITH found AS MATERIALIZED (SELECT r.n, (SELECT s.id FROM subscribers s WHERE s.email = r.email) AS id"
        "  FROM import_rows r),"
        " added AS (INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)"
        "  SELECT f.id, l.id, :status, :now, :confirmed_at"
        "  FROM found f CROSS JOIN unnest(CAST(:lists AS integer[])) AS l(id) WHERE f.id IS NOT NULL"
        "  ORDER BY f.id, l.id"
        "  ON CONFLICT (subscriber_id, list_id) DO NOTHING RETURNING subscriber_id, list_id)"
        " INSERT INTO consent_records (subscriber_id, list_id, action, source, consent_version, consent_text, ip,"
        " user_agent, created_at)"
        " SELECT subscriber_id, list_id, :action, 'import', :version, :stated, '', '', :now FROM added"),
        {"status": status.value, "now": now, "confirmed_at": now if status == SubscriptionStatus.CONFIRMED else None,
         "lists": options["list_ids"], "action": f"import-{status.value}", "version": f"import:{job_id}",
         "stated": stated})).rowcount
    result.subscribed = added
    if added and consent_source:
        keep_text(session, consent_source)
    return result


def _store(session: Session, job: ImportJob, fresh: dict[str, Row]) -> None:
    """SQLite: INSERT ... ON CONFLICT DO NOTHING of the rows, through SQLAlchemy's batching."""
    options = job.options
    now = utcnow()
    hashes = [row[1] for row in fresh.values()]
    suppressed = set(session.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))))
    if suppressed:
        job.suppressed_count += sum(1 for row in fresh.values() if row[1] in suppressed)
        fresh = {e: row for e, row in fresh.items() if row[1] not in suppressed}
        if not fresh:
            return
    created = bulk_insert(session, Subscriber, [
        {"email": email, "email_hash": hashed, "name": name, "locale": locale, "attributes": attributes,
         "search_text": search, "confirm_sent_today": 0, "created_at": now, "updated_at": now}
        for email, hashed, name, locale, attributes, search in fresh.values()],
        conflict=["email"], returning=["id"])
    job.created_count += len(created)
    job.existing_count += len(fresh) - len(created)
    ids = list(session.scalars(select(Subscriber.id).where(Subscriber.email.in_(list(fresh)))))
    status = SubscriptionStatus(options["status"])
    confirmed_at = now if status == SubscriptionStatus.CONFIRMED else None
    pairs = [{"subscriber_id": sid, "list_id": lid, "status": status.value, "created_at": now,
              "confirmed_at": confirmed_at} for sid in ids for lid in options["list_ids"]]
    added = bulk_insert(session, Subscription, pairs, conflict=["subscriber_id", "list_id"],
                        returning=["subscriber_id", "list_id"])
    job.subscribed_count += len(added)
    stated = keep_text(session, job.consent_source) if added and job.consent_source else ""
    bulk_insert(session, ConsentRecord, [
        {"subscriber_id": sid, "list_id": lid, "action": f"import-{status.value}", "source": "import",
         "consent_version": f"import:{job.id}", "consent_text": stated, "ip": "", "user_agent": "",
         "created_at": now}
        for sid, lid in added], conflict=["id"])

"""One chunk of imported rows into the database in a few set-based statements: subscribers,
subscriptions and consent records, each an INSERT ... ON CONFLICT DO NOTHING."""

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..consent import keep_text
from ..errors import InvalidInput
from ..folding import subscriber_text
from ..models import ConsentRecord, ImportJob, Subscriber, Subscription, SubscriptionStatus, Suppression, utcnow
from ..subscribers import MAX_NAME, clean_name, email_hash, normalize_email

ANALYZED = ("subscribers", "subscriptions", "consent_records")


def analyze(session: Session) -> None:
    """Bring the planner's statistics of the tables an import fills up to date (PostgreSQL;
    a first large import into a freshly vacuumed table otherwise crawls on plans made for an
    empty one). Commits what came before."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.commit()
    for table in ANALYZED:
        session.execute(text(f"ANALYZE {table}"))
    session.commit()

MAX_INVALID_KEPT = 1000  # invalid rows listed in the report (all are counted)
MAX_ATTRIBUTE = 500
LOCALES = ("pl", "en")


def bulk_insert(session: Session, model, rows: list[dict[str, Any]], *, varying: list[str],
                 conflict: list[str], returning: Sequence[str] = ()) -> list[Any]:
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
            return list(connection.execute(statement.returning(*(table.c[name] for name in returning)),
                                           rows))
        connection.execute(statement, rows)
        return []
    dialect = postgresql.dialect()
    pg_type = {c.name: c.type.compile(dialect=dialect) for c in table.columns}
    constant = [name for name in rows[0] if name not in varying]
    params: dict[str, Any] = {}
    for name in varying:
        values = [row[name] for row in rows]
        is_json = isinstance(table.c[name].type, JSON)
        params[f"a_{name}"] = [json.dumps(value) for value in values] if is_json else values
    params |= {f"k_{name}": json.dumps(rows[0][name]) if isinstance(table.c[name].type, JSON)
               else rows[0][name] for name in constant}
    arrays = ", ".join(f"CAST(:a_{name} AS {pg_type[name]}[])" for name in varying)
    selected = [f"t.{name}" for name in varying] + [f"CAST(:k_{name} AS {pg_type[name]})" for name in constant]
    sql = (f"INSERT INTO {table.name} ({', '.join(varying + constant)}) SELECT {', '.join(selected)} "
           f"FROM unnest({arrays}) AS t({', '.join(varying)}) "
           f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING")
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
        return list(connection.execute(text(sql), params))
    connection.execute(text(sql), params)
    return []


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def import_chunk(session: Session, job: ImportJob, chunk: list[tuple[int, list[str]]]) -> None:
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
                job.invalid_rows = job.invalid_rows + [[line, exc.msgid]]  # translated on the page
            continue
        if email in fresh:
            job.existing_count += 1
            continue
        try:  # the same rules as every sign-up: no control characters reach a To: header
            name = clean_name(" ".join(_cell(row, options["name_col"]).split())[:MAX_NAME])
        except InvalidInput as exc:
            job.invalid_count += 1
            if len(job.invalid_rows) < MAX_INVALID_KEPT:
                job.invalid_rows = job.invalid_rows + [[line, exc.msgid]]
            continue
        locale = _cell(row, options["locale_col"]).lower()[:2]
        attributes = {key: value[:MAX_ATTRIBUTE] for index, key in options.get("attributes") or []
                      if (value := " ".join(_cell(row, index).split()))}
        fresh[email] = {"email": email, "email_hash": email_hash(email), "name": name,
                        "locale": locale if locale in LOCALES else "pl", "attributes": attributes,
                        "search_text": subscriber_text(email, name),
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
    varying = ["email", "email_hash", "name", "locale", "search_text"]
    if options.get("attributes"):
        varying.append("attributes")
    created = bulk_insert(session, Subscriber, list(fresh.values()), conflict=["email"], returning=["id"],
                          varying=varying)
    job.created_count += len(created)
    job.existing_count += len(fresh) - len(created)
    ids = list(session.scalars(select(Subscriber.id).where(Subscriber.email.in_(list(fresh)))))
    status = SubscriptionStatus(options["status"])
    confirmed_at = now if status == SubscriptionStatus.CONFIRMED else None
    pairs = [{"subscriber_id": sid, "list_id": lid, "status": status.value, "created_at": now,
              "confirmed_at": confirmed_at} for sid in ids for lid in options["list_ids"]]
    added = bulk_insert(session, Subscription, pairs, varying=["subscriber_id", "list_id"],
                         conflict=["subscriber_id", "list_id"], returning=["subscriber_id", "list_id"])
    job.subscribed_count += len(added)
    stated = keep_text(session, job.consent_source) if added and job.consent_source else ""
    bulk_insert(session, ConsentRecord, [
        {"subscriber_id": sid, "list_id": lid, "action": f"import-{status.value}", "source": "import",
         "consent_version": f"import:{job.id}", "consent_text": stated, "ip": "", "user_agent": "",
         "created_at": now}
        for sid, lid in added], varying=["subscriber_id", "list_id"], conflict=["id"])

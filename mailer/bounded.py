"""Reads that take a bounded time at any size of table, for the staff's pages: a statement
run under a statement timeout in a savepoint (PostgreSQL cancels it, the transaction goes on),
counts that are exact only up to a limit (past it, or past their time, the planner's
estimate on PostgreSQL), and pages found by their key (keyset) rather than an OFFSET."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg.errors import QueryCanceled
from sqlalchemy import Select, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

T = TypeVar("T")


def within(session: Session, run: Callable[[], T], seconds: float) -> T | None:
    """PostgreSQL: what ``run`` returns, or None when a statement it runs took longer than
    ``seconds`` (the server cancels it; its savepoint is rolled back and the transaction goes
    on with the statement timeout it had)."""
    try:
        with session.begin_nested():
            before = session.execute(text(  # the select list is read left to right: the old value first
                "SELECT current_setting('statement_timeout'), set_config('statement_timeout', :ms, true)"),
                {"ms": str(max(1, int(seconds * 1000)))}).scalar()
            found = run()
            session.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": before})
            return found
    except OperationalError as exc:
        if isinstance(exc.orig, QueryCanceled):
            return None
        raise


def count(session: Session, rows: Select, limit: int, seconds: float) -> tuple[int, bool]:
    """How many rows ``rows`` selects: exact up to ``limit``. Past it, on PostgreSQL the
    planner's estimate, and the same when counting took longer than ``seconds``; on SQLite
    ``limit`` (shown as "more than"). Returns (figure, exact?)."""
    limited = select(func.count()).select_from(rows.limit(limit + 1).subquery())
    if session.get_bind().dialect.name != "postgresql":
        found = session.scalar(limited) or 0
        return (found, True) if found <= limit else (limit, False)
    counted = within(session, lambda: session.scalar(limited), seconds) if seconds > 0.001 else None
    if counted is not None and counted <= limit:
        return counted, True
    compiled = rows.compile(session.get_bind())
    plan = session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar()
    estimate = int(plan[0]["Plan"]["Plan Rows"]) if plan else limit
    if counted is None:
        return estimate, False
    return (estimate, False) if estimate > limit else (limit, False)  # an estimate below what was seen: "more than"


@dataclass
class Page:
    """One page, newest (highest key) first; ``total`` exact when ``total_exact``, else the
    estimate or a lower bound (``count``); the keys to ask for the next and previous pages."""

    rows: list[Any]
    total: int
    total_exact: bool
    next_after: int | None = None
    prev_before: int | None = None


def keyset(session: Session, statement: Select, key, key_of: Callable[[Any], int], *, after: int | None,
           before: int | None, per_page: int, scalars: bool = True) -> tuple[list[Any], int | None, int | None]:
    """One page of ``statement`` by its integer ``key`` column, newest first: those below
    ``after`` (the next, older page), those just above ``before`` (the previous one), or the
    newest. A page costs the same at any depth (an index range read, not an OFFSET). Returns
    the rows (``scalars``: entities, else rows), and the ``after`` and ``before`` of the pages
    next to it (None at either end); ``key_of`` gives a row's key."""
    run = session.scalars if scalars else session.execute
    if before is not None:
        rows = list(run(statement.where(key > before).order_by(key.asc()).limit(per_page + 1)))
        newer = len(rows) > per_page
        rows = list(reversed(rows[:per_page]))
        return rows, (key_of(rows[-1]) if rows else None), (key_of(rows[0]) if rows and newer else None)
    if after is not None:
        statement = statement.where(key < after)
    rows = list(run(statement.order_by(key.desc()).limit(per_page + 1)))
    more = len(rows) > per_page
    rows = rows[:per_page]
    newest = key_of(rows[0]) if after is not None and rows else None
    return rows, (key_of(rows[-1]) if rows and more else None), newest

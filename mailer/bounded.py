"""Reads that take a bounded time at any size of table, for the staff's pages: a statement
run under a statement timeout in a savepoint (PostgreSQL cancels it, the transaction goes on),
and counts that are exact only up to a limit (past it, or past their time, the planner's
estimate on PostgreSQL)."""

from collections.abc import Callable
from typing import TypeVar

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

"""Helpers for statements built once (per dialect) with bind parameters and run through
Core on hot paths (``deliveries``, ``notices``): building and keying an SQLAlchemy
statement costs more CPU than running a small one."""

from sqlalchemy import BigInteger, Engine, Row, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, scoped_session


def param(name: str, column):
    """A bind parameter typed like ``column`` (so its values are processed alike)."""
    return bindparam(name, type_=column.type)


def in_list(dialect: str, column, name: str, value=None, item_type=BigInteger):
    """``column`` in the list parameter ``name``: one array parameter on PostgreSQL (a list
    of hundreds of parameters cost more to send and plan than the update itself), an
    expanding IN list on SQLite. ``value`` None: given when the statement runs."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, value, type_=ARRAY(item_type)))
    return column.in_(bindparam(name, value, expanding=True))


def on_its_own(session: Session | scoped_session, statement, params: dict) -> list[Row]:
    """Run one statement and return its rows: in ``session``'s transaction when it has
    begun one, else on its own (autocommit), where a statement is atomic by itself and costs
    one round trip instead of three (BEGIN, it, COMMIT; on the public sign-up, BEGIN and
    COMMIT were a sixth of a web worker's CPU). The caller's commit has nothing left to do."""
    current = session() if isinstance(session, scoped_session) else session
    if current.in_transaction():
        return list(current.execute(statement, params))
    engine = current.get_bind()
    assert isinstance(engine, Engine)  # the app's sessions are bound to its engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return list(conn.execute(statement, params))

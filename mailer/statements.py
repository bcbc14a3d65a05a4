"""Helpers for statements built once (per dialect) with bind parameters and run through
Core on hot paths (``deliveries``, ``notices``): building and keying an SQLAlchemy
statement costs more CPU than running a small one."""

from sqlalchemy import BigInteger, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


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

"""One row by its key, or NotFound naming what is missing: the one lookup every domain
function and view uses for "this id must exist"."""

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from .errors import InvalidInput, NotFound
from .models import Campaign, Event, ImportJob, MailingList, Subscriber, Template, User

T = TypeVar("T")
MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL

MISSING: dict[type, str] = {
    Campaign: "This campaign does not exist.",
    Event: "This event does not exist.",
    ImportJob: "This import does not exist.",
    MailingList: "This list does not exist.",
    Subscriber: "This subscriber does not exist.",
    Template: "This template does not exist.",
    User: "This staff account does not exist.",
}


def get_or_404(session: Session, model: type[T], key: Any) -> T:
    """The ``model`` row with primary key ``key``; raises NotFound (its message names the kind
    of thing) when there is none, or when ``key`` is not an id any row could have (a number
    past the column's range, which PostgreSQL would refuse as an error)."""
    if isinstance(key, bool) or (isinstance(key, int) and not 0 <= key <= MAX_ID):
        raise NotFound(MISSING.get(model, "This item does not exist."))
    item = session.get(model, key)
    if item is None:
        raise NotFound(MISSING.get(model, "This item does not exist."))
    return item


def parse_id(value: Any, field: str | None = None) -> int:
    """A form or JSON value as a row id (1 .. MAX_ID); raises InvalidInput otherwise."""
    if isinstance(value, bool):
        raise InvalidInput("Expected a list of ids.", field)
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 10:
            raise InvalidInput("Expected a list of ids.", field)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput("Expected a list of ids.", field) from None
    if not 1 <= number <= MAX_ID:
        raise InvalidInput("Expected a list of ids.", field)
    return number

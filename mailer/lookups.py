"""One row by its key, or NotFound naming what is missing: the one lookup every domain
function and view uses for "this id must exist"."""

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from .errors import NotFound
from .models import Campaign, Event, ImportJob, MailingList, Subscriber, Template, User

T = TypeVar("T")

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
    of thing) when there is none."""
    item = session.get(model, key)
    if item is None:
        raise NotFound(MISSING.get(model, "This item does not exist."))
    return item

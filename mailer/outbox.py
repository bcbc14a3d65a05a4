"""The local outbox folder (mail written as .eml files while no SMTP server is configured),
read by staff: pages of messages newest first, by keyset, and a search by recipient or
subject. File names begin with the time they were written, so their order is the time order
and a name is the page's key."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

NAME = re.compile(r"^[0-9A-Za-z_.-]+\.eml$")
PAGE = 50
MAX_QUERY = 200
MAX_SCAN = 5000  # files read for one page at most; a search goes on from there on the next


@dataclass
class Item:
    name: str
    subject: str
    to: str
    date: datetime | None  # the page formats it in its own language and time zone
    message: EmailMessage


@dataclass
class Page:
    items: list[Item] = field(default_factory=list)
    newer: str | None = None  # the key of the page before this one (``after=``), if any
    older: str | None = None  # the key of the page after this one (``before=``), if any


def read(path: Path) -> Item:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    return Item(name=path.name, subject=str(message.get("Subject", "")), to=str(message.get("To", "")),
                date=_date(message), message=message)


def _date(message: EmailMessage) -> datetime | None:
    """The Date header's time; None when it is missing or unreadable."""
    try:
        header = message.get("Date")
        return getattr(header, "datetime", None) if header is not None else None
    except (TypeError, ValueError):
        return None


def _matches(item: Item, query: str) -> bool:
    return not query or query in item.to.casefold() or query in item.subject.casefold() \
        or query in str(item.message.get("Delivered-To", "")).casefold()


def page(folder: Path, visible: Callable[[Item], bool], *, query: str = "", before: str | None = None,
         after: str | None = None, size: int | None = None) -> Page:
    """A page of the messages ``visible`` lets through whose recipient or subject contains
    ``query`` (any case), newest first: those older than ``before``, or the ones just newer
    than ``after``, or the newest. A key that is not a file name is ignored."""
    size = size or PAGE
    query = (query or "").strip().casefold()[:MAX_QUERY]
    before = before if before and NAME.match(before) else None
    after = after if after and NAME.match(after) else None
    names = sorted((p.name for p in folder.glob("*.eml")), reverse=after is None) if folder.is_dir() else []
    if after is not None:
        names = [n for n in names if n > after]  # oldest first: the page just above ``after``
    elif before is not None:
        names = [n for n in names if n < before]
    found: list[Item] = []
    stopped = False
    for scanned, name in enumerate(names, 1):
        if scanned > MAX_SCAN:
            stopped = True
            break
        try:
            item = read(folder / name)
        except OSError:  # removed meanwhile (an erasure)
            continue
        if visible(item) and _matches(item, query):
            found.append(item)
            if len(found) > size:
                break
    more = len(found) > size
    found = found[:size]
    if after is not None:
        found.reverse()
        return Page(found, newer=found[0].name if more else None, older=found[-1].name if found else None)
    older = found[-1].name if more else None
    if stopped and not more:  # not all read: the next page goes on from here
        older = names[MAX_SCAN - 1]
    return Page(found, newer=found[0].name if before is not None and found else None, older=older)

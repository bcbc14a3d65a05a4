"""The staff's view of the audience: search, one subscriber's page, attributes and tags, data
export and erasure.

Search is built for a million subscribers: a page is found by its last id (keyset: page
1,000 costs what page 1 does, the primary key's index read backwards), the total is
counted exactly only up to COUNT_LIMIT (past it, "more than"), and text is matched as a
substring of the folded address and name (``mailer.folding``; a pg_trgm index on
PostgreSQL), so "Łukasz", "lukasz" and "ŁUKASZ" find each other on both databases.
"""

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json import encoder as json_encoder
from json import scanner as json_scanner
from typing import Any

from flask import current_app
from sqlalchemy import Select, Text, and_, cast, delete, exists, func, select, text
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.sql.elements import ColumnElement

from . import bounded, csv_export, suppression
from . import segments as segments_
from .errors import InvalidInput
from .folding import fold
from .lookups import get_or_404
from .mail.transport import forget_recipient
from .models import (
    BounceEvent,
    Campaign,
    Category,
    ConsentRecord,
    Delivery,
    MailingList,
    Notice,
    Role,
    Segment,
    Subscriber,
    SubscriberTag,
    Subscription,
    SubscriptionStatus,
    subscriber_interests,
)

MAX_QUERY = 200
MAX_PER_PAGE = 200
COUNT_LIMIT = 10_000  # SQLite: totals above this are shown as "more than 10,000"
EXACT_LIMIT = 1_000  # PostgreSQL: totals above this are the planner's estimate ("about")
COUNT_SECONDS = 0.015  # PostgreSQL: how long counting a selection may take before its estimate is shown
PAGE_SECONDS = 0.05  # a segment's page: reading its rows (by windows), then counting them
DIRECT_SECONDS = 0.035  # another filtered page's plain query (PostgreSQL), before windows are read ...
FALLBACK_SECONDS = 0.03  # ... for this long, then the rows counted
SCAN_MARGIN = 0.005  # ... and the windows leave at least this much for the count
FIRST_WINDOW = 5_000  # ids read by the first window, given the whole PAGE_SECONDS
MIN_WINDOW = 1_000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 500
MAX_TAGS = 50
MAX_PAGE = 1_000_000


def _status(status: str | None) -> SubscriptionStatus | None:
    if not status:
        return None
    try:
        return SubscriptionStatus(status)
    except ValueError as exc:
        raise InvalidInput("Unknown status.", "status") from exc


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Selection:
    """Who a search, a bulk action or an export is about: an address or name fragment, a
    list and a subscription status, a tag, a saved segment (all optional, combined with AND)."""

    query: str = ""
    list_id: int | None = None
    status: str | None = None
    tag: str | None = None
    segment_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value not in (None, "")}

    @property
    def everyone(self) -> bool:
        return not self.as_dict()


def selection(query: str = "", list_id: int | None = None, status: str | None = None, tag: str | None = None,
              segment_id: int | None = None) -> Selection:
    """A checked Selection; raises InvalidInput (overlong text, unknown status, bad tag)."""
    query = (query or "").strip()
    if len(query) > MAX_QUERY:
        raise InvalidInput("The search text is too long.", "query")
    _status(status)
    return Selection(query=query, list_id=list_id, status=status or None,
                     tag=segments_.tag_name(tag) if tag else None, segment_id=segment_id)


def where(session: Session, chosen: Selection, membership: bool = True) -> list[ColumnElement[bool]]:
    """WHERE clauses on Subscriber for a selection (``membership``: the list and status
    filter as an EXISTS; the export joins subscriptions itself). Raises InvalidInput for an
    unknown segment."""
    clauses: list[ColumnElement[bool]] = []
    if chosen.query:
        clauses.append(Subscriber.search_text.like("%" + _escape(fold(chosen.query)) + "%", escape="\\"))
    wanted = _status(chosen.status)
    if membership and (chosen.list_id is not None or wanted is not None):
        cond = [Subscription.subscriber_id == Subscriber.id]
        if chosen.list_id is not None:
            cond.append(Subscription.list_id == chosen.list_id)
        if wanted is not None:
            cond.append(Subscription.status == wanted)
        clauses.append(exists().where(and_(*cond)))
    if chosen.tag:
        clauses.append(exists().where(SubscriberTag.subscriber_id == Subscriber.id,
                                      SubscriberTag.tag == chosen.tag))
    if chosen.segment_id is not None:
        segment = session.get(Segment, chosen.segment_id)
        if segment is None:
            raise InvalidInput("One of the chosen segments does not exist.", "segment_id")
        clauses.append(segments_.segment_where(segment))
    return clauses


@dataclass
class SearchPage:
    """One page of a search, newest first. ``total`` is exact when ``total_exact``, else a
    lower bound (COUNT_LIMIT) or, for the whole audience, the database's estimate.
    ``next_after`` and ``prev_before`` are the ids to ask for the next and previous pages."""

    rows: list[Subscriber]
    total: int
    total_exact: bool
    next_after: int | None = None
    prev_before: int | None = None
    tags: dict[int, list[str]] = field(default_factory=dict)
    # The id a filtered page's windows reached when its time ran out before it was full: the
    # rows shown are all the matches between the page's start and it (see ``_by_windows``).
    scanned_to: int | None = None


def count(session: Session, clauses: list, deadline: float | None = None) -> tuple[int, bool]:
    """How many subscribers match: exact up to COUNT_LIMIT (PostgreSQL: EXACT_LIMIT), past
    it the planner's estimate on PostgreSQL (shown as "about"), COUNT_LIMIT on SQLite
    ("more than"). On PostgreSQL counting may take COUNT_SECONDS, and none past ``deadline``
    (``time.monotonic()``): a filter that few rows pass (a segment's attributes, read row by
    row) would otherwise read the whole table; then the estimate is shown. Returns (figure,
    exact?)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    seconds = COUNT_SECONDS if deadline is None else min(COUNT_SECONDS, deadline - time.monotonic())
    return bounded.count(session, select(Subscriber.id).where(*clauses), EXACT_LIMIT if postgres else COUNT_LIMIT,
                         seconds)


def segment_counts(session: Session, items: Iterable[Segment]) -> dict[int, tuple[int, bool]]:
    """``count`` of each segment, all of them within twice COUNT_SECONDS: past that, estimates."""
    deadline = time.monotonic() + 2 * COUNT_SECONDS
    return {item.id: count(session, [segments_.segment_where(item)], deadline) for item in items}


def _id_range(session: Session) -> tuple[int, int] | None:
    """The lowest and highest subscriber id (two index probes), None when there are none."""
    low, high = session.execute(select(func.min(Subscriber.id), func.max(Subscriber.id))).one()
    return None if low is None else (low, high)


def _by_windows(session: Session, statement: Select, per_page: int, deadline: float, ids: tuple[int, int], *,
                below: int | None = None, above: int | None = None) -> tuple[list[Subscriber], int | None]:
    """Up to ``per_page + 1`` rows of ``statement`` read a window of ids at a time: newest
    first below ``below`` (None: from the newest), or oldest first above ``above``. For a
    filter no index serves (a segment's attributes, read row by row), or whose matches lie
    far from where the page starts, where one page would read the whole table: the windows
    stop SCAN_MARGIN before ``deadline`` (``time.monotonic()``) and the page is shown with
    what they found. Returns the rows and, when time ran out first, the id the scan reached
    (the next page goes on from there), else None. ``ids``: ``_id_range``."""
    upward = above is not None
    edge = ids[1] if upward else ids[0]
    started = time.monotonic()
    rows: list[Subscriber] = []
    # The first window in proportion to the time left (little after a plain query ran out),
    # never under MIN_WINDOW: each page goes on at least that far.
    share = (deadline - SCAN_MARGIN - started) / PAGE_SECONDS if PAGE_SECONDS > 0 else 0.0
    size = max(MIN_WINDOW, min(FIRST_WINDOW, int(FIRST_WINDOW * share)))
    start, scanned = (above if upward else below), 0
    if start is None:  # from the newest
        start = ids[1] + 1
    while True:
        if upward:
            end = min(start + size, edge)
            window = statement.where(Subscriber.id > start, Subscriber.id <= end).order_by(Subscriber.id.asc())
        else:
            end = max(start - size, edge)
            window = statement.where(Subscriber.id < start, Subscriber.id >= end).order_by(Subscriber.id.desc())
        rows += session.scalars(window.limit(per_page + 1 - len(rows)))
        if len(rows) > per_page or end == edge:
            return rows, None
        scanned, start = scanned + abs(start - end), end
        now = time.monotonic()
        left = deadline - SCAN_MARGIN - now
        if left <= 0:
            return rows, start
        # The next window fills what is left of the time at the pace seen so far.
        size = max(MIN_WINDOW, min(size * 4, int(scanned / max(now - started, 1e-4) * left)))


def _projected(rows: list[Subscriber], origin: int | None, ids: tuple[int, int]) -> int:
    """How many match in the whole table (``ids``: ``_id_range``) at the density ``rows``
    (read by windows from ``origin``, None: the newest) have near it: an estimate, better
    than the planner's for conditions on attributes (it guessed 1,667 for 57,142)."""
    low, high = ids
    reach = abs((high + 1 if origin is None else origin) - rows[-1].id) + 1
    return round(len(rows) / reach * (high - low + 1))


def search(session: Session, *, query: str = "", list_id: int | None = None, status: str | None = None,
           tag: str | None = None, segment_id: int | None = None, after: int | None = None,
           before: int | None = None, page: int | None = None, per_page: int = 50) -> SearchPage:
    """One page of subscribers matching a selection, newest (highest id) first, with their
    subscriptions loaded: after the id ``after`` (next pages), before ``before`` (previous
    ones), or the ``page``-th (an offset, for old API clients: slow deep down). Raises
    InvalidInput, NotFound (segment)."""
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    chosen = selection(query, list_id, status, tag, segment_id)
    clauses = where(session, chosen)
    statement = select(Subscriber).where(*clauses).options(
        selectinload(Subscriber.subscriptions).selectinload(Subscription.list))
    # A filter no index serves, or one whose matches all lie far from the newest (a status
    # the newest subscribers do not have), would read the whole table for one page. So a
    # segment's page reads windows of ids for PAGE_SECONDS; a list or status filter runs its
    # plain query for DIRECT_SECONDS on PostgreSQL, and when that runs out reads windows for
    # FALLBACK_SECONDS; what is left of either counts the rows. A text search or a tag is
    # found through its index (the trigram index, the tag's): the plain query, counted.
    offset = before is None and after is None and page is not None and page > 1  # old API clients: slow deep down
    indexed = chosen.everyone or ((chosen.query or chosen.tag) and chosen.segment_id is None)
    deadline = None if indexed or offset else time.monotonic() + PAGE_SECONDS
    postgres = session.get_bind().dialect.name == "postgresql"
    scanned_to, rows = None, None
    if before is not None:
        direct = statement.where(Subscriber.id > before).order_by(Subscriber.id.asc()).limit(per_page + 1)
    else:
        direct = statement.order_by(Subscriber.id.desc())
        if after is not None:
            direct = direct.where(Subscriber.id < after)
        elif offset:  # capped: past it an OFFSET overflows the database's integers
            direct = direct.offset((min(int(page or 1), MAX_PAGE) - 1) * per_page)
        direct = direct.limit(per_page + 1)
    if offset and postgres:  # an OFFSET reads every row before the page: bounded too
        rows = bounded.within(session, lambda: list(session.scalars(direct)), PAGE_SECONDS)
        if rows is None:
            raise InvalidInput("This page lies too deep to be found in time: follow next_after (the after "
                               "parameter) instead.", "page")
    elif deadline is None or not (postgres or chosen.segment_id is not None):
        rows = list(session.scalars(direct))
    elif chosen.segment_id is None:
        rows = bounded.within(session, lambda: list(session.scalars(direct)), DIRECT_SECONDS)
        deadline = time.monotonic() + FALLBACK_SECONDS
    ids = None
    if rows is None:
        assert deadline is not None
        ids = _id_range(session)
        rows, scanned_to = _by_windows(session, statement, per_page, deadline, ids, **(
            {"above": before} if before is not None else {"below": after})) if ids else ([], None)
    if postgres and ids and chosen.segment_id is not None and len(rows) > per_page:
        # Counting a segment reads its attributes row by row (1,001 matches of one in 18 took
        # 26 ms at a million): from the density the windows found, unless few are expected.
        total, exact = _projected(rows, after if before is None else before, ids), False
        if total <= EXACT_LIMIT:
            total, exact = count(session, clauses, deadline)
    else:
        total, exact = count(session, clauses, deadline)
    if before is not None:
        more_newer = len(rows) > per_page
        rows = list(reversed(rows[:per_page]))
        older = rows[-1].id if rows else (before + 1 if scanned_to else None)
        return _page(session, rows, total, exact, next_after=older,
                     prev_before=scanned_to or (rows[0].id if rows and more_newer else None),
                     scanned_to=scanned_to)
    more = len(rows) > per_page
    rows = rows[:per_page]
    newer = (after is not None or (page or 1) > 1) and bool(rows)
    return _page(session, rows, total, exact,
                 next_after=scanned_to or (rows[-1].id if rows and more else None),
                 prev_before=rows[0].id if newer else None, scanned_to=scanned_to)


def _page(session: Session, rows: list[Subscriber], total: int, exact: bool, **cursors) -> SearchPage:
    tags: dict[int, list[str]] = {}
    if rows:
        for subscriber_id, tag in session.execute(
                select(SubscriberTag.subscriber_id, SubscriberTag.tag)
                .where(SubscriberTag.subscriber_id.in_([row.id for row in rows]))
                .order_by(SubscriberTag.tag)):
            tags.setdefault(subscriber_id, []).append(tag)
    return SearchPage(rows, total, exact, tags=tags, **cursors)


# --- Attributes and tags ----------------------------------------------------------------

def clean_attributes(raw: Any) -> dict[str, Any]:
    """Attributes as stored: a flat object of at most MAX_ATTRIBUTES names (letters, digits,
    _ and -) to text, numbers or true/false; null removes one. Raises InvalidInput."""
    if not isinstance(raw, dict):
        raise InvalidInput("Attributes must be an object of names and values.", "attributes")
    if len(raw) > MAX_ATTRIBUTES:
        raise InvalidInput("A subscriber may have at most 50 attributes.", "attributes")
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        key = segments_.attribute_key(key)
        if value is None or isinstance(value, (bool, int, float)):
            cleaned[key] = value
        elif isinstance(value, str):
            value = value.strip()
            if len(value) > MAX_ATTRIBUTE_VALUE or any(ord(ch) < 32 for ch in value):
                raise InvalidInput("An attribute's value is too long or spans lines.", "attributes")
            cleaned[key] = value
        else:
            raise InvalidInput("An attribute's value must be text, a number or true/false.", "attributes")
    return cleaned


def set_attributes(session: Session, subscriber_id: int, values: Any, *, replace: bool = False) -> Subscriber:
    """Merge ``values`` into the subscriber's attributes (a null value removes that one;
    ``replace``: they become exactly ``values``). Raises NotFound, InvalidInput."""
    subscriber = get_or_404(session, Subscriber, subscriber_id)
    cleaned = clean_attributes(values)
    merged = {} if replace else dict(subscriber.attributes or {})
    merged.update(cleaned)
    merged = {key: value for key, value in merged.items() if value is not None}
    if len(merged) > MAX_ATTRIBUTES:
        raise InvalidInput("A subscriber may have at most 50 attributes.", "attributes")
    subscriber.attributes = merged
    session.flush()
    return subscriber


def tags_of(session: Session, subscriber_id: int) -> list[str]:
    return list(session.scalars(select(SubscriberTag.tag).where(SubscriberTag.subscriber_id == subscriber_id)
                                .order_by(SubscriberTag.tag)))


def set_tags(session: Session, subscriber_id: int, tags: Any) -> list[str]:
    """The subscriber's tags become ``tags`` (a list, or text separated by commas). Raises
    NotFound, InvalidInput."""
    get_or_404(session, Subscriber, subscriber_id)
    if isinstance(tags, str):
        tags = [part for part in tags.split(",") if part.strip()]
    if not isinstance(tags, list):
        raise InvalidInput("Tags must be a list.", "tags")
    wanted = sorted({segments_.tag_name(tag) for tag in tags})
    if len(wanted) > MAX_TAGS:
        raise InvalidInput("A subscriber may have at most 50 tags.", "tags")
    session.execute(delete(SubscriberTag).where(SubscriberTag.subscriber_id == subscriber_id,
                                                SubscriberTag.tag.not_in(wanted)))
    present = set(tags_of(session, subscriber_id))
    session.add_all(SubscriberTag(subscriber_id=subscriber_id, tag=tag) for tag in wanted if tag not in present)
    session.flush()
    return wanted


# One index probe a distinct tag (a "loose index scan"): a DISTINCT read every tag row, 28 ms
# a page at a million subscribers; min() is served by the (tag, subscriber) index on both.
_KNOWN_TAGS = text(
    "WITH RECURSIVE known(tag) AS (SELECT min(tag) FROM subscriber_tags"
    " UNION ALL SELECT (SELECT min(t.tag) FROM subscriber_tags t WHERE t.tag > known.tag)"
    " FROM known WHERE known.tag IS NOT NULL)"
    " SELECT tag FROM known WHERE tag IS NOT NULL LIMIT :limit")


def known_tags(session: Session, limit: int = 200) -> list[str]:
    """Tags in use (for the filter), in order, at most ``limit``."""
    return list(session.scalars(_KNOWN_TAGS, {"limit": limit}))


def detail(session: Session, subscriber_id: int, deliveries_limit: int = 200) -> dict[str, Any]:
    """A subscriber with subscriptions, consent history and the mail they were sent
    (newest first). Raises NotFound."""
    subscriber = get_or_404(session, Subscriber, subscriber_id)
    lists = {m.id: m for m in session.scalars(select(MailingList))}
    deliveries = session.execute(
        select(Delivery, Campaign).join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc()).limit(deliveries_limit)
    ).all()
    from .bounces.handling import subscriber_events

    notices = session.scalars(select(Notice).where(Notice.subscriber_id == subscriber_id)
                              .order_by(Notice.id.desc()).limit(deliveries_limit)).all()
    return {
        "subscriber": subscriber,
        "suppression": suppression.entry_for(session, subscriber.email),
        "bounces": subscriber_events(session, subscriber_id),
        "subscriptions": sorted(subscriber.subscriptions, key=lambda s: s.list.name),
        "tags": tags_of(session, subscriber_id),
        "consents": list(reversed(subscriber.consents)),
        "lists": lists,
        "deliveries": [{"delivery": d, "campaign": c} for d, c in deliveries],
        "mail": mail_of(deliveries, notices),
    }


@dataclass(frozen=True)
class MailLine:
    """One message a subscriber was sent or is owed: a campaign's (``campaign`` set) or a
    notice (``kind``: confirm, welcome)."""
    kind: str
    status: str
    at: datetime | None
    error: str = ""
    campaign: Campaign | None = None


def mail_of(deliveries, notices) -> list[MailLine]:
    """Campaign deliveries and notices together, the newest first (unsent ones on top)."""
    lines = [MailLine("campaign", str(d.status), d.sent_at, d.last_error, c) for d, c in deliveries]
    lines += [MailLine(str(n.kind), str(n.status), n.sent_at or n.created_at, n.last_error) for n in notices]
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(lines, key=lambda line: (line.status == "queued", line.at or oldest), reverse=True)


def sees_consent_origins(role: Role | str | None) -> bool:
    """Who may see where each consent came from (IP address, browser): admins, who also export
    and erase. Editors see the history itself (what, when, which list, which consent text).
    The staff pages and the API both ask this."""
    return role == Role.ADMIN


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def export_subscriber(session: Session, subscriber_id: int, *, origins: bool = True) -> dict[str, Any]:
    """Everything kept about one subscriber, JSON-able (GDPR access); without ``origins``, the
    consent history leaves out IP addresses and browsers (``sees_consent_origins``).
    Raises NotFound."""
    info = detail(session, subscriber_id, deliveries_limit=100_000)
    subscriber, lists = info["subscriber"], info["lists"]
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "locale": subscriber.locale,
        "attributes": subscriber.attributes or {},
        "interests": list(session.scalars(
            select(Category.slug).join(subscriber_interests, subscriber_interests.c.category_id == Category.id)
            .where(subscriber_interests.c.subscriber_id == subscriber_id).order_by(Category.slug))),
        "created_at": _iso(subscriber.created_at),
        "subscriptions": [{
            "list_id": s.list_id, "list": s.list.name, "list_slug": s.list.slug, "status": str(s.status),
            "created_at": _iso(s.created_at), "confirmed_at": _iso(s.confirmed_at),
            "unsubscribed_at": _iso(s.unsubscribed_at),
        } for s in info["subscriptions"]],
        "consent_history": [{
            "action": c.action, "source": c.source, "list_id": c.list_id,
            "list": lists[c.list_id].name if c.list_id in lists else None,
            "consent_version": c.consent_version,
            **({"ip": c.ip, "user_agent": c.user_agent} if origins else {}),
            "created_at": _iso(c.created_at),
        } for c in subscriber.consents],
        "messages": [{
            "campaign": row["campaign"].subject, "status": str(row["delivery"].status),
            "sent_at": _iso(row["delivery"].sent_at),
        } for row in info["deliveries"]],
        "returned_mail": [{
            "kind": str(e.kind), "source": e.source, "status": e.status, "diagnostic": e.diagnostic,
            "feedback_type": e.feedback_type, "received_at": _iso(e.created_at),
        } for e in info["bounces"]],
        "suppressed": ({"reason": info["suppression"].reason, "since": _iso(info["suppression"].created_at)}
                       if info["suppression"] else None),
    }


def erase_subscriber(session: Session, subscriber_id: int) -> None:
    """Delete the subscriber, their notices, subscriptions, interests, consent records and delivery rows, and the
    copies of their mail in the outbox; keep only the keyed hash of the address on the
    suppression list (reason "erased").
    Raises NotFound."""
    subscriber = get_or_404(session, Subscriber, subscriber_id)
    email = subscriber.email
    # Their notices first: a sender holding one of them locks it before anything of the
    # subscriber's, so taking them in that order too waits for it instead of deadlocking
    # (the subscriber's DELETE would otherwise reach them last, through the cascade).
    session.execute(delete(Notice).where(Notice.subscriber_id == subscriber_id))
    suppression.suppress(session, email, "erased")
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))
    session.execute(delete(BounceEvent).where(BounceEvent.subscriber_id == subscriber_id))
    session.execute(delete(ConsentRecord).where(ConsentRecord.subscriber_id == subscriber_id))
    session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber_id))
    session.execute(delete(subscriber_interests).where(subscriber_interests.c.subscriber_id == subscriber_id))
    session.expire(subscriber)
    session.delete(subscriber)
    session.flush()
    # Copies of their mail kept by this service (the outbox of the embedded mode) go too.
    forget_recipient(current_app.config, email)


def unsubscribe(session: Session, subscriber_id: int, list_ids: list[int] | None = None) -> None:
    """A staff member's unsubscribe (from ``list_ids``, None = all), recorded as source
    "admin". Raises NotFound."""
    from . import subscriptions

    get_or_404(session, Subscriber, subscriber_id)
    subscriptions.unsubscribe(session, subscriber_id, list_ids=list_ids, source="admin")


EXPORT_HEADER = ["email", "name", "locale", "list", "status", "subscribed_at", "confirmed_at",
                 "unsubscribed_at", "created_at", "attributes", "tags"]
# With ``consent``: the latest consent given to the row's list (not a withdrawal), and the
# version of its wording (the hash that names it in consent_texts).
CONSENT_HEADER = ["consent_at", "consent_action", "consent_source", "consent_text_version"]
EXPORT_CHUNK = 5000  # rows a fetch from the server-side cursor brings


def _export_statement(session: Session, shape: Callable[[list[Any]], list[Any]], *,
                      query: str, list_id: int | None, status: str | None, tag: str | None,
                      segment_id: int | None, consent: bool, chunk: int,
                      tags_shape: Callable[[ColumnElement], ColumnElement] = lambda tags: tags) -> Select:
    """The export's query: one row per subscription, filtered as the list view, in id order,
    read through a server-side cursor ``chunk`` rows at a time. ``shape`` makes the selected
    columns of EXPORT_HEADER's (attributes as stored) and, with ``consent``, the latest
    consent's time, action, source, wording hash and version label; ``tags_shape`` shapes
    the tags inside their subquery (where they are worked out once a row). Raises
    InvalidInput, NotFound."""
    chosen = selection(query, list_id, status, tag, segment_id)
    clauses = where(session, chosen, membership=False)
    join_on = [Subscription.subscriber_id == Subscriber.id]
    if list_id is not None:
        join_on.append(Subscription.list_id == list_id)
    if status:
        join_on.append(Subscription.status == _status(status))
    tags = (select(tags_shape(func.group_concat(SubscriberTag.tag) if session.get_bind().dialect.name == "sqlite"
                              else func.string_agg(SubscriberTag.tag, ",")))
            .where(SubscriberTag.subscriber_id == Subscriber.id).scalar_subquery())
    given = aliased(ConsentRecord)  # the latest consent to the row's list, by its own alias
    latest = (select(given.id).where(
        given.subscriber_id == Subscriber.id, given.list_id == Subscription.list_id,
        given.action.not_in(("unsubscribe", "complaint")))
        .order_by(given.id.desc()).limit(1).correlate(Subscriber, Subscription).scalar_subquery())
    columns: list[Any] = [
        Subscriber.email, Subscriber.name, Subscriber.locale, MailingList.slug, Subscription.status,
        Subscription.created_at, Subscription.confirmed_at, Subscription.unsubscribed_at, Subscriber.created_at,
        Subscriber.attributes, tags]
    if consent:
        columns += [ConsentRecord.created_at, ConsentRecord.action, ConsentRecord.source, ConsentRecord.consent_text,
                    ConsentRecord.consent_version]
    statement = (
        select(*shape(columns)).select_from(Subscriber)
        .join(Subscription, and_(*join_on), isouter=list_id is None and not status)
        .outerjoin(MailingList, MailingList.id == Subscription.list_id)
    )
    if consent:
        statement = statement.outerjoin(ConsentRecord, ConsentRecord.id == latest)
    return (statement.where(*clauses).order_by(Subscriber.id, MailingList.slug)
            .execution_options(yield_per=chunk))


def export_rows(session: Session, *, query: str = "", list_id: int | None = None,
                status: str | None = None, tag: str | None = None, segment_id: int | None = None,
                chunk: int = EXPORT_CHUNK, consent: bool = False) -> Iterator[list[str]]:
    """Rows for the CSV export (one per subscription, filtered as the list view; attributes
    as JSON, tags joined by commas; with ``consent`` the CONSENT_HEADER columns too), streamed
    from the database through a server-side cursor in chunks, in id order. Raises
    InvalidInput, NotFound (before the first row)."""
    statement = _export_statement(session, lambda columns: columns, query=query, list_id=list_id, status=status,
                                  tag=tag, segment_id=segment_id, consent=consent, chunk=chunk)

    def rows() -> Iterator[list[str]]:
        session.flush()  # Core, not the ORM: no autoflush (a row object a row cost more than the row's cells)
        for row in session.connection().execute(statement):
            base = [row[0], row[1] or "", row[2] or "", row[3] or "", row[4] or "",
                    *(_iso(v) or "" for v in row[5:9]), _json(row[9]), row[10] or ""]
            if consent:
                # the wording's hash when it was kept, else the version label of older records
                base += [_iso(row[11]) or "", row[12] or "", row[13] or "", row[14] or row[15] or ""]
            yield base

    return rows()


def export_csv(session: Session, *, query: str = "", list_id: int | None = None,
               status: str | None = None, tag: str | None = None, segment_id: int | None = None,
               chunk: int = EXPORT_CHUNK, consent: bool = False) -> Iterator[str]:
    """The CSV export as text in pieces (``csv_export.stream`` of ``export_rows``: a BOM,
    the header, the rows). On PostgreSQL the database renders each row's cells, escaped and
    quoted (``csv_export.sql_cell``), but the attributes' JSON, which Python writes as
    before: the same bytes for a third of the CPU (bench/README.md, "The CSV export").
    Raises InvalidInput, NotFound (before the first piece)."""
    if session.get_bind().dialect.name != "postgresql":
        return csv_export.stream(EXPORT_HEADER + (CONSENT_HEADER if consent else []),
                                 export_rows(session, query=query, list_id=list_id, status=status, tag=tag,
                                             segment_id=segment_id, chunk=chunk, consent=consent))
    cell, iso = csv_export.sql_cell, csv_export.sql_iso

    def rendered(columns: list[Any]) -> list[Any]:
        """The cells before the attributes with the comma after them, the attributes' JSON
        text, the cells after them with the comma before them and the line's end."""
        before = [cell(c) for c in columns[:5]] + [iso(c) for c in columns[5:9]]
        after = [columns[10]]  # a cell already (tags_shape)
        if consent:
            after += [iso(columns[11]), cell(columns[12]), cell(columns[13]),
                      cell(func.coalesce(func.nullif(columns[14], ""), columns[15]))]
        return [func.concat_ws(",", *before, ""), cast(columns[9], Text),
                func.concat(",", func.concat_ws(",", *after), "\r\n")]

    statement = _export_statement(session, rendered, query=query, list_id=list_id, status=status, tag=tag,
                                  segment_id=segment_id, consent=consent, chunk=chunk, tags_shape=cell)
    header = csv_export.BOM + ",".join(map(csv_export.text_cell, EXPORT_HEADER + (CONSENT_HEADER if consent else [])))

    def pieces() -> Iterator[str]:
        yield header + "\r\n"
        attributes = _json_cell
        session.flush()  # as the ORM's autoflush would
        for part in session.connection().execute(statement).partitions():
            yield "".join([head + attributes(raw) + tail for head, raw, tail in part])

    return pieces()


# The attributes' JSON as json.dumps(value, ensure_ascii=False, sort_keys=True) writes it, and
# the stored text read by the scanner json.loads uses: calling the C encoder and scanner
# directly, without the wrappers that make them anew on every call, takes a third of the time.
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
_c_encoder: Callable[..., Any] | None = getattr(json_encoder, "c_make_encoder", None)
_encode: Callable[[Any, int], Iterable[str]] = (
    (lambda value, _level: (_JSON.encode(value),)) if _c_encoder is None else
    _c_encoder(None, _JSON.default, json_encoder.encode_basestring, None, _JSON.key_separator,
               _JSON.item_separator, True, False, True))  # sort_keys, not skipkeys, allow_nan (the defaults)
_scan: Callable[[str, int], tuple[Any, int]] = json_scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _json(value: Any) -> str:
    return "".join(_encode(value, 0)) if value else ""


def _json_cell(raw: str | None) -> str:
    """The attributes' cell from their stored JSON text, as ``_json`` and the csv module write it."""
    if raw is None or raw == "{}" or raw == "null":
        return ""
    try:
        value, end = _scan(raw, 0)
    except StopIteration:  # space before the value
        end = -1
    if end != len(raw):  # space after it
        value = json.loads(raw)
    return csv_export.text_cell(_json(value)) if value else ""

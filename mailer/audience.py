"""The staff's view of the audience: search, one subscriber's page, data export and erasure."""

from collections.abc import Iterator
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from . import suppression
from .errors import InvalidInput
from .lookups import get_or_404
from .mail.transport import forget_recipient
from .models import (
    BounceEvent,
    Campaign,
    ConsentRecord,
    Delivery,
    MailingList,
    Role,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)

MAX_QUERY = 200
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000


def _status(status: str | None) -> SubscriptionStatus | None:
    if not status:
        return None
    try:
        return SubscriptionStatus(status)
    except ValueError as exc:
        raise InvalidInput("Unknown status.", "status") from exc


def _filters(query: str, list_id: int | None, status: str | None, membership: bool = True) -> list:
    """WHERE clauses on Subscriber for the list view and the CSV export; raises InvalidInput."""
    query = (query or "").strip()
    if len(query) > MAX_QUERY:
        raise InvalidInput("The search text is too long.", "query")
    clauses = []
    if query:
        pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(or_(func.lower(Subscriber.email).like(pattern, escape="\\"),
                           func.lower(Subscriber.name).like(pattern, escape="\\")))
    wanted = _status(status)
    if membership and (list_id is not None or wanted is not None):
        cond = [Subscription.subscriber_id == Subscriber.id]
        if list_id is not None:
            cond.append(Subscription.list_id == list_id)
        if wanted is not None:
            cond.append(Subscription.status == wanted)
        clauses.append(exists().where(and_(*cond)))
    return clauses


def search(session: Session, *, query: str = "", list_id: int | None = None,
           status: str | None = None, page: int = 1, per_page: int = 50) -> tuple[list[Subscriber], int]:
    """One page of subscribers matching an address/name fragment, a list and a status,
    newest first, with their subscriptions loaded; and the total. Raises InvalidInput."""
    page = min(max(1, int(page)), MAX_PAGE)  # past it an OFFSET overflows the database's integers
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    clauses = _filters(query, list_id, status)
    total = session.scalar(select(func.count(Subscriber.id)).where(*clauses)) or 0
    rows = session.scalars(
        select(Subscriber).where(*clauses)
        .options(selectinload(Subscriber.subscriptions).selectinload(Subscription.list))
        .order_by(Subscriber.created_at.desc(), Subscriber.id.desc())
        .offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), total


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

    return {
        "subscriber": subscriber,
        "suppression": suppression.entry_for(session, subscriber.email),
        "bounces": subscriber_events(session, subscriber_id),
        "subscriptions": sorted(subscriber.subscriptions, key=lambda s: s.list.name),
        "consents": list(reversed(subscriber.consents)),
        "lists": lists,
        "deliveries": [{"delivery": d, "campaign": c} for d, c in deliveries],
    }


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
        "created_at": _iso(subscriber.created_at),
        "subscriptions": [{
            "list": s.list.name, "list_slug": s.list.slug, "status": str(s.status),
            "created_at": _iso(s.created_at), "confirmed_at": _iso(s.confirmed_at),
            "unsubscribed_at": _iso(s.unsubscribed_at),
        } for s in info["subscriptions"]],
        "consent_history": [{
            "action": c.action, "source": c.source,
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
    """Delete the subscriber, their subscriptions, consent records and delivery rows, and the
    copies of their mail in the outbox; keep only the keyed hash of the address on the
    suppression list (reason "erased").
    Raises NotFound."""
    subscriber = get_or_404(session, Subscriber, subscriber_id)
    email = subscriber.email
    suppression.suppress(session, email, "erased")
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))
    session.execute(delete(BounceEvent).where(BounceEvent.subscriber_id == subscriber_id))
    session.execute(delete(ConsentRecord).where(ConsentRecord.subscriber_id == subscriber_id))
    session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber_id))
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
                 "unsubscribed_at", "created_at"]


def export_rows(session: Session, *, query: str = "", list_id: int | None = None,
                status: str | None = None, chunk: int = 1000) -> Iterator[list[str]]:
    """Rows for the CSV export (one per subscription, filtered as the list view), streamed
    from the database in chunks. Raises InvalidInput (before the first row)."""
    clauses = _filters(query, list_id, status, membership=False)
    join_on = [Subscription.subscriber_id == Subscriber.id]
    if list_id is not None:
        join_on.append(Subscription.list_id == list_id)
    if status:
        join_on.append(Subscription.status == _status(status))
    statement = (
        select(Subscriber.email, Subscriber.name, Subscriber.locale, MailingList.slug,
               Subscription.status, Subscription.created_at, Subscription.confirmed_at,
               Subscription.unsubscribed_at, Subscriber.created_at)
        .join(Subscription, and_(*join_on), isouter=list_id is None and not status)
        .outerjoin(MailingList, MailingList.id == Subscription.list_id)
        .where(*clauses).order_by(Subscriber.id, MailingList.slug)
        .execution_options(yield_per=chunk)
    )

    def rows() -> Iterator[list[str]]:
        for row in session.execute(statement):
            yield [row[0], row[1] or "", row[2] or "", row[3] or "", str(row[4] or ""),
                   *(_iso(v) or "" for v in row[5:])]

    return rows()

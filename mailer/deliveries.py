"""The SQL of sending: the audience snapshot, atomic claims, outcomes recorded in bulk.

Every statement here is set-based and works on PostgreSQL and SQLite (>= 3.35 for
``UPDATE ... RETURNING``). Nothing here commits: the caller (``mailer.sending``) does.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, and_, cast, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import (Campaign, Delivery, DeliveryStatus, Subscriber, Subscription,
                     SubscriptionStatus, Suppression, campaign_lists)
from .models.types import utcnow

OPEN = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert(session: Session):
    return (postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert)


def _list_ids(campaign_id: int):
    return select(campaign_lists.c.list_id).where(campaign_lists.c.campaign_id == campaign_id)


def _confirmed_on(list_ids, subscriber_id_column):
    """Confirmed on any of ``list_ids`` (ids, or a subquery of them)."""
    return exists().where(
        Subscription.subscriber_id == subscriber_id_column,
        Subscription.status == SubscriptionStatus.CONFIRMED,
        Subscription.list_id.in_(list_ids),
    )


def _suppressed(hash_column):
    return exists().where(Suppression.email_hash == hash_column)


def snapshot(session: Session, campaign_id: int, batch_size: int) -> int:
    """Insert one queued Delivery per distinct subscriber confirmed on any of the
    campaign's lists and not suppressed, numbered into batches, in ONE statement;
    idempotent (ON CONFLICT DO NOTHING). Returns the campaign's delivery count.

    The list ids go in as values, not as a join with campaign_lists: the planner then
    estimates the audience from the statistics of subscriptions (a merge join over a
    million rows) rather than from those of a tiny, perhaps never analyzed, table."""
    list_ids = session.scalars(_list_ids(campaign_id)).all()
    number = func.row_number().over(order_by=Subscriber.id) - 1
    audience = select(
        literal(campaign_id), Subscriber.id, number // batch_size,
        literal(DeliveryStatus.QUEUED.value), literal(0), literal(""), literal(""),
    ).where(
        _confirmed_on(list_ids, Subscriber.id),
        ~_suppressed(Subscriber.email_hash),
    )
    columns = ["campaign_id", "subscriber_id", "batch", "status", "attempts", "last_error",
               "message_id"]
    statement = _insert(session)(Delivery).from_select(columns, audience)
    session.execute(statement.on_conflict_do_nothing(
        index_elements=["campaign_id", "subscriber_id"]))
    return session.scalar(select(func.count()).where(Delivery.campaign_id == campaign_id))


def open_batches(session: Session, campaign_id: int) -> list[int]:
    """Batch numbers that still have queued or in-flight rows."""
    return list(session.scalars(
        select(Delivery.batch).distinct()
        .where(Delivery.campaign_id == campaign_id, Delivery.status.in_(OPEN))
        .order_by(Delivery.batch)))


def stalled_batches(session: Session, campaign_id: int, now: datetime, lease: int) -> list[int]:
    """Batches with rows due to be sent (queued, past any retry delay) or whose lease
    ran out (a worker died holding them)."""
    return list(session.scalars(
        select(Delivery.batch).distinct().where(Delivery.campaign_id == campaign_id, _claimable(now, lease))
        .order_by(Delivery.batch)))


def has_open(session: Session, campaign_id: int) -> bool:
    return session.scalar(select(Delivery.id).where(
        Delivery.campaign_id == campaign_id, Delivery.status.in_(OPEN)).limit(1)) is not None


def _claimable(now: datetime, lease: int):
    return or_(
        and_(Delivery.status == DeliveryStatus.QUEUED,
             or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)),
        and_(Delivery.status == DeliveryStatus.SENDING,
             Delivery.claimed_at < now - timedelta(seconds=lease)),
    )


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int


def claim(session: Session, campaign_id: int, batch: int, limit: int, lease: int
          ) -> tuple[list[Claimed], int]:
    """Atomically take up to ``limit`` claimable rows of one batch (queued and due, or
    in "sending" past their lease): PostgreSQL locks with SKIP LOCKED so concurrent
    claims never overlap; SQLite has one writer. Rows whose subscriber is no longer
    confirmed on a campaign list, or is suppressed now, are marked skipped.
    Returns (rows to send, number skipped)."""
    now = utcnow()
    ids = (select(Delivery.id)
           .where(Delivery.campaign_id == campaign_id, Delivery.batch == batch, _claimable(now, lease))
           .order_by(Delivery.id).limit(limit))
    if _dialect(session) == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    # MATERIALIZED: the LIMIT applies once. Inlined, PostgreSQL may join it as a
    # rescanned inner loop, and every rescan takes up to ``limit`` more rows.
    ids = ids.cte("claim_ids").prefix_with("MATERIALIZED")
    claimed = session.execute(
        update(Delivery).where(Delivery.id.in_(select(ids.c.id)))
        .values(status=DeliveryStatus.SENDING, claimed_at=now)
        .returning(Delivery.id, Delivery.subscriber_id, Delivery.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return [], 0
    by_subscriber = {row.subscriber_id: row for row in claimed}
    eligible = session.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.name).where(
            Subscriber.id.in_(by_subscriber),
            _confirmed_on(_list_ids(campaign_id), Subscriber.id),
            ~_suppressed(Subscriber.email_hash),
        )
    ).all()
    rows = sorted((Claimed(by_subscriber[s.id].id, s.id, s.email, s.name or "",
                           by_subscriber[s.id].attempts) for s in eligible),
                  key=lambda c: c.delivery_id)
    skipped = [row.id for row in claimed if row.subscriber_id not in {r.subscriber_id for r in rows}]
    if skipped:
        session.execute(
            update(Delivery).where(Delivery.id.in_(skipped))
            .values(status=DeliveryStatus.SKIPPED, last_error="no longer subscribed")
            .execution_options(synchronize_session=False))
    return rows, len(skipped)


def message_id(campaign_id: int, delivery_id: int, suffix: str) -> str:
    """The Message-ID of one delivery: the same on a re-send after a crash, so receivers
    can tell a duplicate. ``suffix`` is ".<launch time>@<MAIL_DOMAIN>"."""
    return f"<{campaign_id}.{delivery_id}{suffix}>"


def message_id_sql(suffix: str):
    """``message_id`` computed in SQL for a bulk UPDATE (no per-row parameters)."""
    return (literal("<") + cast(Delivery.campaign_id, String) + literal(".")
            + cast(Delivery.id, String) + literal(suffix + ">"))


@dataclass
class Outcomes:
    """What one chunk did, recorded by ``record`` in a few statements."""

    sent: list[int]  # delivery ids
    message_id_suffix: str  # see message_id
    retry: list[dict]  # {"id", "attempts", "error", "next_attempt_at"}
    failed: list[dict]  # {"id", "attempts", "error", "status"} (failed or bounced)
    skipped: int = 0
    trailing_failures: int = 0  # failures after the chunk's last success
    any_success: bool = False


def record(session: Session, campaign_id: int, outcomes: Outcomes, pause_after: int,
           last_error: str) -> str | None:
    """Write a chunk's outcomes and the campaign's counters; pause the campaign when
    ``pause_after`` failures in a row have been reached (keeping ``last_error`` as the
    reason). Returns the campaign's status as of this write (a pause or cancel committed
    meanwhile included)."""
    now = utcnow()
    if outcomes.sent:
        session.execute(update(Delivery).where(Delivery.id.in_(outcomes.sent))
                        .values(status=DeliveryStatus.SENT, sent_at=now, last_error="",
                                message_id=message_id_sql(outcomes.message_id_suffix))
                        .execution_options(synchronize_session=False))
    for row in outcomes.retry:
        session.execute(update(Delivery).where(Delivery.id == row["id"]).values(
            status=DeliveryStatus.QUEUED, attempts=row["attempts"], last_error=row["error"][:500],
            next_attempt_at=row["next_attempt_at"]).execution_options(synchronize_session=False))
    for row in outcomes.failed:
        session.execute(update(Delivery).where(Delivery.id == row["id"]).values(
            status=row["status"], attempts=row["attempts"], last_error=row["error"][:500])
            .execution_options(synchronize_session=False))
    consecutive = (literal(outcomes.trailing_failures) if outcomes.any_success
                   else Campaign.consecutive_failures + outcomes.trailing_failures)
    status = session.scalar(update(Campaign).where(Campaign.id == campaign_id).values(
        sent_count=Campaign.sent_count + len(outcomes.sent),
        failed_count=Campaign.failed_count + len(outcomes.failed),
        skipped_count=Campaign.skipped_count + outcomes.skipped,
        consecutive_failures=consecutive,
        progress_at=now,
    ).returning(Campaign.status).execution_options(synchronize_session=False))
    if pause_after and outcomes.trailing_failures:
        paused = session.execute(update(Campaign).where(
            Campaign.id == campaign_id, Campaign.status == "sending",
            Campaign.consecutive_failures >= pause_after,
        ).values(status="paused", status_reason=last_error).execution_options(synchronize_session=False))
        if paused.rowcount:
            status = "paused"
    return status


def requeue_failed(session: Session, campaign_id: int) -> int:
    """Put failed (not bounced) rows back in the queue; returns how many."""
    result = session.execute(
        update(Delivery).where(Delivery.campaign_id == campaign_id,
                               Delivery.status == DeliveryStatus.FAILED)
        .values(status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=None, claimed_at=None)
        .execution_options(synchronize_session=False))
    return result.rowcount


def skip_open(session: Session, campaign_id: int, reason: str) -> int:
    """Mark every queued row skipped (a cancelled campaign); returns how many."""
    result = session.execute(
        update(Delivery).where(Delivery.campaign_id == campaign_id,
                               Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, last_error=reason)
        .execution_options(synchronize_session=False))
    return result.rowcount


def next_due(session: Session, campaign_id: int, batch: int) -> datetime | None:
    """When the earliest row of ``batch`` waiting for a retry becomes due (None if none)."""
    return session.scalar(select(func.min(Delivery.next_attempt_at)).where(
        Delivery.campaign_id == campaign_id, Delivery.batch == batch,
        Delivery.status == DeliveryStatus.QUEUED))


def count_by_status(session: Session, campaign_id: int) -> dict[str, int]:
    """Rows per status (a scan: for tests and the admin detail page, not per poll)."""
    return dict(session.execute(
        select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status)).all())


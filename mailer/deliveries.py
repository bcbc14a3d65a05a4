"""The SQL of sending: the audience snapshot, batch leases, outcomes recorded in bulk.

Every statement here is set-based and works on PostgreSQL and SQLite (>= 3.35 for
``UPDATE ... RETURNING``). Functions taking a Session leave the commit to the caller
(``mailer.sending``); ``BatchStore`` commits on its own connection (the recorder thread).

Writes to a batch's rows are fenced by its lease: each transaction first renews the lease
row (``UPDATE send_batches ... WHERE holder = :me``), which fails once another sender has
taken the batch over and, on PostgreSQL, locks that row until the commit, so a takeover
waits for an in-flight record to land and then sees it. A row is recorded once: only a row
still ``queued`` changes, and the counters grow by what actually changed.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Integer,
    Result,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import (
    Campaign,
    Delivery,
    DeliveryStatus,
    SendBatch,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    campaign_lists,
)
from .models.types import utcnow
from .statements import in_list, param

QUEUED = DeliveryStatus.QUEUED


def _changed(result: Result) -> int:
    """How many rows an UPDATE or DELETE changed."""
    return cast(CursorResult, result).rowcount


def _dialect(bind) -> str:
    return bind.dialect.name


def _insert(bind):
    return postgresql.insert if _dialect(bind) == "postgresql" else sqlite.insert


def _list_ids(campaign_id: int):
    return select(campaign_lists.c.list_id).where(campaign_lists.c.campaign_id == campaign_id)


def _confirmed_on(list_ids, subscriber_id_column):
    """Confirmed on any of ``list_ids`` (ids, or a subquery of them; None: on any list)."""
    where = [Subscription.subscriber_id == subscriber_id_column,
             Subscription.status == SubscriptionStatus.CONFIRMED]
    if list_ids is not None:
        where.append(Subscription.list_id.in_(list_ids))
    return exists().where(*where)


def _suppressed(hash_column):
    return exists().where(Suppression.email_hash == hash_column)


def _audience(list_ids, segments=None):
    """Confirmed on one of ``list_ids`` (None: on any list: a campaign to segments only),
    not suppressed, and in one of the campaign's segments when it has any (``segments``:
    their compiled conditions, ``mailer.segments.any_of``; EXISTS sub-queries and column
    tests over Subscriber, so the plan stays a scan of subscribers with semi-joins)."""
    clauses = [_confirmed_on(list_ids, Subscriber.id), ~_suppressed(Subscriber.email_hash)]
    if segments is not None:
        clauses.append(segments)
    return and_(*clauses)


def _target(session: Session, campaign_id: int):
    """The campaign's list ids as values (None when it targets segments only) and its
    segments' conditions (None when it has none)."""
    from .segments import any_of

    campaign = session.get(Campaign, campaign_id)
    list_ids = session.scalars(_list_ids(campaign_id)).all()
    narrowed = any_of(list(campaign.segments)) if campaign is not None else None
    return (list(list_ids) if list_ids or narrowed is None else None), narrowed


# --- The snapshot --------------------------------------------------------------------

def audience_count(session: Session, list_ids: list[int], segments=None) -> int:
    """How many distinct subscribers a campaign to ``list_ids`` (empty: any list, when
    ``segments`` narrow it) and ``segments`` (compiled, or None) would reach now."""
    if not list_ids and segments is None:
        return 0
    return session.scalar(select(func.count(Subscriber.id)).where(
        _audience(list_ids or None, segments))) or 0


def campaign_audience_count(session: Session, campaign_id: int) -> int:
    """How many would receive the campaign if it were sent now (shown before sending)."""
    list_ids, narrowed = _target(session, campaign_id)
    if list_ids is None and narrowed is None:
        return 0
    return session.scalar(select(func.count(Subscriber.id)).where(
        _audience(list_ids, narrowed), *_interested(session, campaign_id))) or 0


def _interested(session: Session, campaign_id: int) -> list:
    """Those for whom one of the campaign's events is of interest (``mailer.interests``):
    an EXISTS semi-join more, only when every event of the campaign has categories."""
    from .interests import audience_clause

    clause = audience_clause(session, campaign_id)
    return [] if clause is None else [clause]


def campaign_audience_by_locale(session: Session, campaign_id: int) -> dict[str, int]:
    """How many would receive the campaign now, per subscriber language: one grouped count
    (the same scan as ``campaign_audience_count``)."""
    list_ids, narrowed = _target(session, campaign_id)
    if list_ids is None and narrowed is None:
        return {}
    return {locale or "": count for locale, count in session.execute(
        select(Subscriber.locale, func.count(Subscriber.id)).where(_audience(list_ids, narrowed))
        .group_by(Subscriber.locale).order_by(Subscriber.locale)).all()}


def delivery_languages(session: Session, campaign_id: int) -> dict[str, int]:
    """A launched campaign's recipients per language: one grouped count of its rows (a
    scan of them: counted live only for small audiences, ``recipients.languages``)."""
    return {locale or "": count for locale, count in session.execute(
        select(Subscriber.locale, func.count(Delivery.id))
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Subscriber.locale).order_by(Subscriber.locale)).all()}


def snapshot(session: Session, campaign_id: int, batch_size: int) -> int:
    """The campaign's whole audience (``snapshot_part`` without a limit); idempotent.
    Returns the campaign's delivery count."""
    return snapshot_part(session, campaign_id, batch_size)[0]


def snapshot_part(session: Session, campaign_id: int, batch_size: int,
                  limit: int | None = None) -> tuple[int, bool]:
    """Insert one queued Delivery per distinct subscriber confirmed on any of the
    campaign's lists and not suppressed, numbered into batches, in ONE statement, and one
    SendBatch per batch. Taken in parts: each call goes on after the subscribers already
    in (by id), numbering on from them, and takes at most ``limit`` more (None: all the
    rest), so the first batches can be sent while the rest is inserted. Returns the
    campaign's delivery count and whether the audience is all in. Idempotent: a part taken
    twice, or by two takers at once, inserts its rows once (the unique key).

    The list ids go in as values, not as a join with campaign_lists: the planner then
    estimates the audience from the statistics of subscriptions (a merge join over a
    million rows) rather than from those of a tiny, perhaps never analyzed, table.
    Segments add their compiled conditions (EXISTS sub-queries, column tests) to the same
    WHERE; a campaign to segments only takes those confirmed on any list. On PostgreSQL
    the tables it filled are analyzed once the audience is all in."""
    list_ids, narrowed = _target(session, campaign_id)
    before, after = session.execute(select(func.count(), func.coalesce(func.max(Delivery.subscriber_id), 0))
                                    .where(Delivery.campaign_id == campaign_id)).one()
    number = func.row_number().over(order_by=Subscriber.id) - 1 + before
    audience = select(
        literal(campaign_id), Subscriber.id, number // batch_size,
        literal(QUEUED.value), literal(0), literal(""),
    ).where(Subscriber.id > after, _audience(list_ids, narrowed), *_interested(session, campaign_id))
    if limit is not None:
        audience = audience.order_by(Subscriber.id).limit(limit)
    columns = ["campaign_id", "subscriber_id", "batch", "status", "attempts", "last_error"]
    bind = session.get_bind()
    statement = _insert(bind)(Delivery).from_select(columns, audience)
    session.execute(statement.on_conflict_do_nothing(index_elements=["subscriber_id", "campaign_id"]))
    total = session.scalar(select(func.count()).where(Delivery.campaign_id == campaign_id)) or 0
    complete = limit is None or total - before < limit
    batches = [{"campaign_id": campaign_id, "batch": n, "done": False}
               for n in range(before // batch_size, -(-total // batch_size))]
    if batches:
        session.execute(_insert(bind)(SendBatch).on_conflict_do_nothing(
            index_elements=["campaign_id", "batch"]), batches)
    if _dialect(bind) == "postgresql" and total and complete:
        # The statistics of a table that just grew by a whole audience say it is as it was:
        # the batches' plans would scan every row until autovacuum's analyze comes by (a
        # minute or more; never if it is off). ANALYZE samples a fixed number of rows
        # (this transaction's own inserts count), a fraction of a second at a million.
        session.execute(text("ANALYZE deliveries, send_batches"))
    return total, complete


# --- Batches and their leases --------------------------------------------------------

def _open(campaign_id: int):
    return and_(SendBatch.campaign_id == campaign_id, SendBatch.done.is_(False))


def lease_next_batch(session: Session, campaign_id: int, holder: str, lease: float) -> tuple[int, int] | None:
    """Take the lease of the campaign's first open batch that is due and not held by a
    live lease (a dead holder's lease ran out), while the campaign is sending and not
    backing off; returns (batch row id, batch number), None when there is none (see
    ``sending._waiting`` and ``next_batch_in`` for why)."""
    now = utcnow()
    row = session.connection().execute(_lease_statement(_dialect(session.get_bind())), {
        "p_campaign": campaign_id, "p_now": now, "p_holder": holder,
        "p_expires": now + timedelta(seconds=lease)}).first()
    return (row.id, row.batch) if row else None


# The statements run once a batch or a flush are built once (per dialect) with their
# parameters as bind parameters: building and keying a statement costs more CPU than
# running it (about 0.1 to 0.2 ms each, a few times a batch).
_BATCHES, _DELIVERIES, _CAMPAIGNS = (cast(Table, model.__table__) for model in (SendBatch, Delivery, Campaign))


@cache
def _lease_statement(dialect: str):
    b, c = _BATCHES.c, _CAMPAIGNS.c
    now = param("p_now", b.due_at)
    sending = exists().where(c.id == b.campaign_id, c.status == "sending",
                             or_(c.retry_at.is_(None), c.retry_at <= param("p_now", c.retry_at)))
    pick = (select(b.id)
            .where(b.campaign_id == bindparam("p_campaign"), b.done.is_(False),
                   or_(b.due_at.is_(None), b.due_at <= now),
                   or_(b.holder.is_(None), b.lease_expires_at < now), sending)
            .order_by(b.batch).limit(1))
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    # MATERIALIZED: the LIMIT applies once (inlined, PostgreSQL may rescan it per row).
    chosen = pick.cte("chosen").prefix_with("MATERIALIZED")
    return (update(_BATCHES).where(b.id.in_(select(chosen.c.id)))
            .values(holder=bindparam("p_holder"), lease_expires_at=param("p_expires", b.lease_expires_at))
            .returning(b.id, b.batch))


def _free(now: datetime):
    """Not held by a live lease (never leased, given back, or its holder is dead)."""
    return or_(SendBatch.holder.is_(None), SendBatch.lease_expires_at < now)


def next_batch_in(session: Session, campaign_id: int) -> float | None:
    """Seconds until one of the campaign's open batches that no live lease holds becomes
    due (0: now); None when there is none (done, or every open batch is being sent)."""
    now = utcnow()
    free = and_(_open(campaign_id), _free(now))
    if session.scalar(select(SendBatch.id).where(
            free, or_(SendBatch.due_at.is_(None), SendBatch.due_at <= now)).limit(1)):
        return 0.0
    soonest = session.scalar(select(func.min(SendBatch.due_at)).where(free))
    return None if soonest is None else max(0.0, (soonest - now).total_seconds())


def has_open(session: Session, campaign_id: int) -> bool:
    return session.scalar(select(SendBatch.id).where(_open(campaign_id)).limit(1)) is not None


def stalled(session: Session, campaign_id: int) -> bool:
    """An open batch is due now and no live lease holds it: nobody is sending it."""
    return next_batch_in(session, campaign_id) == 0.0


def _among(conn: Connection, ids: list[int]):
    """``Delivery.id`` in ``ids``."""
    return in_list(_dialect(conn), Delivery.id, "ids", ids)


def _renew(conn: Connection, batch_id: int, holder: str, lease: float) -> bool:
    """The fence: renew our lease (locking its row until commit); False when it is gone."""
    return conn.execute(_renew_statement(), {
        "p_batch": batch_id, "p_holder": holder,
        "p_expires": utcnow() + timedelta(seconds=lease)}).rowcount == 1


@cache
def _renew_statement():
    b = _BATCHES.c
    return (update(_BATCHES).where(b.id == bindparam("p_batch"), b.holder == bindparam("p_holder"))
            .values(lease_expires_at=param("p_expires", b.lease_expires_at)))


class Row(NamedTuple):
    """A delivery to send, with what its message needs (a tuple: a batch makes hundreds)."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    locale: str
    attempts: int


def open_rows(session: Session, campaign_id: int, batch: int, batch_id: int, holder: str,
              lease: float, marks: dict[int, str]) -> tuple[list[Row], int, int, int] | None:
    """Under our lease of ``batch``: record what a previous holder's journal says was
    accepted (not sent again), count what it says was in flight (sent again, perhaps twice),
    skip rows whose subscriber left or is suppressed now, and return the rows due to be
    sent with (recovered, in doubt, skipped) counts. None when the lease is gone."""
    conn = session.connection()
    if not _renew(conn, batch_id, holder, lease):
        return None
    mine = and_(Delivery.campaign_id == campaign_id, Delivery.batch == batch, Delivery.status == QUEUED)
    accepted = [key for key, mark in marks.items() if mark == "a"]
    doubtful = [key for key, mark in marks.items() if mark == "f"]
    recovered = in_doubt = 0
    if accepted:
        recovered = conn.execute(update(Delivery).where(mine, Delivery.id.in_(accepted)).values(
            status=DeliveryStatus.SENT, sent_at=utcnow(), attempts=Delivery.attempts + 1,
            last_error="")).rowcount
    if doubtful:
        in_doubt = session.scalar(select(func.count()).where(mine, Delivery.id.in_(doubtful))) or 0
    now = utcnow()
    list_ids = conn.execute(_lists_statement(), {"p_campaign": campaign_id}).scalars().all()
    found = conn.execute(_rows_statement(_dialect(conn), bool(list_ids)), {
        "p_campaign": campaign_id, "p_batch": batch, "p_now": now, "p_lists": list(list_ids)}).all()
    gone = [row.id for row in found if not row.eligible]
    skipped = 0
    if gone:
        skipped = conn.execute(update(Delivery).where(mine, Delivery.id.in_(gone)).values(
            status=DeliveryStatus.SKIPPED, last_error="no longer subscribed")).rowcount
    if recovered or in_doubt or skipped:
        conn.execute(update(Campaign).where(Campaign.id == campaign_id).values(
            sent_count=Campaign.sent_count + recovered, doubtful_count=Campaign.doubtful_count + in_doubt,
            skipped_count=Campaign.skipped_count + skipped, progress_at=now))
    rows = [Row(*row[:6]) for row in found if row.eligible]
    return rows, recovered, in_doubt, skipped


@cache
def _lists_statement():
    return select(campaign_lists.c.list_id).where(campaign_lists.c.campaign_id == bindparam("p_campaign"))


@cache
def _rows_statement(dialect: str, to_lists: bool):
    """A batch's rows due now, with what their messages need and whether each is still
    eligible: confirmed on one of the campaign's lists ``p_lists`` (``to_lists`` False: on
    any list, a campaign to segments only) and not suppressed; segment conditions are not
    asked again (they chose at the snapshot).

    The cost must be the batch's, whatever the audience's size and the planner's statistics:
    with the checks as EXISTS sub-queries (and a join), PostgreSQL chose, by its estimates,
    to hash every subscriber and every confirmed subscription of the audience for each batch
    (a scan of the audience per batch, 100 ms a batch at 50,000 subscribers). So on
    PostgreSQL each look-up is a LATERAL sub-query with LIMIT 1, which is always an index
    probe per row; SQLite runs correlated sub-queries per row anyway.

    A row whose subscriber is gone is kept, not eligible: deliveries have no foreign key,
    so an erasure that commits while the snapshot runs can leave one behind, and a row the
    batch never returned would stay queued and keep the batch open for ever."""
    d, s, sub = _DELIVERIES.c, Subscriber.__table__.c, Subscription.__table__.c
    supp = Suppression.__table__.c

    def confirmed(subscriber_id):
        where = [sub.subscriber_id == subscriber_id, sub.status == SubscriptionStatus.CONFIRMED.value]
        if to_lists:
            where.append(in_list(dialect, sub.list_id, "p_lists", item_type=Integer))
        return where

    due = [d.campaign_id == bindparam("p_campaign"), d.batch == bindparam("p_batch"), d.status == QUEUED.value,
           or_(d.next_attempt_at.is_(None), d.next_attempt_at <= param("p_now", d.next_attempt_at))]
    if dialect != "postgresql":
        eligible = and_(s.id.is_not(None), exists().where(*confirmed(s.id)), ~_suppressed(s.email_hash))
        return (select(d.id, d.subscriber_id, s.email, func.coalesce(s.name, ""), func.coalesce(s.locale, ""),
                       d.attempts, eligible.label("eligible"))
                .outerjoin_from(_DELIVERIES, Subscriber.__table__, s.id == d.subscriber_id)
                .where(*due).order_by(d.id))
    person = (select(s.email, s.name, s.locale, s.email_hash).where(s.id == d.subscriber_id)
              .limit(1).lateral("person"))
    member = select(literal(True).label("yes")).where(*confirmed(d.subscriber_id)).limit(1).lateral("member")
    barred = (select(literal(True).label("yes")).where(supp.email_hash == person.c.email_hash)
              .limit(1).lateral("barred"))
    eligible = and_(person.c.email.is_not(None), member.c.yes.is_not(None), barred.c.yes.is_(None))
    return (select(d.id, d.subscriber_id, person.c.email, func.coalesce(person.c.name, ""),
                   func.coalesce(person.c.locale, ""), d.attempts, eligible.label("eligible"))
            .select_from(_DELIVERIES.outerjoin(person, literal(True))
                         .outerjoin(member, literal(True)).outerjoin(barred, literal(True)))
            .where(*due).order_by(d.id))


def release_batch(session: Session, batch_id: int, campaign_id: int, batch: int, holder: str) -> bool:
    """Give the lease back (one statement): the batch is done when no row is left queued,
    else due when its first waiting row is. Returns whether the batch is done (False also
    if the lease is gone)."""
    done = session.connection().execute(_release_statement(), {
        "p_batch_id": batch_id, "p_holder": holder, "p_campaign": campaign_id, "p_batch": batch,
        "p_now": utcnow()}).scalar()
    return bool(done)


@cache
def _release_statement():
    b, d = _BATCHES.c, _DELIVERIES.c
    queued = and_(d.campaign_id == bindparam("p_campaign"), d.batch == bindparam("p_batch"),
                  d.status == QUEUED.value)
    waiting = (select(func.min(func.coalesce(d.next_attempt_at, param("p_now", d.next_attempt_at))))
               .where(queued).scalar_subquery())
    return (update(_BATCHES).where(b.id == bindparam("p_batch_id"), b.holder == bindparam("p_holder"))
            .values(holder=None, lease_expires_at=None, done=~exists().where(queued), due_at=waiting)
            .returning(b.done))


def message_id(campaign_id: int, delivery_id: int, suffix: str) -> str:
    """The Message-ID of one delivery: the same on a re-send after a crash, so receivers
    can tell a duplicate. ``suffix`` is ".<launch stamp>@<MAIL_DOMAIN>". Not stored: a
    returned one is read back by ``parse_message_id``."""
    return f"<{campaign_id}.{delivery_id}{suffix}>"


def launch_stamp(started_at: datetime | None) -> int:
    """The campaign's launch second, in each of its Message-IDs (0 before it launched)."""
    return int(started_at.timestamp()) if started_at else 0


def message_id_suffix(started_at: datetime | None, domain: str) -> str:
    """The ``suffix`` of ``message_id`` for a campaign launched at ``started_at``."""
    return f".{launch_stamp(started_at)}@{domain}"


_MESSAGE_ID = re.compile(r"<(\d{1,10})\.(\d{1,19})\.(\d{1,12})@[^<>@\s]+>")


def parse_message_id(value: str) -> tuple[int, int, int] | None:
    """(campaign id, delivery id, launch stamp) of a Message-ID that ``message_id`` made
    (angle brackets optional), or None for any other."""
    value = value.strip()
    match = _MESSAGE_ID.fullmatch(value if value.startswith("<") else f"<{value}>")
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


@cache
def _sent_statement(dialect: str):
    """Rows still queued among ``p_ids`` recorded sent (only ``sent_at`` grows: see
    ``models.Delivery`` on HOT updates)."""
    d = _DELIVERIES.c
    return (update(_DELIVERIES)
            .where(d.campaign_id == bindparam("p_campaign"), d.status == QUEUED.value,
                   in_list(dialect, d.id, "p_ids"))
            .values(status=DeliveryStatus.SENT.value, sent_at=param("p_now", d.sent_at),
                    attempts=d.attempts + 1, last_error=""))


@cache
def _status_statement():
    return select(_CAMPAIGNS.c.status).where(_CAMPAIGNS.c.id == bindparam("p_campaign"))


@cache
def _counters_statement(any_accepted: bool, failing: bool):
    """A flush's change to its campaign's counters and failure streak, and its standing after."""
    c = _CAMPAIGNS.c
    now = param("p_now", c.progress_at)
    values = {
        "sent_count": c.sent_count + bindparam("p_sent"),
        "failed_count": c.failed_count + bindparam("p_failed"),
        "doubtful_count": c.doubtful_count + bindparam("p_doubtful"),
        "consecutive_failures": (bindparam("p_streak") if any_accepted
                                 else c.consecutive_failures + bindparam("p_streak")),
        "failing_since": (None if not failing else now if any_accepted
                          else func.coalesce(c.failing_since, now)),
        "progress_at": now,
    }
    if any_accepted:  # an acceptance ends a back-off (while sending: a pause keeps its reason)
        values.update(backoff_level=0, retry_at=None,
                      status_code=case((c.status == "sending", ""), else_=c.status_code))
    return (update(_CAMPAIGNS).where(c.id == bindparam("p_campaign")).values(**values)
            .returning(c.status, c.consecutive_failures, c.failing_since))


@dataclass
class Tally:
    """What one flush writes, sorted by the engine's policy (``mailer.sending``)."""

    sent: list[int] = field(default_factory=list)
    retry: dict[tuple[datetime, str], list[int]] = field(default_factory=dict)  # (when, error)
    failed: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (status, error)
    bounced: list[str] = field(default_factory=list)  # keyed hashes of addresses to suppress
    doubtful: int = 0
    permanent_streak: int = 0  # permanent refusals after the last acceptance
    any_accepted: bool = False
    failing: bool = False  # the last outcome was a failure
    last_error: str = ""


@dataclass(frozen=True)
class Standing:
    """The campaign as a flush left it."""

    status: str
    consecutive_failures: int
    failing_since: datetime | None


class BatchStore:
    """Records a batch's outcomes on its own connection, fenced by the batch's lease.
    ``decide`` sorts outcomes into a Tally; ``judge`` says, from the campaign's standing
    after the write, whether to go on ("ok") or stop ("stop"), pausing it if need be."""

    def __init__(self, engine: Engine, campaign_id: int, batch_id: int, holder: str, lease: float,
                 decide: Callable[[list], Tally],
                 judge: Callable[[Connection, Standing, Tally], str]):
        self.engine, self.campaign_id, self.batch_id = engine, campaign_id, batch_id
        self.holder, self.lease = holder, lease
        self.decide, self.judge = decide, judge

    def flush(self, outcomes: list) -> str:
        tally = self.decide(outcomes)
        with self.engine.begin() as conn:
            if not _renew(conn, self.batch_id, self.holder, self.lease):
                return "lost"
            if not outcomes:
                status = conn.scalar(_status_statement(), {"p_campaign": self.campaign_id})
                return "ok" if status == "sending" else "stop"
            now = utcnow()
            mine = and_(Delivery.campaign_id == self.campaign_id, Delivery.status == QUEUED)
            sent = failed = 0
            if tally.sent:
                sent = conn.execute(_sent_statement(_dialect(conn)), {
                    "p_campaign": self.campaign_id, "p_ids": tally.sent, "p_now": now}).rowcount
            for (when, error), ids in tally.retry.items():
                conn.execute(update(Delivery).where(mine, _among(conn, ids)).values(
                    attempts=Delivery.attempts + 1, last_error=error[:500], next_attempt_at=when))
            for (status, error), ids in tally.failed.items():
                failed += conn.execute(update(Delivery).where(mine, _among(conn, ids)).values(
                    status=status, attempts=Delivery.attempts + 1, last_error=error[:500])).rowcount
            if tally.bounced:
                conn.execute(_insert(conn)(Suppression).on_conflict_do_nothing(index_elements=["email_hash"]),
                             [{"email_hash": digest, "reason": "bounced", "created_at": now}
                              for digest in tally.bounced])
            row = conn.execute(_counters_statement(tally.any_accepted, tally.failing), {
                "p_campaign": self.campaign_id, "p_sent": sent, "p_failed": failed,
                "p_doubtful": tally.doubtful, "p_streak": tally.permanent_streak, "p_now": now}).one()
            return self.judge(conn, Standing(str(row.status), row.consecutive_failures,
                                             row.failing_since), tally)


def requeue_failed(session: Session, campaign_id: int) -> int:
    """Put failed (not bounced) rows back in the queue, their batches open again; returns
    how many."""
    batches = select(Delivery.batch).where(Delivery.campaign_id == campaign_id,
                                           Delivery.status == DeliveryStatus.FAILED).distinct()
    session.execute(update(SendBatch).where(SendBatch.campaign_id == campaign_id,
                                            SendBatch.batch.in_(batches))
                    .values(done=False, due_at=None).execution_options(synchronize_session=False))
    return _changed(session.execute(
        update(Delivery).where(Delivery.campaign_id == campaign_id,
                               Delivery.status == DeliveryStatus.FAILED)
        .values(status=QUEUED, attempts=0, next_attempt_at=None)
        .execution_options(synchronize_session=False)))


def skip_open(session: Session, campaign_id: int, reason: str) -> int:
    """Mark every queued row skipped and every batch done (a cancelled campaign); returns
    how many rows. A sender recording meanwhile holds its batch's lease row: on PostgreSQL
    this waits for it, then skips only what it left queued."""
    session.execute(update(SendBatch).where(SendBatch.campaign_id == campaign_id)
                    .values(done=True).execution_options(synchronize_session=False))
    return _changed(session.execute(
        update(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.status == QUEUED)
        .values(status=DeliveryStatus.SKIPPED, last_error=reason)
        .execution_options(synchronize_session=False)))


def count_by_status(session: Session, campaign_id: int) -> dict[str, int]:
    """Rows per status (a scan: for the admin detail page, not per poll)."""
    return dict(session.execute(
        select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status)).all())



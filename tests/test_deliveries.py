"""The engine's SQL on both databases: snapshot, batch leases, fenced bulk outcomes,
journal recovery, counters."""

from datetime import timedelta

import pytest
from sqlalchemy import delete, event, select, text, update

from mailer import deliveries, suppression
from mailer.dispatch import Item, Outcome
from mailer.extensions import db
from mailer.mail.message import Outgoing
from mailer.mail.transport import Result
from mailer.models import Campaign, Delivery, DeliveryStatus, SendBatch, Subscriber, Subscription, SubscriptionStatus
from mailer.models.types import utcnow
from mailer.sending import _judge, _tally
from tests.helpers_engine import address, make_audience, make_campaign


def _snapshot(session, count=10, batch_size=4):
    lists = make_audience(session, count)
    campaign = make_campaign(session, lists)
    campaign.status = "sending"
    session.commit()
    total = deliveries.snapshot(session, campaign.id, batch_size)
    session.commit()
    return campaign, total


def _expire(session, batch_id):
    session.execute(update(SendBatch).where(SendBatch.id == batch_id)
                    .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()


def _store(app, campaign_id, batch_id, holder):
    return deliveries.BatchStore(db.engine, campaign_id, batch_id, holder, 30,
                                 decide=lambda outcomes: _tally(app.config, outcomes),
                                 judge=lambda conn, standing, tally: _judge(app.config, campaign_id,
                                                                            conn, standing, tally))


def _accepted(rows):
    return [Outcome(Item(row.delivery_id, row.email, row.attempts, lambda: None),
                    Result(Outgoing("b@x", row.email, b"", "<m>"), True)) for row in rows]


def test_snapshot_makes_one_lease_row_per_batch(session):
    campaign, total = _snapshot(session, 10, 4)
    assert total == 10
    batches = session.scalars(select(SendBatch.batch).where(SendBatch.campaign_id == campaign.id)
                              .order_by(SendBatch.batch)).all()
    assert batches == [0, 1, 2]
    assert deliveries.snapshot(session, campaign.id, 4) == 10  # idempotent
    assert session.scalar(select(db.func.count()).select_from(SendBatch)) == 3


def test_a_snapshot_taken_in_parts_numbers_as_one_taken_whole(session):
    """Each part goes on after the subscribers already in, numbering on: the parts give the
    rows and batches the whole snapshot gives, say when the audience is all in, and a part
    taken again adds nothing."""
    lists = make_audience(session, 23)
    whole, parted = make_campaign(session, lists), make_campaign(session, lists)
    session.commit()
    deliveries.snapshot(session, whole.id, 4)
    steps = [deliveries.snapshot_part(session, parted.id, 4, limit) for limit in (8, 8, 8, 8)]
    session.commit()
    assert steps == [(8, False), (16, False), (23, True), (23, True)]

    def numbered(campaign_id):
        return session.execute(select(Delivery.subscriber_id, Delivery.batch).where(
            Delivery.campaign_id == campaign_id).order_by(Delivery.subscriber_id)).all()

    def batches(campaign_id):
        return session.scalars(select(SendBatch.batch).where(SendBatch.campaign_id == campaign_id)
                               .order_by(SendBatch.batch)).all()

    assert numbered(parted.id) == numbered(whole.id)
    assert batches(parted.id) == batches(whole.id) == [0, 1, 2, 3, 4, 5]


def test_batch_leases_never_overlap_and_a_dead_holders_expires(session):
    campaign, _ = _snapshot(session, 10, 4)
    first = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
    second = deliveries.lease_next_batch(session, campaign.id, "b" * 32, 30)
    third = deliveries.lease_next_batch(session, campaign.id, "c" * 32, 30)
    session.commit()
    assert [first[1], second[1], third[1]] == [0, 1, 2]
    assert deliveries.lease_next_batch(session, campaign.id, "d" * 32, 30) is None
    assert deliveries.next_batch_in(session, campaign.id) is None  # all held by live leases
    _expire(session, first[0])
    assert deliveries.stalled(session, campaign.id)
    assert deliveries.lease_next_batch(session, campaign.id, "d" * 32, 30) == first


def test_a_sender_whose_lease_ran_out_records_nothing(app, session):
    """Two senders of one batch, the first stopped past its lease: only the holder's
    outcomes count (the counters once said 8 sent of 4)."""
    campaign, _ = _snapshot(session, 4, 4)
    batch_id, batch = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
    rows_a, *_ = deliveries.open_rows(session, campaign.id, batch, batch_id, "a" * 32, 30, {})
    session.commit()
    _expire(session, batch_id)
    assert deliveries.lease_next_batch(session, campaign.id, "b" * 32, 30) == (batch_id, batch)
    rows_b, *_ = deliveries.open_rows(session, campaign.id, batch, batch_id, "b" * 32, 30, {})
    session.commit()
    assert deliveries.open_rows(session, campaign.id, batch, batch_id, "a" * 32, 30, {}) is None
    session.rollback()
    assert _store(app, campaign.id, batch_id, "a" * 32).flush(_accepted(rows_a)) == "lost"
    assert _store(app, campaign.id, batch_id, "b" * 32).flush(_accepted(rows_b)) == "ok"
    assert _store(app, campaign.id, batch_id, "b" * 32).flush(_accepted(rows_b)) == "ok"  # twice: once
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign.id)
    assert campaign.sent_count == 4
    assert set(db.session.scalars(select(Delivery.status).where(Delivery.campaign_id == campaign.id))) \
        == {DeliveryStatus.SENT}


def test_a_new_holder_records_the_journal_and_counts_what_was_in_flight(session):
    campaign, _ = _snapshot(session, 4, 4)
    batch_id, batch = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
    ids = session.scalars(select(Delivery.id).where(Delivery.campaign_id == campaign.id)
                          .order_by(Delivery.id)).all()
    marks = {ids[0]: "a", ids[1]: "a", ids[2]: "f"}
    rows, recovered, in_doubt, skipped = deliveries.open_rows(
        session, campaign.id, batch, batch_id, "a" * 32, 30, marks)
    session.commit()
    assert (recovered, in_doubt, skipped) == (2, 1, 0)
    assert [row.delivery_id for row in rows] == ids[2:]  # accepted ones are not sent again
    campaign = session.get(Campaign, campaign.id)
    session.refresh(campaign)
    assert (campaign.sent_count, campaign.doubtful_count) == (2, 1)


def test_recording_a_whole_batch_sent_leaves_each_row_on_its_page(app, session):
    """Recording outcomes is a HOT update on PostgreSQL (no index entry written): each new
    version finds room on its row's page although a flush records whole pages in one
    transaction. With full pages, or the Message-ID written into each row, most rows moved
    to other pages (and each got three new index entries)."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's heap")
    campaign, total = _snapshot(session, 1000, 500)
    pages = "SELECT id, (ctid::text::point)[0] FROM deliveries WHERE campaign_id = :c AND batch = 0"
    before = dict(session.execute(text(pages), {"c": campaign.id}).all())
    batch_id, batch = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
    rows, *_ = deliveries.open_rows(session, campaign.id, batch, batch_id, "a" * 32, 30, {})
    session.commit()
    assert _store(app, campaign.id, batch_id, "a" * 32).flush(_accepted(rows)) == "ok"
    after = dict(session.execute(text(pages), {"c": campaign.id}).all())
    session.commit()
    assert len(rows) == len(before) == 500
    stayed = sum(after[key] == page for key, page in before.items())
    assert stayed >= 0.95 * len(before), f"{stayed} of {len(before)} rows stayed on their page"


def test_a_sent_delivery_is_found_by_the_message_id_it_went_out_with(app, session):
    """A returned Message-ID finds its delivery, also one a new holder recorded from the
    journal; an unsent row, another campaign's or launch's id, and garbage find nothing."""
    from mailer.bounces.handling import delivery_by_message_id

    campaign, _ = _snapshot(session, 3, 3)
    campaign.started_at = utcnow()
    session.commit()
    suffix = deliveries.message_id_suffix(campaign.started_at, "miasto.example.pl")
    batch_id, batch = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
    ids = session.scalars(select(Delivery.id).where(Delivery.campaign_id == campaign.id)
                          .order_by(Delivery.id)).all()
    rows, *_ = deliveries.open_rows(session, campaign.id, batch, batch_id, "a" * 32, 30, {ids[0]: "a"})
    session.commit()
    _store(app, campaign.id, batch_id, "a" * 32).flush(_accepted(rows[:1]))  # ids[1]; ids[2] unsent
    for key in ids[:2]:
        mid = deliveries.message_id(campaign.id, key, suffix)
        assert delivery_by_message_id(session, mid).id == key
        assert delivery_by_message_id(session, f"  {mid.strip('<>')} ").id == key
        # the domain is not compared: MAIL_DOMAIN may have changed since it was sent
        assert delivery_by_message_id(session, mid.replace("miasto.example.pl", "gmina.example")).id == key
    stamp = deliveries.launch_stamp(campaign.started_at)
    for forged in [deliveries.message_id(campaign.id, ids[2], suffix),  # never sent
                   deliveries.message_id(campaign.id + 1, ids[0], suffix),
                   deliveries.message_id(campaign.id, ids[0], f".{stamp - 1}@miasto.example.pl"),
                   f"<{campaign.id}.{ids[0]}.{stamp}>", "<>", "", "<1.2.3@a@b>", "x" * 500]:
        assert delivery_by_message_id(session, forged) is None, forged


def test_rows_of_people_who_left_are_suppressed_or_erased_are_skipped(session):
    campaign, _ = _snapshot(session, 5, 5)
    gone = session.scalar(select(Subscription).join(Subscription.subscriber).where(
        Subscription.subscriber.has(email=address(1))))
    gone.status = SubscriptionStatus.UNSUBSCRIBED
    suppression.suppress(session, address(2), "bounced")
    # Erased while the snapshot ran: the erasure deleted the rows it saw, the snapshot then
    # wrote one (deliveries have no foreign key), left without its subscriber.
    session.execute(delete(Subscriber).where(Subscriber.email == address(4)))
    session.commit()
    batch_id, batch = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
    rows, _, _, skipped = deliveries.open_rows(session, campaign.id, batch, batch_id, "a" * 32, 30, {})
    session.commit()
    assert skipped == 3
    assert [row.email for row in rows] == [address(0), address(3)]
    queued = session.scalars(select(Delivery.subscriber_id).where(Delivery.status == DeliveryStatus.QUEUED))
    assert len(list(queued)) == 2  # the erased one's row does not keep its batch open


def test_a_batch_given_back_is_done_or_due_when_its_retries_are(session):
    campaign, _ = _snapshot(session, 2, 4)
    batch_id, batch = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
    later = utcnow() + timedelta(minutes=5)
    session.execute(update(Delivery).where(Delivery.campaign_id == campaign.id, Delivery.subscriber_id
                                           == select(Delivery.subscriber_id).limit(1).scalar_subquery())
                    .values(next_attempt_at=later))
    session.execute(update(Delivery).where(Delivery.campaign_id == campaign.id,
                                           Delivery.next_attempt_at.is_(None))
                    .values(status=DeliveryStatus.SENT))
    assert deliveries.release_batch(session, batch_id, campaign.id, batch, "a" * 32) is False
    session.commit()
    assert deliveries.next_batch_in(session, campaign.id) > 200  # due in five minutes
    session.execute(update(Delivery).where(Delivery.campaign_id == campaign.id).values(
        status=DeliveryStatus.SENT))
    deliveries.lease_next_batch(session, campaign.id, "b" * 32, 30)  # not due yet: nothing
    session.execute(update(SendBatch).values(due_at=None))
    assert deliveries.lease_next_batch(session, campaign.id, "b" * 32, 30) == (batch_id, batch)
    assert deliveries.release_batch(session, batch_id, campaign.id, batch, "b" * 32) is True
    session.commit()
    assert not deliveries.has_open(session, campaign.id)


def test_opening_a_batch_probes_its_rows_and_never_scans_the_audience(session):
    """The eligibility check of a batch's rows (still confirmed, not suppressed) is an index
    probe per row on PostgreSQL, whatever the planner estimates: with sub-queries it hashed
    every subscriber and subscription of the audience for each batch."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    lists = make_audience(session, 3)
    session.execute(text(
        "INSERT INTO subscribers (email, email_hash, name, locale, attributes, confirm_sent_today, created_at,"
        " updated_at) SELECT 'masa' || g || '@example.org', md5(g::text), 'Osoba ' || g, 'pl', '{}', 0, now(),"
        " now() FROM generate_series(1, 20000) AS g"))
    session.execute(text(
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at) SELECT id, :list, 'confirmed',"
        " now() FROM subscribers WHERE email LIKE 'masa%'"), {"list": lists[0].id})
    campaign = make_campaign(session, lists)
    campaign.status = "sending"
    session.commit()
    deliveries.snapshot(session, campaign.id, 500)
    session.commit()
    session.execute(text("ANALYZE"))
    session.commit()
    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM deliveries" in statement and "eligible" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        batch_id, batch = deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30)
        rows, *_ = deliveries.open_rows(session, campaign.id, batch, batch_id, "a" * 32, 30, {})
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(rows) == 500
    [(statement, parameters)] = seen
    plan = "\n".join(row[0] for row in session.connection().exec_driver_sql("EXPLAIN " + statement, parameters))
    session.rollback()
    assert "Seq Scan on subscribers" not in plan and "Seq Scan on subscriptions" not in plan, plan
    assert "Hash" not in plan, plan


def test_the_snapshot_leaves_the_planner_statistics_current(session):
    """Batches are planned from statistics that count the audience just inserted, not from
    those of the table before (with which every batch scanned the whole table)."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    campaign, total = _snapshot(session, 60, 10)
    session.commit()
    estimated = session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'deliveries'"))
    assert estimated >= total


def test_only_a_sending_campaign_that_is_not_backing_off_has_batches_leased(session):
    """The lease itself asks whether the campaign still sends (no status query a batch): a
    paused campaign, or one waiting out a back-off, gives no batch until it may send again."""
    campaign, _ = _snapshot(session, 4, 2)
    campaign.status = "paused"
    session.commit()
    assert deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30) is None
    campaign.status, campaign.retry_at = "sending", utcnow() + timedelta(seconds=60)
    session.commit()
    assert deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30) is None
    campaign.retry_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert deliveries.lease_next_batch(session, campaign.id, "a" * 32, 30) is not None

"""The engine's SQL on both databases: snapshot, claims, leases, bulk outcomes, counters."""

from datetime import timedelta

from sqlalchemy import select, update

from mailer import deliveries, suppression
from mailer.models import Campaign, Delivery, DeliveryStatus, Subscription, SubscriptionStatus
from mailer.models.types import utcnow
from tests.helpers_engine import address, make_audience, make_campaign


def _campaign(session, count=10):
    lists = make_audience(session, count)
    campaign = make_campaign(session, lists)
    session.commit()
    return campaign


def test_claims_never_overlap_and_respect_leases(session):
    campaign = _campaign(session)
    assert deliveries.snapshot(session, campaign.id, 100) == 10
    first, skipped = deliveries.claim(session, campaign.id, 0, 4, lease=60)
    second, _ = deliveries.claim(session, campaign.id, 0, 4, lease=60)
    third, _ = deliveries.claim(session, campaign.id, 0, 4, lease=60)
    session.commit()
    ids = [r.delivery_id for r in first + second + third]
    assert skipped == 0 and len(ids) == len(set(ids)) == 10
    assert [len(first), len(second), len(third)] == [4, 4, 2]  # the limit holds (PostgreSQL plans)
    assert deliveries.claim(session, campaign.id, 0, 4, lease=60) == ([], 0)
    # a dead worker's rows come back once their lease is over
    session.execute(update(Delivery).where(Delivery.id.in_([r.delivery_id for r in first]))
                    .values(claimed_at=utcnow() - timedelta(seconds=120)))
    again, _ = deliveries.claim(session, campaign.id, 0, 10, lease=60)
    assert sorted(r.delivery_id for r in again) == sorted(r.delivery_id for r in first)


def test_claim_skips_who_left_or_was_suppressed_since_the_snapshot(session):
    campaign = _campaign(session, 5)
    deliveries.snapshot(session, campaign.id, 100)
    left = session.scalar(select(Subscription).where(Subscription.subscriber.has(email=address(1))))
    left.status = SubscriptionStatus.UNSUBSCRIBED
    suppression.suppress(session, address(2), "complaint")
    session.commit()
    rows, skipped = deliveries.claim(session, campaign.id, 0, 10, lease=60)
    assert skipped == 2
    assert sorted(r.email for r in rows) == [address(0), address(3), address(4)]


def test_record_updates_rows_and_counters_in_bulk(session):
    campaign = _campaign(session, 6)
    deliveries.snapshot(session, campaign.id, 100)
    rows, _ = deliveries.claim(session, campaign.id, 0, 10, lease=60)
    ids = [r.delivery_id for r in rows]
    outcomes = deliveries.Outcomes(
        sent=ids[:3], message_id_suffix=".77@miasto.example.pl",
        retry=[{"id": ids[3], "attempts": 1, "error": "451 later", "next_attempt_at": utcnow() + timedelta(hours=1)}],
        failed=[{"id": ids[4], "attempts": 1, "error": "550 5.1.1", "status": DeliveryStatus.BOUNCED}],
        skipped=1, trailing_failures=2, any_success=True)
    deliveries.record(session, campaign.id, outcomes, pause_after=3, last_error="x")
    session.commit()
    campaign = session.get(Campaign, campaign.id)
    assert (campaign.sent_count, campaign.failed_count, campaign.skipped_count,
            campaign.consecutive_failures, campaign.status) == (3, 1, 1, 2, "draft")
    sent = session.get(Delivery, ids[0])
    assert sent.status == DeliveryStatus.SENT
    assert sent.message_id == f"<{campaign.id}.{ids[0]}.77@miasto.example.pl>"
    assert session.get(Delivery, ids[3]).status == DeliveryStatus.QUEUED
    # the retried row is not claimable before its time
    assert deliveries.claim(session, campaign.id, 0, 10, lease=60) == ([], 0)
    assert deliveries.next_due(session, campaign.id, 0) is not None
    assert deliveries.has_open(session, campaign.id)
    assert deliveries.count_by_status(session, campaign.id)[DeliveryStatus.BOUNCED] == 1

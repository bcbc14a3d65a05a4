"""The engine's flow on the real database and SMTP server: launch, snapshot, batches,
exactly-once, pause/resume/cancel, retry failed, progress."""

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select, update

from mailer import deliveries, jobs, sending, suppression
from mailer.errors import Conflict, InvalidInput, NotFound
from mailer.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Job,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from tests.helpers_engine import (
    address,
    assert_exactly_once,
    campaign_status,
    launch_and_snapshot,
    make_audience,
    make_campaign,
    received_counts,
    rows,
    run_all_batches,
    wait_until,
    wait_worker_idle,
)


@pytest.fixture
def engine_config(app):
    saved = dict(app.config)
    app.config.update(BATCH_SIZE=7, SEND_RETRY_BASE_SECONDS=0.05,
                      SEND_RETRY_MAX_SECONDS=0.2, SEND_MAX_ATTEMPTS=3, SEND_PAUSE_AFTER_FAILURES=0,
                      RATE_PER_SECOND=0, RATE_PER_HOUR=0)
    yield app.config
    app.config.clear()
    app.config.update(saved)


def test_snapshot_is_distinct_confirmed_unsuppressed_and_batched(session, engine_config):
    lists = make_audience(session, 20, lists=2)  # everyone on both lists: counted once
    make_audience(session, 3, status=SubscriptionStatus.PENDING, start=100)
    pending_list = session.scalars(select(Subscription.list_id).where(
        Subscription.status == SubscriptionStatus.PENDING)).first()
    session.add(Suppression(email_hash=suppression.email_hash(address(5)), reason="erased"))
    campaign = make_campaign(session, lists + [session.get(type(lists[0]), pending_list)])
    session.commit()

    campaign = launch_and_snapshot(session, campaign.id)
    assert campaign.total_count == 19
    batches = session.execute(select(Delivery.batch, Delivery.id).where(
        Delivery.campaign_id == campaign.id)).all()
    sizes = {}
    for batch, _ in batches:
        sizes[batch] = sizes.get(batch, 0) + 1
    assert sizes == {0: 7, 1: 7, 2: 5}
    assert deliveries.snapshot(session, campaign.id, 7) == 19  # idempotent
    sending.start(session, campaign.id)
    assert session.get(Campaign, campaign.id).total_count == 19


_TAKEN = deliveries.snapshot_part


def _dies_on_part(monkeypatch, number: int, then=None):
    """``deliveries.snapshot_part`` raising on its ``number``-th call, as a start task whose
    worker dies while a part is being inserted (that part's transaction is rolled back);
    ``then(call)`` runs after each part that is taken."""
    calls = []

    def part(*args, **kwargs):
        calls.append(args)
        if len(calls) == number:
            raise RuntimeError("the worker died here")
        result = _TAKEN(*args, **kwargs)
        if then is not None:
            then(len(calls))
        return result

    monkeypatch.setattr(deliveries, "snapshot_part", part)


def _unpublished(monkeypatch) -> list:
    """Jobs are committed (their rows are what is checked) but not handed to the broker: the
    test's own worker thread would otherwise run the start task beside the test."""
    published: list = []
    monkeypatch.setattr(jobs, "send_now", lambda task, *args, **options: published.append((task, args)))
    return published


def _launched_in_parts(session, monkeypatch) -> tuple[int, Campaign]:
    """A campaign launched (its start task not run) whose audience takes two parts (with
    BATCH_SIZE 2): the first part's size, and the campaign."""
    first = sending.FIRST_PART * 2
    campaign = make_campaign(session, make_audience(session, first + 5))
    session.commit()
    _unpublished(monkeypatch)
    sending.launch(session, campaign.id)
    session.commit()
    return first, campaign


def _queued_senders(session, campaign_id: int) -> int:
    return sum(1 for job in session.scalars(select(Job).where(Job.task == sending.SEND_TASK))
               if job.args == [campaign_id])


def test_senders_start_on_the_first_part_of_the_snapshot_and_wait_for_the_rest(
        session, smtp_server, engine_config, monkeypatch):
    """A big audience is snapshotted in committed parts: the senders are queued once the
    first part is in and send it, without finishing the campaign, while the rest is still
    to come; a start task that died between parts goes on where it stopped, and every
    recipient gets one copy."""
    engine_config.update(BATCH_SIZE=2, SEND_SENDER_SECONDS=1)
    first, campaign = _launched_in_parts(session, monkeypatch)
    _dies_on_part(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        sending.start(session, campaign.id)
    session.rollback()
    monkeypatch.setattr(deliveries, "snapshot_part", _TAKEN)

    campaign = session.get(Campaign, campaign.id)
    assert campaign.snapshot_at is None and campaign.total_count == first
    assert _queued_senders(session, campaign.id) == engine_config["SEND_SENDERS"]
    assert sending.send(session, campaign.id) == 0.0  # sent the first part, then waited for more
    assert campaign_status(campaign.id) == CampaignStatus.SENDING
    assert received_counts(smtp_server) == {address(i): 1 for i in range(first)}

    sending.start(session, campaign.id)  # the task again, as the queue redelivers it
    campaign = session.get(Campaign, campaign.id)
    assert campaign.snapshot_at is not None and campaign.total_count == first + 5
    assert _queued_senders(session, campaign.id) == 2 * engine_config["SEND_SENDERS"]
    numbered = session.execute(select(Delivery.subscriber_id, Delivery.batch).where(
        Delivery.campaign_id == campaign.id).order_by(Delivery.subscriber_id)).all()
    assert [batch for _, batch in numbered] == [n // 2 for n in range(first + 5)]
    run_all_batches(session, campaign.id)
    assert campaign_status(campaign.id) == CampaignStatus.SENT
    assert_exactly_once(smtp_server, campaign.id, {address(i) for i in range(first + 5)})


def test_a_campaign_cancelled_while_its_snapshot_is_taken_takes_no_more_parts(
        session, engine_config, monkeypatch):
    engine_config.update(BATCH_SIZE=2)
    first, campaign = _launched_in_parts(session, monkeypatch)

    def cancel(call):  # cancelled by the time the first part is committed
        if call == 1:
            session.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="cancelled"))

    _dies_on_part(monkeypatch, 2, then=cancel)  # a second part is not even begun
    sending.start(session, campaign.id)
    assert session.scalar(select(func.count()).where(Delivery.campaign_id == campaign.id)) == first
    assert session.get(Campaign, campaign.id).snapshot_at is None
    assert _queued_senders(session, campaign.id) == 0


def test_a_start_that_began_paused_queues_no_sender_when_the_campaign_is_resumed_meanwhile(
        session, engine_config, monkeypatch):
    """The start task of a paused campaign only snapshots: staff resuming it while the parts
    go in have ``resume`` queue its own start, which queues the senders once (this one's
    senders would be a second set)."""
    engine_config.update(BATCH_SIZE=2)
    first, campaign = _launched_in_parts(session, monkeypatch)
    sending.pause(session, campaign.id)
    session.commit()

    def resumed(call):  # set sending by the time the first part is committed
        if call == 1:
            session.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="sending"))

    _dies_on_part(monkeypatch, 3, then=resumed)
    sending.start(session, campaign.id)
    campaign = session.get(Campaign, campaign.id)
    assert campaign.snapshot_at is not None and campaign.total_count == first + 5
    assert _queued_senders(session, campaign.id) == 0


def test_batches_send_each_recipient_once_even_when_run_twice(session, smtp_server, engine_config):
    lists = make_audience(session, 16)
    campaign = make_campaign(session, lists)
    session.commit()
    launch_and_snapshot(session, campaign.id)
    run_all_batches(session, campaign.id)
    for _ in range(3):  # senders delivered again by the queue
        assert sending.send(session, campaign.id) is None
    expected = {address(i) for i in range(16)}
    assert_exactly_once(smtp_server, campaign.id, expected)
    assert campaign_status(campaign.id) == CampaignStatus.SENT
    stats = sending.progress(session, campaign.id)
    assert (stats["total"], stats["sent"], stats["failed"], stats["queued"]) == (16, 16, 0, 0)
    message = smtp_server.to(address(3))[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"].endswith("@miasto.example.pl>")
    body = message.get_body(("plain",)).get_content()
    own_link = message["List-Unsubscribe"].strip("<>")
    assert own_link in body  # the recipient's own token, in the header and the body
    other = smtp_server.to(address(4))[0].message["List-Unsubscribe"]
    assert other != message["List-Unsubscribe"]


def test_unsubscribe_committed_before_claim_is_honoured(session, smtp_server, engine_config):
    lists = make_audience(session, 10)
    campaign = make_campaign(session, lists)
    session.commit()
    launch_and_snapshot(session, campaign.id)
    gone = session.scalar(select(Subscription).join(Subscription.subscriber).where(
        Subscription.subscriber.has(email=address(8))))
    gone.status = SubscriptionStatus.UNSUBSCRIBED
    suppression.suppress(session, address(9), "complaint")
    session.commit()
    run_all_batches(session, campaign.id)
    assert_exactly_once(smtp_server, campaign.id, {address(i) for i in range(8)})
    statuses = rows(campaign.id)
    assert statuses[address(8)] == statuses[address(9)] == DeliveryStatus.SKIPPED
    assert campaign_status(campaign.id) == CampaignStatus.SENT
    assert sending.progress(session, campaign.id)["queued"] == 0


def test_pause_stops_senders_resume_finishes_cancel_skips(session, smtp_server, engine_config,
                                                                   celery_worker):
    lists = make_audience(session, 14)
    campaign = make_campaign(session, lists)
    session.commit()
    sending.launch(session, campaign.id)
    sending.pause(session, campaign.id)  # before the worker's start task can fan out
    session.commit()
    sending.start(session, campaign.id)
    assert session.get(Campaign, campaign.id).total_count == 14
    assert sending.send(session, campaign.id) is None
    assert smtp_server.messages == []
    with pytest.raises(Conflict):
        sending.pause(session, campaign.id)
    sending.resume(session, campaign.id)
    session.commit()  # the worker thread sends the re-queued batches
    wait_until(lambda: campaign_status(campaign.id) == CampaignStatus.SENT)
    assert_exactly_once(smtp_server, campaign.id, {address(i) for i in range(14)})
    with pytest.raises(Conflict):
        sending.resume(session, campaign.id)
    with pytest.raises(Conflict):
        sending.cancel(session, campaign.id)

    other = make_campaign(session, lists, subject="Drugi")
    session.commit()
    sending.launch(session, other.id)
    sending.pause(session, other.id)
    session.commit()
    sending.start(session, other.id)
    sending.cancel(session, other.id)
    session.commit()
    assert sending.send(session, other.id) is None
    assert set(rows(other.id).values()) == {DeliveryStatus.SKIPPED}
    assert sending.progress(session, other.id)["status"] == "cancelled"


def test_launch_checks_state_and_content(session, engine_config):
    lists = make_audience(session, 1)
    campaign = make_campaign(session, lists)
    empty = Campaign(subject="Pusta")
    session.add(empty)
    session.commit()
    with pytest.raises(InvalidInput):
        sending.launch(session, empty.id)
    with pytest.raises(NotFound):
        sending.launch(session, 999999)
    sending.launch(session, campaign.id)
    session.commit()
    with pytest.raises(Conflict):
        sending.launch(session, campaign.id)
    with pytest.raises(Conflict):
        sending.retry_failed(session, empty.id)


def test_retry_failed_requeues_only_failed_rows(session, smtp_server, engine_config, celery_worker):
    lists = make_audience(session, 6)
    campaign = make_campaign(session, lists)
    session.commit()
    smtp_server.handler.replies[address(1)] = "554 5.7.1 Policy rejection"
    smtp_server.handler.replies[address(2)] = "550 5.1.1 No such user"
    sending.launch(session, campaign.id)
    session.commit()
    wait_until(lambda: campaign_status(campaign.id) == CampaignStatus.SENT)
    statuses = rows(campaign.id)
    assert statuses[address(1)] == DeliveryStatus.FAILED
    assert statuses[address(2)] == DeliveryStatus.BOUNCED
    assert suppression.is_suppressed(session, address(2))  # 5.1.x: never mailed again
    assert not suppression.is_suppressed(session, address(1))  # 5.7.x: not suppressed
    assert campaign_status(campaign.id) == CampaignStatus.SENT
    assert sending.progress(session, campaign.id)["failed"] == 2

    smtp_server.handler.replies.clear()
    sending.retry_failed(session, campaign.id)
    session.commit()
    wait_until(lambda: campaign_status(campaign.id) == CampaignStatus.SENT)  # the worker sends
    received = sorted(r for m in smtp_server.messages for r in m.recipients)
    assert received == sorted([address(0), address(1), address(3), address(4), address(5)]), [
        (m.recipients, m.message["Message-ID"], m.message["Subject"]) for m in smtp_server.messages]
    assert len(smtp_server.to(address(1))) == 1 and smtp_server.to(address(2)) == []
    assert rows(campaign.id)[address(2)] == DeliveryStatus.BOUNCED
    assert campaign_status(campaign.id) == CampaignStatus.SENT
    assert sending.progress(session, campaign.id)["failed"] == 1


def test_campaign_pauses_itself_after_consecutive_failures(session, smtp_server, engine_config):
    engine_config["SEND_PAUSE_AFTER_FAILURES"] = 4
    lists = make_audience(session, 10)
    campaign = make_campaign(session, lists)
    session.commit()
    for i in range(10):
        smtp_server.handler.replies[address(i)] = "554 5.7.1 Blocked"
    launch_and_snapshot(session, campaign.id)
    run_all_batches(session, campaign.id)
    stats = sending.progress(session, campaign.id)
    assert stats["status"] == "paused"
    assert stats["failed"] < 10  # it stopped before trying everyone
    count = stats["failed"]  # each failed for good: all of them in a row
    with force_locale("en"):
        assert sending.progress(session, campaign.id)["reason"] == \
            f"Paused automatically after {count} failed messages in a row (last: 554 5.7.1 Blocked)."
    with force_locale("pl"):
        assert sending.progress(session, campaign.id)["reason"] == \
            f"Wstrzymano automatycznie po {count} nieudanych wiadomościach z rzędu (ostatnia odpowiedź: 554 5.7.1 Blocked)."


def test_scheduled_campaign_is_launched_by_tick(session, engine_config):
    from datetime import timedelta

    from mailer.models.types import utcnow

    lists = make_audience(session, 2)
    campaign = make_campaign(session, lists)
    campaign.status = CampaignStatus.SCHEDULED
    campaign.scheduled_at = utcnow() + timedelta(hours=1)
    later = make_campaign(session, lists, subject="Później")
    later.status = CampaignStatus.SCHEDULED
    later.scheduled_at = utcnow() + timedelta(hours=1)
    session.commit()
    sending.tick(session)
    assert campaign_status(campaign.id) == CampaignStatus.SCHEDULED
    campaign = session.get(Campaign, campaign.id)
    campaign.scheduled_at = utcnow() - timedelta(seconds=1)
    session.commit()
    sending.tick(session)
    assert campaign_status(campaign.id) == CampaignStatus.SENDING
    assert campaign_status(later.id) == CampaignStatus.SCHEDULED


@pytest.fixture(autouse=True)
def _settle(app, celery_worker):
    """The worker thread (started once per run) goes idle before the tables are emptied:
    tasks enqueued by a test must not run into the next test's clean-up."""
    yield
    wait_worker_idle(celery_worker)


def _scheduled(session, lists, subject="Zaplanowana"):
    from datetime import timedelta

    from mailer.models.types import utcnow

    campaign = make_campaign(session, lists, subject=subject)
    campaign.status = CampaignStatus.SCHEDULED
    campaign.scheduled_at = utcnow() - timedelta(seconds=1)
    session.commit()
    return campaign


def test_a_cancel_racing_the_scheduled_launch_stays_cancelled(app, session, engine_config):
    """Beat's tick read the campaign as scheduled; staff cancelled it before the launch was
    written: the launch finds it moved and leaves it cancelled (it once became a draft)."""
    from sqlalchemy.orm import Session

    from mailer.extensions import db

    campaign = _scheduled(session, make_audience(session, 2))
    tick = Session(db.engine)
    try:
        assert tick.get(Campaign, campaign.id).status == CampaignStatus.SCHEDULED  # read, then...
        staff = Session(db.engine)
        sending.cancel(staff, campaign.id)
        staff.commit()
        staff.close()
        with pytest.raises(Conflict):
            sending.launch(tick, campaign.id)  # ... the stale object says scheduled
        tick.rollback()
        sending.tick(tick)
    finally:
        tick.close()
    assert campaign_status(campaign.id) == CampaignStatus.CANCELLED


def test_a_scheduled_campaign_whose_template_broke_pauses_with_the_reason(session, engine_config):
    from mailer.models import Template, TemplateKind

    lists = make_audience(session, 2)
    broken = Template(name="Zepsuty", kind=TemplateKind.CONTENT, html="{{ events[99].title }}", text="")
    session.add(broken)
    session.flush()
    campaign = _scheduled(session, lists)
    campaign.template_id = broken.id
    session.commit()
    sending.tick(session)
    assert campaign_status(campaign.id) == CampaignStatus.PAUSED
    campaign = session.get(Campaign, campaign.id)
    session.refresh(campaign)
    assert campaign.status_code == "launch"
    with force_locale("en"):
        assert sending.reason(campaign).startswith("The campaign could not start:")
    with pytest.raises(InvalidInput):  # still broken: it stays paused
        sending.resume(session, campaign.id)


def test_a_scheduled_campaign_whose_audience_left_goes_back_to_draft(session, engine_config):
    """Everyone unsubscribed between scheduling and the due time: the tick does not start a
    campaign to nobody; it becomes an editable draft again, saying why."""
    from sqlalchemy import update

    from mailer.models import Subscription, SubscriptionStatus

    lists = make_audience(session, 2)
    campaign = _scheduled(session, lists)
    session.execute(update(Subscription).values(status=SubscriptionStatus.UNSUBSCRIBED))
    session.commit()
    sending.tick(session)
    assert campaign_status(campaign.id) == CampaignStatus.DRAFT
    campaign = session.get(Campaign, campaign.id)
    session.refresh(campaign)
    assert campaign.scheduled_at is None and campaign.status_code == "launch"
    with force_locale("pl"):
        assert sending.reason(campaign) == ("Nie udało się rozpocząć wysyłki kampanii: Nikt nie otrzymałby tej "
                                            "kampanii: jej listy i segmenty nie mają potwierdzonych "
                                            "subskrybentów. Pozostaje szkicem.")


@pytest.mark.parametrize("offered", [True, False])
def test_polish_letters_before_the_at_go_with_smtputf8_or_fail_alone(app, session, engine_config, offered):
    """RFC 6531: małgorzata.wiśniewska@ goes out with MAIL FROM ... SMTPUTF8 where the relay
    offers it. Where it does not, that one delivery fails at once with the reason recorded
    (permanent: never retried; not counted as the relay failing, so the campaign does not
    pause) and everyone else gets the mail. An IDN domain is written as its A-label."""
    from mailer.models import MailingList, Subscriber
    from mailer.subscribers import normalize_email
    from tests.helpers_engine import prepare_without_fan_out
    from tests.smtp_server import SMTPServer

    engine_config.update(SEND_PAUSE_AFTER_FAILURES=1)
    news = MailingList(name="Wiadomości", slug=f"w-{offered}")
    session.add(news)
    addresses = [normalize_email(raw) for raw in ("Małgorzata.Wiśniewska@example.pl", "jan@żółw.pl",
                                                  "anna@example.org")]
    assert addresses == ["małgorzata.wiśniewska@example.pl", "jan@xn--w-uga1v8h.pl", "anna@example.org"]
    for email in addresses:
        session.add(Subscription(subscriber=Subscriber(email=email), list=news, status=SubscriptionStatus.CONFIRMED))
    campaign = make_campaign(session, [news])
    session.commit()
    server = SMTPServer(enable_SMTPUTF8=offered)
    server.start()
    saved = app.config["SMTP_URL"]
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{server.port}"
    try:
        prepare_without_fan_out(session, campaign.id)
        run_all_batches(session, campaign.id)
        wait_until(lambda: campaign_status(campaign.id) == CampaignStatus.SENT, timeout=20)
    finally:
        app.config["SMTP_URL"] = saved
        server.stop()
    received = sorted(r for m in server.messages for r in m.recipients)
    states = rows(campaign.id)
    failed = session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id,
                                                    Delivery.status == DeliveryStatus.FAILED)).all()
    if offered:
        assert received == sorted(addresses)
        assert set(states.values()) == {DeliveryStatus.SENT} and not failed
    else:
        assert received == ["anna@example.org", "jan@xn--w-uga1v8h.pl"]
        assert states["małgorzata.wiśniewska@example.pl"] == DeliveryStatus.FAILED
        assert [d.attempts for d in failed] == [1]
        assert failed[0].last_error == "553 5.6.7 the address needs SMTPUTF8, which the mail server does not offer"
        session.expire_all()
        assert session.get(Campaign, campaign.id).failed_count == 1

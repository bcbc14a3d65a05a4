"""The sending engine: launch, snapshot, senders, pause/resume/cancel, retries, progress.

Flow: ``launch`` (a view, or beat's tick for a schedule) freezes what the campaign sends,
marks it sending and queues "mailer.start_campaign"; ``start`` snapshots the audience into
Delivery rows and their batches and queues ``SEND_SENDERS`` "mailer.send_campaign" tasks;
each sender (``send``) leases batch after batch, sends it through ``mailer.dispatch`` over
one SMTP connection that it keeps for the whole run, and gives it back; ``tick`` (beat)
launches due schedules, re-queues the senders of a stalled campaign and finishes campaigns.

Exactly once: a batch's rows are sent and recorded only by the holder of its lease
(``mailer.deliveries``), each acceptance is journaled as the server answers it
(``mailer.journal``), and a new holder records what the journal says was accepted before
sending anything. The windows that remain (see ``mailer.dispatch``) are a few messages in
flight per killed worker and a message whose connection was lost before its answer; both
are counted in ``Campaign.doubtful_count``.

A relay that says "try later" (4xx) or does not answer makes the campaign back off on its
own (``retry_at``, doubling each time, with jitter) and slow down; it pauses for a person
only when nothing has been accepted for ``SEND_PAUSE_AFTER_SECONDS``, or after
``SEND_PAUSE_AFTER_FAILURES`` permanent refusals in a row.

``launch``, ``pause``, ``resume``, ``cancel`` and ``retry_failed`` leave the commit to the
caller; ``start``, ``send`` and ``tick`` are task bodies and commit as they go.
"""

import random
import time
import uuid
from datetime import datetime, timedelta
from functools import partial

from flask import current_app
from flask_babel import format_time, gettext, ngettext
from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from . import campaign_mail, deliveries, recipients
from . import campaign_states as states
from .dispatch import Item, Outcome, Report, Run, dispatch
from .errors import Conflict, InvalidInput
from .extensions import db
from .jobs import enqueue
from .journal import JournalDown, open_journal
from .lookups import get_or_404
from .mail.message import now_date
from .mail.transport import from_config
from .models import Campaign, CampaignStatus, DeliveryStatus
from .models.types import utcnow
from .ratelimit import ConnectionSlot, RateLimiter
from .suppression import email_hash

START_TASK = "mailer.start_campaign"
SEND_TASK = "mailer.send_campaign"
SHORT_WAIT = 5.0  # a sender sleeps through waits this short; longer ones are a continuation
MAX_COUNTDOWN = 300.0  # far below the broker's visibility timeout (STANDARDS 28)
SENDING = CampaignStatus.SENDING
# The snapshot's parts (``start``): the first of this many batches, each next one this many
# times bigger. Inserting a row takes PostgreSQL about a twentieth of the time sending it
# takes, so each part is in before the senders are through the one before.
FIRST_PART, PART_GROWTH = 4, 16
SNAPSHOT_POLL = 0.1  # seconds a sender out of batches waits for the snapshot's next part


# --- Staff actions (the caller commits) ---------------------------------------------

def launch(session: Session, campaign_id: int) -> Campaign:
    """Draft or scheduled -> sending, now: what it sends is frozen here. Raises NotFound,
    Conflict (another state), InvalidInput (no list, no event, nobody to send to, a
    broken template)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    states.check(campaign, "launch")
    if not campaign.campaign_events:
        raise InvalidInput("Choose at least one event.", "event_ids")
    recipients.require_audience(session, campaign)
    campaign_mail.freeze(session, campaign)  # a broken template fails here, not in a worker
    states.require(session, campaign, "launch", started_at=utcnow(), status_code="",
                   status_reason="")
    enqueue(session, START_TASK, campaign.id)
    return campaign


def pause(session: Session, campaign_id: int) -> Campaign:
    """Sending -> paused; senders stop within a fraction of a second. Raises NotFound,
    Conflict."""
    campaign = get_or_404(session, Campaign, campaign_id)
    states.require(session, campaign, "pause", status_code="", status_reason="")
    return campaign


def resume(session: Session, campaign_id: int) -> Campaign:
    """Paused -> sending; re-queues the senders (and the start, if the campaign never
    started). Raises NotFound, Conflict, InvalidInput (a campaign that could not start
    still has a broken template)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    states.check(campaign, "resume")
    if campaign_mail.frozen(session, campaign.id) is None:
        campaign_mail.freeze(session, campaign)
    states.require(session, campaign, "resume", status_code="", status_reason="",
                   consecutive_failures=0, failing_since=None, retry_at=None, backoff_level=0,
                   progress_at=utcnow(), started_at=campaign.started_at or utcnow())
    _fan_out(session, campaign)
    return campaign


def cancel(session: Session, campaign_id: int) -> Campaign:
    """Stop for good: rows not yet sent are marked skipped. Raises NotFound, Conflict."""
    campaign = get_or_404(session, Campaign, campaign_id)
    states.require(session, campaign, "cancel", finished_at=utcnow(), status_code="",
                   status_reason="")
    skipped = deliveries.skip_open(session, campaign.id, "cancelled")
    session.execute(update(Campaign).where(Campaign.id == campaign.id).values(
        skipped_count=Campaign.skipped_count + skipped).execution_options(synchronize_session=False))
    session.expire(campaign)
    return campaign


def retry_failed(session: Session, campaign_id: int) -> Campaign:
    """Re-queue the failed rows only (never bounced or sent ones); a sent campaign goes
    back to sending. Raises NotFound, Conflict (not started, or cancelled)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    if campaign.status not in (SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT):
        raise Conflict("Only failed messages of a started campaign can be retried.")
    count = deliveries.requeue_failed(session, campaign.id)
    if not count:
        return campaign
    reset = {"failed_count": Campaign.failed_count - count, "consecutive_failures": 0,
             "failing_since": None, "progress_at": utcnow()}
    if not states.move(session, campaign.id, "reopen", finished_at=None, **reset):
        session.execute(update(Campaign).where(Campaign.id == campaign.id).values(**reset)
                        .execution_options(synchronize_session=False))
    session.expire(campaign)
    if campaign.status == SENDING:
        _fan_out(session, campaign)
    return campaign


def progress(session: Session, campaign_id: int) -> dict:
    """Counts from the campaign's counters (no scan of deliveries), with the rate in
    messages per second and an ETA in seconds (None when unknown). Raises NotFound."""
    campaign = get_or_404(session, Campaign, campaign_id)
    total = campaign.total_count or 0
    sent = campaign.sent_count or 0
    failed = campaign.failed_count or 0
    skipped = campaign.skipped_count or 0
    queued = max(0, total - sent - failed - skipped)
    rate = 0.0
    if campaign.started_at and sent:
        end = campaign.finished_at or (campaign.progress_at if campaign.status != SENDING
                                       else utcnow())
        elapsed = ((end or utcnow()) - campaign.started_at).total_seconds()
        rate = sent / elapsed if elapsed > 0 else 0.0
    eta = round(queued / rate) if rate > 0 and queued and campaign.status == SENDING else None
    return {"status": str(campaign.status), "total": total, "queued": queued, "sent": sent,
            "failed": failed, "skipped": skipped, "doubtful": campaign.doubtful_count or 0,
            "rate": round(rate, 1), "eta_seconds": eta, "reason": reason(campaign),
            "percent": percent(campaign.status, total, queued, sent)}


def percent(status: CampaignStatus | str, total: int, queued: int, sent: int) -> int:
    """The progress bar's width, rounded down: the share of recipients dealt with (sent,
    failed or skipped) while the campaign runs or once it is sent; of a cancelled campaign
    only the share that was sent (the rest never went: it is not progress)."""
    if not total:
        return 100 if status == CampaignStatus.SENT else 0
    done = sent if status == CampaignStatus.CANCELLED else total - queued
    return done * 100 // total


def reason(campaign: Campaign) -> str:
    """Why the campaign waits or stopped, in the current language (the server's last
    answer kept as it came)."""
    code, detail = campaign.status_code, campaign.status_reason or ""
    if code == "failures" and campaign.status == CampaignStatus.PAUSED:
        return ngettext("Paused automatically after %(num)d failed message in a row (last: %(error)s).",
                        "Paused automatically after %(num)d failed messages in a row (last: %(error)s).",
                        campaign.consecutive_failures, error=detail)
    if code == "failing" and campaign.status == CampaignStatus.PAUSED:
        return gettext("Paused automatically: the mail server accepted nothing for %(minutes)d "
                       "minutes (last answer: %(error)s).",
                       minutes=current_app.config["SEND_PAUSE_AFTER_SECONDS"] // 60, error=detail)
    if code == "backoff" and campaign.status == SENDING and campaign.retry_at:
        return gettext("The mail server asked to wait (%(error)s): sending again at %(time)s.",
                       error=detail, time=format_time(campaign.retry_at, "short"))
    if code == "refused" and campaign.status == CampaignStatus.PAUSED:
        return gettext("Paused automatically: the mail server refused the connection (%(error)s).",
                       error=detail)
    if code == "bounces" and campaign.status == CampaignStatus.PAUSED:
        return gettext(detail)  # a message id of mailer.bounces.handling
    if code == "launch":
        return gettext("The campaign could not start: %(error)s", error=gettext(detail))
    return ""


def _fan_out(session: Session, campaign: Campaign) -> None:
    """Queue the campaign's start if its snapshot is missing, else its senders."""
    if campaign.snapshot_at is None:
        enqueue(session, START_TASK, campaign.id)
        return
    _queue_senders(session, campaign.id)


def _queue_senders(session: Session, campaign_id: int) -> None:
    for _ in range(current_app.config["SEND_SENDERS"]):
        enqueue(session, SEND_TASK, campaign_id)


# --- Task bodies (they commit) ------------------------------------------------------

def start(session: Session, campaign_id: int) -> None:
    """Snapshot the audience and queue the senders; safe to run twice (it goes on where a
    run that died stopped). The snapshot is taken in growing parts, each committed: the
    senders are queued once the first part (``FIRST_PART`` batches) is in, and send it
    while the rest is inserted, so a campaign to a million starts sending within a second,
    not once its whole snapshot is in (they wait for more batches until then)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status not in (SENDING, CampaignStatus.PAUSED):
        return
    # Senders are queued only for a campaign sending when this task began and still sending
    # (one resumed meanwhile has its own start task queued by ``resume``).
    was_sending = campaign.status == SENDING
    size = current_app.config["BATCH_SIZE"]
    part, queued = FIRST_PART * size, False
    while campaign.snapshot_at is None:
        total, complete = deliveries.snapshot_part(session, campaign.id, size, part)
        campaign.total_count, campaign.progress_at = total, utcnow()
        if complete:
            campaign.snapshot_at = campaign.progress_at
        elif not queued and was_sending and campaign.status == SENDING:
            _queue_senders(session, campaign.id)
            queued = True
        session.commit()
        if campaign.status not in (SENDING, CampaignStatus.PAUSED):
            return  # cancelled meanwhile: the rest of the audience is not needed
        part *= PART_GROWTH
    if was_sending and campaign.status == SENDING:
        if not queued:
            _fan_out(session, campaign)
        _finish_if_done(session, campaign.id)
    session.commit()


def send(session: Session, campaign_id: int) -> float | None:
    """One sender: lease batch after batch of the campaign and send it, until none is left
    for it, the campaign stops, or SEND_SENDER_SECONDS pass. Returns after how many seconds
    this sender should run again (batches waiting for a retry, a back-off, the rate limit,
    or its time was up), or None."""
    config = current_app.config
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != SENDING:
        return None
    mail = campaign_mail.mail_for(session, campaign)
    session.commit()
    lease = config["SEND_LEASE_SECONDS"]
    slot = ConnectionSlot(config, lease=lease)
    if not slot.acquire(timeout=SHORT_WAIT):
        return SHORT_WAIT  # every SMTP connection slot is busy: come back soon
    transport, limiter = from_config(config), RateLimiter(config)
    holder = uuid.uuid4().hex
    until = time.monotonic() + config["SEND_SENDER_SECONDS"]
    try:
        while time.monotonic() < until:
            # Leased only while the campaign sends and does not back off; committed with the
            # batch's opening (``_send_batch``).
            leased = deliveries.lease_next_batch(session, campaign_id, holder, lease)
            if leased is None:
                session.commit()
                wait = _waiting(session, campaign_id)
                if wait != 0.0:
                    return wait
                wait = deliveries.next_batch_in(session, campaign_id)
                if wait is None and not _snapshotted(session, campaign_id):
                    wait = SNAPSHOT_POLL  # the snapshot's next part is on its way
                session.commit()
                if wait is None:
                    break  # nothing left for this sender
                if wait > SHORT_WAIT:
                    return wait
                time.sleep(wait)
                continue
            then = _send_batch(session, mail, campaign_id, leased, holder, transport, limiter, slot)
            if then is not None:
                return then
        else:
            return 0.0  # its time is up: a fresh task goes on
    finally:
        transport.close()
        slot.release()
    _finish_if_done(session, campaign_id)
    session.commit()
    return None


def _waiting(session: Session, campaign_id: int) -> float | None:
    """0.0 when the campaign is sending and not backing off; else the seconds to wait
    for its back-off, or None when it no longer sends."""
    row = session.execute(select(Campaign.status, Campaign.retry_at)
                          .where(Campaign.id == campaign_id)).first()
    session.commit()
    if row is None or row.status != SENDING:
        return None
    if row.retry_at is not None and row.retry_at > utcnow():
        return (row.retry_at - utcnow()).total_seconds()
    return 0.0


def _send_batch(session: Session, mail, campaign_id: int, leased: tuple[int, int], holder: str,
                transport, limiter: RateLimiter, slot: ConnectionSlot) -> float | None:
    """Send one leased batch. Returns None to go on with the next batch, or the seconds
    after which this sender should run again (it stops now)."""
    config = current_app.config
    batch_id, batch = leased
    lease = config["SEND_LEASE_SECONDS"]
    try:
        journal = open_journal(config, f"c{campaign_id}-b{batch}")
        marks = journal.read()
    except JournalDown as exc:  # Redis is away: give the batch back and wait a little
        deliveries.release_batch(session, batch_id, campaign_id, batch, holder)
        session.commit()
        return _back_off(session, campaign_id, f"journal: {exc}")
    try:
        opened = deliveries.open_rows(session, campaign_id, batch, batch_id, holder, lease, marks)
        session.commit()
        if opened is None:
            return None  # taken over meanwhile
        rows = opened[0]
        if marks:
            journal.clear()  # recorded: a later holder must not count it again
        date = now_date()
        shown = mail.events.for_batch(session, [row.subscriber_id for row in rows])
        items = [Item(row.delivery_id, row.email, row.attempts,
                      partial(mail.message, row, date, shown.get(row.subscriber_id)))
                 for row in rows]
        store = deliveries.BatchStore(db.engine, campaign_id, batch_id, holder, lease,
                                      decide=partial(_tally, config),
                                      judge=partial(_judge, config, campaign_id))
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        report = dispatch(items, Run(transport, journal, store, lease, app.app_context, limiter,
                                     slot, pause_after=config["SEND_PAUSE_AFTER_FAILURES"]))
        if report.stopped != "lost" and not report.unrecorded:
            deliveries.release_batch(session, batch_id, campaign_id, batch, holder)
            session.commit()
            if report.stopped not in ("journal", "slot"):
                journal.clear()
    except JournalDown as exc:  # recorded in the database, so nothing is lost
        report = Report(stopped="journal", last_error=f"journal: {exc}")
    finally:
        journal.close()
    failure = report.connection_error
    if failure is not None and 500 <= failure.code < 600:  # refused for good (a wrong password)
        states.move(session, campaign_id, "stop", status_code="refused",
                    status_reason=report.last_error[:500])
        session.commit()
        return None
    if failure is not None or report.stopped in ("backoff", "journal", "slot"):
        return _back_off(session, campaign_id, report.last_error)
    if report.stopped == "rate":
        return report.rate_wait
    if report.stopped in ("stop", "failures"):
        return None if _waiting(session, campaign_id) is None else 0.0
    return None


def _back_off(session: Session, campaign_id: int, error: str) -> float | None:
    """The relay refuses for now or does not answer: every sender of the campaign waits,
    twice as long each time (with jitter, capped); the campaign pauses for a person once
    nothing has been accepted for SEND_PAUSE_AFTER_SECONDS. Returns the wait (None: paused)."""
    config = current_app.config
    now = utcnow()
    campaign = get_or_404(session, Campaign, campaign_id)
    failing_since = campaign.failing_since or now
    if (now - failing_since).total_seconds() >= config["SEND_PAUSE_AFTER_SECONDS"]:
        states.move(session, campaign_id, "stop", status_code="failing", status_reason=error[:500])
        session.commit()
        return None
    level = (campaign.backoff_level or 0) + 1
    wait = backoff(level, config)
    session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status == SENDING)
                    .values(backoff_level=level, retry_at=now + timedelta(seconds=wait),
                            failing_since=failing_since, status_code="backoff",
                            status_reason=error[:500])
                    .execution_options(synchronize_session=False))
    session.commit()
    return wait


def _tally(config, outcomes: list[Outcome]) -> deliveries.Tally:
    """The engine's policy for each outcome: sent; a 4xx or an unanswered message tried
    again later (backoff with jitter) until SEND_MAX_ATTEMPTS; a 5xx failed for good, and a
    5.1.x hard bounce also suppresses the address (5.7.x policy blocks do not)."""
    tally = deliveries.Tally()
    now = utcnow()
    retry_at: dict[int, datetime] = {}  # one jittered time per attempt number and flush
    for outcome in outcomes:
        item, result = outcome.item, outcome.result
        if result is not None and result.ok:
            tally.sent.append(item.key)
            tally.any_accepted, tally.permanent_streak, tally.failing = True, 0, False
            continue
        tally.failing = True
        if result is None:
            error = outcome.error
            tally.failed.setdefault((DeliveryStatus.FAILED.value, error), []).append(item.key)
            tally.permanent_streak += 1
        else:
            error = f"{result.code} {result.error}".strip()
            tally.doubtful += result.doubt
            attempts = item.attempts + 1
            if result.temporary and attempts < config["SEND_MAX_ATTEMPTS"]:
                when = retry_at.setdefault(attempts, now + timedelta(seconds=backoff(attempts, config)))
                tally.retry.setdefault((when, error[:500]), []).append(item.key)
            else:
                status = DeliveryStatus.BOUNCED if result.hard_bounce else DeliveryStatus.FAILED
                tally.failed.setdefault((status.value, error[:500]), []).append(item.key)
                if result.hard_bounce:
                    tally.bounced.append(email_hash(item.email))
                if not result.temporary and not result.refused_here:
                    tally.permanent_streak += 1
        tally.last_error = error[:500]
    return tally


def _judge(config, campaign_id: int, conn: Connection, standing: deliveries.Standing,
           tally: deliveries.Tally) -> str:
    """After a flush: go on, or stop (paused or cancelled by staff, or paused here after
    SEND_PAUSE_AFTER_FAILURES permanent refusals in a row)."""
    if standing.status != SENDING:
        return "stop"
    limit = config["SEND_PAUSE_AFTER_FAILURES"]
    if limit and standing.consecutive_failures >= limit:
        states.move(conn, campaign_id, "stop", status_code="failures", status_reason=tally.last_error)
        return "stop"
    return "ok"


def backoff(attempts: int, config) -> float:
    """Exponential delay before attempt ``attempts + 1``, with full jitter on its upper half."""
    ceiling = min(config["SEND_RETRY_MAX_SECONDS"], config["SEND_RETRY_BASE_SECONDS"] * 2 ** (attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def tick(session: Session) -> None:
    """Beat: launch due schedules; re-queue the senders of a sending campaign whose due
    batches nobody has held for SEND_STALL_SECONDS (lost tasks, killed workers); finish
    campaigns."""
    config = current_app.config
    now = utcnow()
    due = session.scalars(select(Campaign.id).where(
        Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at <= now)).all()
    for campaign_id in due:
        try:
            launch(session, campaign_id)
            session.commit()
        except Conflict:  # cancelled, unscheduled or launched meanwhile
            session.rollback()
        except recipients.NoRecipients as exc:  # nobody left by now: back to an editable draft
            session.rollback()
            states.move(session, campaign_id, "unschedule", scheduled_at=None, status_code="launch",
                        status_reason=str(exc))
            session.commit()
        except InvalidInput as exc:
            session.rollback()
            states.move(session, campaign_id, "stop", status_code="launch", status_reason=str(exc))
            session.commit()
    stall = timedelta(seconds=config["SEND_STALL_SECONDS"])
    for campaign in session.scalars(select(Campaign).where(Campaign.status == SENDING)).all():
        quiet = (campaign.progress_at or campaign.started_at or now) < now - stall
        if campaign.snapshot_at is None:
            if quiet:
                enqueue(session, START_TASK, campaign.id)  # start is idempotent
                campaign.progress_at = now
        elif not _finish_if_done(session, campaign.id):
            backing_off = campaign.retry_at is not None and campaign.retry_at > now
            if quiet and not backing_off and deliveries.stalled(session, campaign.id):
                _fan_out(session, campaign)
                campaign.progress_at = now  # at most one re-queue per stall period
        session.commit()


def _finish_if_done(session: Session, campaign_id: int) -> bool:
    """Mark a sending campaign sent when no batch is left open."""
    if deliveries.has_open(session, campaign_id):
        return False
    return states.move(session, campaign_id, "finish", finished_at=utcnow(), status_code="",
                       status_reason="") if _snapshotted(session, campaign_id) else False


def _snapshotted(session: Session, campaign_id: int) -> bool:
    return session.scalar(select(Campaign.snapshot_at).where(Campaign.id == campaign_id)) is not None

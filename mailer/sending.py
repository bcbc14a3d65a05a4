"""The sending engine: launch, snapshot, batches, pause/resume/cancel, retries, progress.

Flow: ``launch`` (a view) marks the campaign sending and queues "mailer.start_campaign";
``start`` snapshots the audience into Delivery rows (one INSERT ... SELECT) and queues one
"mailer.send_batch" per batch; ``send_batch`` claims its rows chunk by chunk, sends each
chunk over one SMTP connection and records the outcomes in bulk; ``tick`` (beat) launches
due schedules, re-queues the batches of a stalled campaign and finishes campaigns.

Exactly once: a row is sent only by whoever claimed it (atomic UPDATE ... RETURNING), and
its "sent" state is committed with the chunk right after the server's answers. A batch
run twice finds nothing left to claim; a worker killed mid-chunk leaves its rows
"sending" until their lease (SEND_LEASE_SECONDS) runs out, then they are claimed again.
The one duplicate window: a message the server accepted (250) whose chunk was not yet
committed when the worker died is sent again, at most one chunk (SEND_CHUNK_SIZE) per
killed worker, and only for the tenth of a second a chunk takes to go out. Chunks of 250
rather than 100 cost that much more exposure and send 25 % faster (two transactions per
chunk, claim and record, are the fixed cost); pause and cancel also act within one chunk.

``launch``, ``pause``, ``resume``, ``cancel`` and ``retry_failed`` leave the commit to the
caller; ``start``, ``send_batch`` and ``tick`` are task bodies and commit as they go.
"""

import random
from collections import OrderedDict
from datetime import timedelta

from flask import current_app
from flask_babel import gettext, ngettext
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import deliveries, suppression
from .email_templates import compile_for
from .errors import Conflict, InvalidInput, NotFound
from .jobs import enqueue
from .mail.compose import CampaignMailer, Recipient
from .mail.compose import _now_date as message_date
from .mail.transport import Result, from_config
from .models import Campaign, CampaignStatus, DeliveryStatus
from .models.types import utcnow
from .ratelimit import ConnectionSlot, RateLimiter

START_TASK = "mailer.start_campaign"
BATCH_TASK = "mailer.send_batch"
_mailers: OrderedDict = OrderedDict()  # (campaign id, started_at) -> CampaignMailer, per process


def _get(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("This campaign does not exist.")
    return campaign


# --- Staff actions (the caller commits) ---------------------------------------------

def launch(session: Session, campaign_id: int) -> Campaign:
    """Draft or scheduled -> sending, now. Raises NotFound, Conflict (another state),
    InvalidInput (no list, no event, a broken template)."""
    campaign = _get(session, campaign_id)
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise Conflict("Only a draft or scheduled campaign can be sent.")
    if not campaign.lists:
        raise InvalidInput("Choose at least one list.", "list_ids")
    if not campaign.campaign_events:
        raise InvalidInput("Choose at least one event.", "event_ids")
    compile_for(session, campaign)  # a broken template fails here, not in the worker
    campaign.status = CampaignStatus.SENDING
    campaign.started_at = utcnow()
    campaign.status_reason = ""
    enqueue(session, START_TASK, campaign.id)
    return campaign


def pause(session: Session, campaign_id: int) -> Campaign:
    """Sending -> paused; batches stop after their current chunk. Raises NotFound, Conflict."""
    campaign = _get(session, campaign_id)
    if campaign.status != CampaignStatus.SENDING:
        raise Conflict("Only a campaign that is sending can be paused.")
    campaign.status = CampaignStatus.PAUSED
    campaign.status_reason = ""
    return campaign


def resume(session: Session, campaign_id: int) -> Campaign:
    """Paused -> sending; re-queues the open batches. Raises NotFound, Conflict."""
    campaign = _get(session, campaign_id)
    if campaign.status != CampaignStatus.PAUSED:
        raise Conflict("Only a paused campaign can be resumed.")
    campaign.status = CampaignStatus.SENDING
    campaign.status_reason = ""
    campaign.consecutive_failures = 0
    campaign.progress_at = utcnow()
    _fan_out(session, campaign)
    return campaign


def cancel(session: Session, campaign_id: int) -> Campaign:
    """Stop for good: rows not yet sent are marked skipped. Raises NotFound, Conflict."""
    campaign = _get(session, campaign_id)
    if campaign.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        raise Conflict("This campaign has already finished.")
    campaign.status = CampaignStatus.CANCELLED
    campaign.finished_at = utcnow()
    session.flush()
    skipped = deliveries.skip_open(session, campaign.id, "cancelled")
    campaign.skipped_count = (campaign.skipped_count or 0) + skipped
    return campaign


def retry_failed(session: Session, campaign_id: int) -> Campaign:
    """Re-queue the failed rows only (never bounced or sent ones); a sent campaign goes
    back to sending. Raises NotFound, Conflict (not started, or cancelled)."""
    campaign = _get(session, campaign_id)
    if campaign.status not in (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT):
        raise Conflict("Only failed messages of a started campaign can be retried.")
    count = deliveries.requeue_failed(session, campaign.id)
    if not count:
        return campaign
    campaign.failed_count = max(0, (campaign.failed_count or 0) - count)
    campaign.consecutive_failures = 0
    if campaign.status == CampaignStatus.SENT:
        campaign.status = CampaignStatus.SENDING
        campaign.finished_at = None
    campaign.progress_at = utcnow()
    if campaign.status == CampaignStatus.SENDING:
        _fan_out(session, campaign)
    return campaign


def progress(session: Session, campaign_id: int) -> dict:
    """Counts from the campaign's counters (no scan of deliveries), with the rate in
    messages per second and an ETA in seconds (None when unknown). Raises NotFound."""
    campaign = _get(session, campaign_id)
    total = campaign.total_count or 0
    sent = campaign.sent_count or 0
    failed = campaign.failed_count or 0
    queued = max(0, total - sent - failed - (campaign.skipped_count or 0))
    rate = 0.0
    if campaign.started_at and sent:
        end = campaign.finished_at or (campaign.progress_at if campaign.status != CampaignStatus.SENDING
                                       else utcnow())
        elapsed = ((end or utcnow()) - campaign.started_at).total_seconds()
        rate = sent / elapsed if elapsed > 0 else 0.0
    eta = round(queued / rate) if rate > 0 and queued and campaign.status == CampaignStatus.SENDING else None
    return {"status": str(campaign.status), "total": total, "queued": queued, "sent": sent,
            "failed": failed, "skipped": campaign.skipped_count or 0, "rate": round(rate, 1),
            "eta_seconds": eta, "reason": reason(campaign)}


def reason(campaign: Campaign) -> str:
    """Why the campaign stopped, in the current language: the automatic pause with the
    last server answer (kept as it came), or a launch error's message."""
    if not campaign.status_reason:
        return ""
    if campaign.status == CampaignStatus.PAUSED and campaign.consecutive_failures:
        return ngettext("Paused automatically after %(num)d failed message in a row (last: %(error)s).",
                        "Paused automatically after %(num)d failed messages in a row (last: %(error)s).",
                        campaign.consecutive_failures, error=campaign.status_reason)
    return gettext(campaign.status_reason)


def _fan_out(session: Session, campaign: Campaign) -> None:
    """Queue the campaign's start if its snapshot is missing, else its open batches."""
    if campaign.snapshot_at is None:
        enqueue(session, START_TASK, campaign.id)
        return
    for batch in deliveries.open_batches(session, campaign.id):
        enqueue(session, BATCH_TASK, campaign.id, batch)


# --- Task bodies (they commit) ------------------------------------------------------

def start(session: Session, campaign_id: int) -> None:
    """Snapshot the audience once and queue its batches; safe to run twice."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status not in (CampaignStatus.SENDING, CampaignStatus.PAUSED):
        return
    if campaign.snapshot_at is None:
        now = utcnow()
        campaign.total_count = deliveries.snapshot(session, campaign.id,
                                                   current_app.config["BATCH_SIZE"])
        campaign.snapshot_at = now
        campaign.progress_at = now
    if campaign.status == CampaignStatus.SENDING:
        _fan_out(session, campaign)
        _finish_if_done(session, campaign.id)
    session.commit()


def send_batch(session: Session, campaign_id: int, batch: int) -> float | None:
    """Send what is claimable in one batch, chunk by chunk, until it is empty or the
    campaign stops sending. Returns the seconds after which rows of this batch waiting
    for a retry (after a 4xx) become due, or None when none wait."""
    config = current_app.config
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return None
    mailer = _mailer(session, campaign)
    session.commit()
    lease = config["SEND_LEASE_SECONDS"]
    slot = ConnectionSlot(config, lease=lease)
    if not slot.acquire():
        return 5.0  # every SMTP connection slot is busy: try again soon
    limiter = RateLimiter(config)
    transport = from_config(config)
    status = _status(session, campaign_id)  # the slot may have taken a while
    try:
        while status == CampaignStatus.SENDING:
            # Tokens first, rows second: no claimed row waits on the rate limit (and its lease).
            allowed = limiter.take(config["SEND_CHUNK_SIZE"], max_wait=2.0)
            if not allowed:
                slot.refresh()
                status = _status(session, campaign_id)  # paused or cancelled meanwhile?
                continue
            rows, skipped = deliveries.claim(session, campaign_id, batch, allowed, lease)
            session.commit()
            if not rows and not skipped:
                break
            outcomes = _send_chunk(session, mailer, transport, rows, skipped)
            # The status comes back with the counters: a pause stops the batch after this chunk.
            status = deliveries.record(session, campaign_id, outcomes, config["SEND_PAUSE_AFTER_FAILURES"],
                                       _last_error(outcomes))
            session.commit()
            slot.refresh()
    finally:
        transport.close()
        slot.release()
    _finish_if_done(session, campaign_id)
    session.commit()
    if _status(session, campaign_id) != CampaignStatus.SENDING:
        return None  # paused or cancelled: resume re-queues the batches
    due = deliveries.next_due(session, campaign_id, batch)
    session.commit()
    if due is None:
        return None
    return max(0.0, (due - utcnow()).total_seconds())


def tick(session: Session) -> None:
    """Beat: launch due schedules; re-queue the batches of a sending campaign that made
    no progress for SEND_STALL_SECONDS (lost tasks, killed workers); finish campaigns."""
    config = current_app.config
    now = utcnow()
    due = session.scalars(select(Campaign.id).where(
        Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at <= now)).all()
    for campaign_id in due:
        try:
            launch(session, campaign_id)
        except (Conflict, InvalidInput) as exc:
            campaign = session.get(Campaign, campaign_id)
            campaign.status = CampaignStatus.PAUSED if campaign.status == CampaignStatus.SENDING \
                else CampaignStatus.DRAFT
            campaign.status_reason = exc.message
        session.commit()
    stall = timedelta(seconds=config["SEND_STALL_SECONDS"])
    for campaign in session.scalars(select(Campaign).where(Campaign.status == CampaignStatus.SENDING)).all():
        if campaign.snapshot_at is None:
            last = campaign.progress_at or campaign.started_at
            if last is None or last < now - stall:
                enqueue(session, START_TASK, campaign.id)  # start is idempotent
                campaign.progress_at = now
        elif not _finish_if_done(session, campaign.id):
            last = campaign.progress_at or campaign.snapshot_at
            if last < now - stall:
                for batch in deliveries.stalled_batches(session, campaign.id, now,
                                                        config["SEND_LEASE_SECONDS"]):
                    enqueue(session, BATCH_TASK, campaign.id, batch)
                campaign.progress_at = now  # at most one re-queue per stall period
        session.commit()


# --- Helpers ------------------------------------------------------------------------

def _status(session: Session, campaign_id: int) -> str | None:
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    session.commit()  # end the read: the next one sees a pause committed meanwhile
    return status


def _finish_if_done(session: Session, campaign_id: int) -> bool:
    """Mark a sending campaign sent when no row is queued or in flight."""
    if deliveries.has_open(session, campaign_id):
        return False
    result = session.execute(update(Campaign).where(
        Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING,
        Campaign.snapshot_at.is_not(None),
    ).values(status=CampaignStatus.SENT, finished_at=utcnow(), status_reason="")
        .execution_options(synchronize_session=False))
    if result.rowcount:
        session.expire_all()
    return bool(result.rowcount)


def _mailer(session: Session, campaign: Campaign) -> CampaignMailer:
    """The campaign's compiled template and message skeleton, built once per process
    (its content cannot change once it is sending)."""
    key = (campaign.id, campaign.started_at)
    if key not in _mailers:
        mailer = CampaignMailer(campaign, compile_for(session, campaign))
        stamp = int(campaign.started_at.timestamp()) if campaign.started_at else 0
        mailer.message_id_suffix = f".{stamp}@{mailer.domain}"
        _mailers[key] = mailer
        while len(_mailers) > 8:
            _mailers.popitem(last=False)
    return _mailers[key]


def _send_chunk(session, mailer, transport, rows, skipped) -> deliveries.Outcomes:
    config = current_app.config
    suffix = mailer.message_id_suffix
    outcomes = deliveries.Outcomes(sent=[], message_id_suffix=suffix, retry=[], failed=[],
                                   skipped=skipped)
    date = message_date()
    messages, by_recipient = [], {}
    for row in rows:
        try:
            message = mailer.message_for(Recipient(row.subscriber_id, row.email, row.name), date,
                                         deliveries.message_id(mailer.campaign_id, row.delivery_id, suffix))
        except InvalidInput as exc:
            _failure(outcomes, row, Result(None, False, 550, exc.message), config)
            continue
        messages.append(message)
        by_recipient[id(message)] = row
    results: list[Result] = transport.send(messages)
    for result in results:
        row = by_recipient[id(result.message)]
        if result.ok:
            outcomes.sent.append(row.delivery_id)
            outcomes.any_success = True
            outcomes.trailing_failures = 0
        else:
            _failure(outcomes, row, result, config)
            if result.hard_bounce:
                suppression.suppress(session, row.email, "bounced")
    return outcomes


def _failure(outcomes: deliveries.Outcomes, row, result: Result, config) -> None:
    outcomes.trailing_failures += 1
    attempts = row.attempts + 1
    error = f"{result.code} {result.error}".strip()
    if result.temporary and attempts < config["SEND_MAX_ATTEMPTS"]:
        outcomes.retry.append({"id": row.delivery_id, "attempts": attempts, "error": error,
                               "next_attempt_at": utcnow() + timedelta(seconds=backoff(attempts, config))})
        return
    status = DeliveryStatus.BOUNCED if result.hard_bounce else DeliveryStatus.FAILED
    outcomes.failed.append({"id": row.delivery_id, "attempts": attempts, "error": error,
                            "status": status})


def backoff(attempts: int, config) -> float:
    """Exponential delay before attempt ``attempts + 1``, with full jitter on its upper half."""
    ceiling = min(config["SEND_RETRY_MAX_SECONDS"], config["SEND_RETRY_BASE_SECONDS"] * 2 ** (attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _last_error(outcomes: deliveries.Outcomes) -> str:
    rows = outcomes.retry + outcomes.failed
    return rows[-1]["error"][:200] if rows else "unknown"


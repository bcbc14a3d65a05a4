"""What a bounce or a complaint does: map it to its delivery, keep it, act on it.

Every receiving path ends here: ``receive_mail`` for returned mail (the SMTP/LMTP endpoint,
the polled mailbox) and ``receive_event`` for a provider's verified webhook event.

Mapping, most trusted first: the signed return path (VERP, ``mailer.verp``) the report was
addressed to or quotes; then the returned message's Message-ID, when it is exactly the one
recorded for a delivery; then the recipient's latest message within BOUNCE_MATCH_DAYS.
A report that carries a return path of ours whose signature does not verify is forged:
nothing is done with it. BOUNCE_REQUIRE_VERP leaves only the first way.

Policy: a hard bounce suppresses the address; soft bounces count, and BOUNCE_SOFT_LIMIT of
them (separate messages) within BOUNCE_SOFT_WINDOW_DAYS suppress it; a policy block changes
nothing about the address; a complaint unsubscribes the person from every list at once,
records the withdrawal of consent and suppresses the address. A campaign counts one bounce
and one complaint per delivery at most, and pauses itself when a rate passes its limit.

Idempotent: the same report twice is one event (``BounceEvent.report_key`` is unique).
Nothing here commits; the caller does (one report, one transaction).
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from flask import current_app
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .. import deliveries, suppression
from ..consent import Origin, record
from ..models import BounceEvent, BounceKind, Campaign, CampaignStatus, Delivery, DeliveryStatus, Subscriber, utcnow
from ..subscribers import address_key
from ..verp import DELIVERY, Verp
from . import reports
from .reports import Finding, Report

# What came back, as ``receive_*`` answer it.
RECORDED = "recorded"  # at least one event kept and acted on
DUPLICATE = "duplicate"  # seen before: nothing changed
UNMATCHED = "unmatched"  # a bounce of nothing we sent (or of someone erased since)
FORGED = "forged"  # names a return path of ours that does not verify: refused
IGNORED = (reports.AUTO_REPLY, reports.DELAY, reports.NOT_A_BOUNCE)

SEVERITY = {BounceKind.COMPLAINT: 3, BounceKind.HARD: 2, BounceKind.BLOCK: 1, BounceKind.SOFT: 0}
BOUNCE_PAUSE_REASON = "Paused automatically: too many of its messages bounced."
COMPLAINT_PAUSE_REASON = "Paused automatically: too many recipients marked it as spam."


@dataclass
class Outcome:
    verdict: str  # RECORDED, DUPLICATE, UNMATCHED, FORGED, or one of IGNORED
    events: list[int] = field(default_factory=list)  # BounceEvent ids kept
    kinds: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """Whom a report is about: a delivery of a campaign, or a subscriber (a notice)."""

    subscriber_id: int | None
    delivery_id: int | None = None
    campaign_id: int | None = None
    matched_by: str = "verp"


@dataclass(frozen=True)
class Event:
    """A provider's report (webhook), already verified and read."""

    provider: str
    event_id: str  # the provider's id of this event: replays of it count once
    finding: Finding
    return_path: str = ""  # the envelope sender the provider saw (our VERP)
    message_id: str = ""  # the Message-ID header we sent
    reported_at: datetime | None = None
    raw: bytes = b""


# --- Returned mail -------------------------------------------------------------------

def receive_mail(session: Session, raw: bytes, *, source: str, envelope_to: list[str] | None = None) -> Outcome:
    """Read one returned mail and act on it (the caller commits). ``envelope_to``: the SMTP
    recipients it came to (our return paths), when known."""
    config = current_app.config
    report = reports.read(raw, envelope_to=envelope_to, keep=config["BOUNCE_KEEP_RAW_KB"] * 1024)
    if report.verdict in IGNORED:
        return Outcome(report.verdict)
    verp = Verp(config)
    signed, forged = _signed_target(session, verp, report.return_paths)
    if forged and signed is None:
        return Outcome(FORGED)
    if signed is not None:
        pairs = [(signed, max(report.findings, key=lambda f: SEVERITY[f.kind]))]
    elif config["BOUNCE_REQUIRE_VERP"]:
        return Outcome(UNMATCHED)
    else:
        pairs = _unsigned_targets(session, report)
    if not pairs:
        return Outcome(UNMATCHED)
    return _apply_all(session, pairs, source, report.key, report)


def _apply_all(session: Session, pairs, source: str, key: str, report: Report | None = None,
               raw: bytes = b"", reported_at: datetime | None = None) -> Outcome:
    outcome = Outcome(DUPLICATE)
    for target, finding in pairs:
        event = _record(session, target, finding, source, key, report, raw, reported_at)
        if event is not None:
            outcome.verdict = RECORDED
            outcome.events.append(event.id)
            outcome.kinds.append(str(event.kind))
    return outcome


def looks_like_ours(verp: Verp, address: str) -> bool:
    """``bounces+anything@bounce-domain``: an address that claims to be a return path of ours."""
    local, _, domain = (address or "").strip().strip("<>").lower().rpartition("@")
    return domain == verp.domain and local.startswith(verp.local.lower() + "+")


def _signed_target(session: Session, verp: Verp, addresses: list[str]) -> tuple[Target | None, bool]:
    """(the target of the first return path that verifies, whether any claimed to be ours
    and did not verify)."""
    forged = False
    for address in addresses:
        path = verp.read(address)
        if path is None:
            forged = forged or looks_like_ours(verp, address)
            continue
        if path.kind == DELIVERY:
            delivery = session.get(Delivery, path.id)
            if delivery is not None:
                return Target(delivery.subscriber_id, delivery.id, delivery.campaign_id, "verp"), forged
        elif session.get(Subscriber, path.id) is not None:
            return Target(path.id, matched_by="verp"), forged
    return None, forged


def _unsigned_targets(session: Session, report: Report) -> list[tuple[Target, Finding]]:
    """Without a return path: the returned Message-ID, then each finding's recipient."""
    for message_id in report.message_ids:
        delivery = delivery_by_message_id(session, message_id)
        if delivery is not None:
            target = Target(delivery.subscriber_id, delivery.id, delivery.campaign_id, "message-id")
            return [(target, max(report.findings, key=lambda f: SEVERITY[f.kind]))]
    pairs = []
    for finding in report.findings:
        found = target_by_recipient(session, finding.recipient)
        if found is not None:
            pairs.append((found, finding))
    return pairs


def delivery_by_message_id(session: Session, message_id: str) -> Delivery | None:
    """The sent delivery whose Message-ID is ``message_id`` (``<campaign.delivery.launch@domain>``,
    ``deliveries.message_id``): its campaign, its id and its campaign's launch second must all
    match. The domain is not compared (MAIL_DOMAIN may have changed since)."""
    parsed = deliveries.parse_message_id(message_id or "")
    if parsed is None:
        return None
    campaign_id, delivery_id, stamp = parsed
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.campaign_id != campaign_id or delivery.sent_at is None:
        return None
    campaign = session.get(Campaign, campaign_id)
    return delivery if campaign is not None and deliveries.launch_stamp(campaign.started_at) == stamp else None


def target_by_recipient(session: Session, email: str) -> Target | None:
    """The subscriber with this address and their latest message within BOUNCE_MATCH_DAYS."""
    if not email or len(email) > 320:
        return None
    email = address_key(email)
    subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    if subscriber_id is None:
        return None
    since = utcnow() - timedelta(days=current_app.config["BOUNCE_MATCH_DAYS"])
    delivery = session.scalar(
        select(Delivery).where(Delivery.subscriber_id == subscriber_id, Delivery.sent_at >= since,
                               Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED)))
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc()).limit(1))
    if delivery is None:
        return Target(subscriber_id, matched_by="recipient")
    return Target(subscriber_id, delivery.id, delivery.campaign_id, "recipient")


# --- Provider events -----------------------------------------------------------------

def receive_event(session: Session, event: Event) -> Outcome:
    """Act on one verified provider event (the caller commits). Mapped by the envelope
    sender the provider reports (our VERP), then the Message-ID we sent, then the recipient."""
    verp = Verp(current_app.config)
    target = None
    if event.return_path:
        target, forged = _signed_target(session, verp, [event.return_path])
        if forged and target is None:
            return Outcome(FORGED)
    if target is None and event.message_id:
        delivery = delivery_by_message_id(session, event.message_id)
        if delivery is not None:
            target = Target(delivery.subscriber_id, delivery.id, delivery.campaign_id, "message-id")
    if target is None:
        target = target_by_recipient(session, event.finding.recipient)
    if target is None:
        return Outcome(UNMATCHED)
    key = hashlib.sha256(f"{event.provider}\0{event.event_id}".encode()).hexdigest()
    return _apply_all(session, [(target, event.finding)], event.provider, key, raw=event.raw,
                      reported_at=event.reported_at)


# --- Keeping and acting --------------------------------------------------------------

def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _record(session: Session, target: Target, finding: Finding, source: str, key: str,
            report: Report | None, raw: bytes, reported_at: datetime | None) -> BounceEvent | None:
    """Keep the event and act on it; None when this report was kept before."""
    config = current_app.config
    who = f"d{target.delivery_id}" if target.delivery_id else f"s{target.subscriber_id}"
    complaint = finding.kind == BounceKind.COMPLAINT
    keep = config["BOUNCE_KEEP_RAW_KB"] * 1024
    values = {
        "kind": finding.kind, "source": source[:16], "matched_by": target.matched_by,
        "subscriber_id": target.subscriber_id, "delivery_id": target.delivery_id,
        "campaign_id": target.campaign_id, "status": finding.status[:16],
        "diagnostic": _clean(finding.diagnostic)[:1000], "feedback_type": finding.feedback_type[:32],
        "report_key": hashlib.sha256(f"{key}\0{who}".encode()).hexdigest(),
        "count_key": (f"{who}:{'complaint' if complaint else 'bounce'}" if target.delivery_id else None),
        "raw_size": report.raw_size if report else len(raw),
        "raw_sha256": report.raw_sha256 if report else hashlib.sha256(raw).hexdigest(),
        "raw_excerpt": report.excerpt if report else _clean(raw[:keep].decode("utf-8", "replace")),
        "reported_at": (report.reported_at if report else reported_at),
        "created_at": utcnow(),
    }
    insert = _insert(session)
    event_id = session.scalar(insert(BounceEvent).values(**values).on_conflict_do_nothing()
                              .returning(BounceEvent.id))
    counted = event_id is not None and values["count_key"] is not None
    if event_id is None and values["count_key"] is not None:
        # Either this very report again, or another report about a delivery already counted.
        values["count_key"] = None
        event_id = session.scalar(insert(BounceEvent).values(**values).on_conflict_do_nothing()
                                  .returning(BounceEvent.id))
    if event_id is None:
        return None
    event = session.get(BounceEvent, event_id)
    if counted:
        _count(session, target, finding)
    subscriber = session.get(Subscriber, target.subscriber_id) if target.subscriber_id else None
    if subscriber is not None:
        _act(session, subscriber, finding, source)
    return event


def _count(session: Session, target: Target, finding: Finding) -> None:
    """The campaign's counter (once per delivery), the delivery marked bounced, the self-pause."""
    if finding.kind == BounceKind.COMPLAINT:
        session.execute(update(Campaign).where(Campaign.id == target.campaign_id)
                        .values(complaint_count=Campaign.complaint_count + 1)
                        .execution_options(synchronize_session=False))
    else:
        session.execute(update(Campaign).where(Campaign.id == target.campaign_id)
                        .values(bounce_count=Campaign.bounce_count + 1)
                        .execution_options(synchronize_session=False))
        error = f"{finding.status} {finding.diagnostic}".strip()[:500] or "bounced"
        session.execute(update(Delivery).where(Delivery.id == target.delivery_id,
                                               Delivery.status == DeliveryStatus.SENT)
                        .values(status=DeliveryStatus.BOUNCED, last_error=error)
                        .execution_options(synchronize_session=False))
    if target.campaign_id is not None:
        pause_if_over(session, target.campaign_id)


def pause_if_over(session: Session, campaign_id: int) -> bool:
    """Pause a sending campaign whose complaint or bounce rate passed its limit after
    BOUNCE_PAUSE_MIN_SENT messages: one conditional UPDATE each, so a campaign paused,
    resumed or finished meanwhile is left alone. Returns whether it paused now."""
    config = current_app.config
    checks = ((config["COMPLAINT_PAUSE_RATE"], Campaign.complaint_count, COMPLAINT_PAUSE_REASON),
              (config["BOUNCE_PAUSE_RATE"], Campaign.bounce_count, BOUNCE_PAUSE_REASON))
    for rate, column, reason in checks:
        if not rate:
            continue
        result = cast(CursorResult, session.execute(
            update(Campaign).where(
                Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING,
                Campaign.sent_count >= max(1, config["BOUNCE_PAUSE_MIN_SENT"]),
                column > Campaign.sent_count * rate,
            ).values(status=CampaignStatus.PAUSED, status_code="bounces", status_reason=reason,
                     consecutive_failures=0)
            .execution_options(synchronize_session=False)))
        if result.rowcount:
            current_app.logger.warning("campaign %s paused: %s", campaign_id, reason)
            return True
    return False


def _act(session: Session, subscriber: Subscriber, finding: Finding, source: str) -> None:
    config = current_app.config
    if finding.kind == BounceKind.HARD:
        suppression.suppress(session, subscriber.email, "bounced")
    elif finding.kind == BounceKind.SOFT:
        since = utcnow() - timedelta(days=config["BOUNCE_SOFT_WINDOW_DAYS"])
        rows = session.scalars(select(BounceEvent.delivery_id).where(
            BounceEvent.subscriber_id == subscriber.id, BounceEvent.kind == BounceKind.SOFT,
            BounceEvent.created_at >= since)).all()
        messages = len({d for d in rows if d is not None}) + sum(1 for d in rows if d is None)
        if config["BOUNCE_SOFT_LIMIT"] and messages >= config["BOUNCE_SOFT_LIMIT"]:
            suppression.suppress(session, subscriber.email, "soft_bounced")
    elif finding.kind == BounceKind.COMPLAINT:
        withdraw(session, subscriber, source)


def withdraw(session: Session, subscriber: Subscriber, source: str) -> None:
    """A complaint: consent withdrawn (recorded), every list left at once, address suppressed."""
    from ..subscriptions import unsubscribe

    record(session, subscriber, "complaint", Origin(source[:32]), list_id=None)
    unsubscribe(session, subscriber.id, list_ids=None, source="complaint")
    suppression.suppress(session, subscriber.email, "complaint")


def _clean(text: str) -> str:
    return (text or "").replace("\x00", "")


# --- For the pages -------------------------------------------------------------------

def campaign_summary(session: Session, campaign_id: int, recent: int = 20) -> dict:
    """Bounces and complaints of one campaign: counts, rates (of messages sent), events by
    kind, the latest events with their subscriber's address, and the pause thresholds."""
    config = current_app.config
    campaign = session.get(Campaign, campaign_id)
    sent = (campaign.sent_count or 0) if campaign else 0
    by_kind = {kind.value: 0 for kind in BounceKind}
    for kind, count in session.execute(
            select(BounceEvent.kind, func.count()).where(BounceEvent.campaign_id == campaign_id,
                                                         BounceEvent.count_key.is_not(None))
            .group_by(BounceEvent.kind)):
        by_kind[str(kind)] = count
    latest = session.execute(
        select(BounceEvent, Subscriber.email).outerjoin(Subscriber, Subscriber.id == BounceEvent.subscriber_id)
        .where(BounceEvent.campaign_id == campaign_id).order_by(BounceEvent.id.desc()).limit(recent)).all()
    return {**rates(campaign), "sent": sent, "by_kind": by_kind,
            "events": [{"event": event, "email": email} for event, email in latest],
            "bounce_limit": config["BOUNCE_PAUSE_RATE"], "complaint_limit": config["COMPLAINT_PAUSE_RATE"],
            "min_sent": config["BOUNCE_PAUSE_MIN_SENT"]}


def rates(campaign: Campaign | None) -> dict:
    """bounce_count, complaint_count and their rates (fractions of messages sent, None before any)."""
    if campaign is None:
        return {"bounce_count": 0, "complaint_count": 0, "bounce_rate": None, "complaint_rate": None}
    sent = campaign.sent_count or 0
    bounces, complaints = campaign.bounce_count or 0, campaign.complaint_count or 0
    return {"bounce_count": bounces, "complaint_count": complaints,
            "bounce_rate": round(bounces / sent, 4) if sent else None,
            "complaint_rate": round(complaints / sent, 4) if sent else None}


def subscriber_events(session: Session, subscriber_id: int, limit: int = 100) -> list[BounceEvent]:
    """A subscriber's bounces and complaints, newest first."""
    return list(session.scalars(select(BounceEvent).where(BounceEvent.subscriber_id == subscriber_id)
                                .order_by(BounceEvent.id.desc()).limit(limit)))

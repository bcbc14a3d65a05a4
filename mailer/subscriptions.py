"""Subscribing and leaving: double opt-in, confirmation, welcome, unsubscribe, purge.

Every function takes the session first; the caller (view or task) commits. Mails are
never sent here inside a request: ``subscribe`` and ``confirm`` owe the subscriber a
notice (``mailer.notices``), written with the rest and sent after the commit.
"""

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import notices, suppression, tokens
from .consent import Origin, record
from .errors import BadToken, InvalidInput
from .lists import public_lists
from .lookups import parse_id
from .models import (
    ConsentRecord,
    Delivery,
    MailingList,
    NoticeKind,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    campaign_lists,
    utcnow,
)
from .subscribers import clean_name, email_hash, normalize_email
from .suppression import is_suppressed

SOURCES = {"form", "api", "embed", "admin"}
PENDING = SubscriptionStatus.PENDING
CONFIRMED = SubscriptionStatus.CONFIRMED
UNSUBSCRIBED = SubscriptionStatus.UNSUBSCRIBED


# --- Validation --------------------------------------------------------------------------

def _chosen_lists(session: Session, list_ids: Sequence[int | str] | None) -> list[MailingList]:
    public = public_lists(session)
    if not public:
        raise InvalidInput("There is no newsletter to subscribe to yet.", "lists")
    if list_ids is None:
        return public
    by_id = {item.id: item for item in public}
    try:
        wanted = {parse_id(list_id) for list_id in list_ids}
    except InvalidInput as exc:
        raise InvalidInput("Choose at least one newsletter.", "lists") from exc
    if not wanted or not wanted <= by_id.keys():
        raise InvalidInput("Choose at least one newsletter.", "lists")
    return [by_id[list_id] for list_id in sorted(wanted)]


# --- Subscribe ---------------------------------------------------------------------------

def subscribe(session: Session, *, email: str, name: str = "", list_ids: Sequence[int | str] | None = None,
              locale: str = "pl", consent: bool, source: str, ip: str = "",
              user_agent: str = "") -> None:
    """Sign ``email`` up to ``list_ids`` (None: every public list), pending confirmation.

    The outcome is silent and the same for new, pending, confirmed, unsubscribed and
    suppressed addresses. A suppressed address (bounced, complained, erased) is not
    ignored: its chosen lists wait for a fresh confirmation by the mailbox owner, which
    lifts the suppression (``confirm_once``). Raises InvalidInput for a bad address or
    name, missing consent, an unknown or private list, or an unknown source."""
    if source not in SOURCES:
        raise InvalidInput("Unknown source.", "source")
    if "\ufffd" in (email or ""):
        raise InvalidInput("This email address is not valid.", "email")
    address_ = normalize_email(email)
    name = clean_name(name)
    if consent is not True:
        raise InvalidInput("Please tick the consent box to subscribe.", "consent")
    chosen = _chosen_lists(session, list_ids)
    config = current_app.config
    if locale not in config["LANGUAGES"]:
        locale = config["BABEL_DEFAULT_LOCALE"]
    suppressed = is_suppressed(session, address_)
    subscriber = _find_or_create(session, address_, name, locale)
    origin = Origin(source, ip, user_agent)
    current = {item.list_id: item for item in subscriber.subscriptions}
    now = utcnow()
    for mailing_list in chosen:
        subscription = current.get(mailing_list.id)
        if subscription is None:
            subscription = Subscription(subscriber=subscriber, list_id=mailing_list.id, status=PENDING,
                                        created_at=now)
            session.add(subscription)
        elif subscription.status == UNSUBSCRIBED or (suppressed and subscription.status == CONFIRMED):
            subscription.status = PENDING  # suppressed: the owner must confirm again
            subscription.created_at = now
        else:
            continue  # already pending, or confirmed and mailed: nothing changes
        record(session, subscriber, "subscribe", origin, list_id=mailing_list.id,
               version=config["CONSENT_TEXT_VERSION"])
    session.flush()
    if any(item.status == PENDING for item in subscriber.subscriptions):
        _request_confirmation(session, subscriber)


def _find_or_create(session: Session, email: str, name: str, locale: str) -> Subscriber:
    """The subscriber with ``email``, created if new (with ``name``). An existing subscriber
    keeps the stored name: anyone may sign any address up, and the name goes into every
    greeting and ``To:`` header of that person's mail. Two sign-ups of one new address at
    once: the insert that loses the race does nothing (ON CONFLICT), and both find the row."""
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        now = utcnow()
        insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)
        session.execute(insert(Subscriber).values(
            email=email, email_hash=email_hash(email), name=name, locale=locale, attributes={},
            confirm_nonce=secrets.token_hex(16), confirm_sent_today=0, created_at=now,
            updated_at=now).on_conflict_do_nothing(index_elements=["email"]))
        subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    return subscriber


def _request_confirmation(session: Session, subscriber: Subscriber) -> None:
    """Owe a confirmation mail unless the cool-down or the daily cap per address forbid it
    (decided by one conditional UPDATE, so two requests at once cannot both pass); the
    site-wide hourly cap delays it (``notices``), never drops it."""
    config = current_app.config
    now = utcnow()
    today = now.date().isoformat()
    cooled = now - timedelta(seconds=config["CONFIRM_COOLDOWN"])
    under_cap = or_(Subscriber.confirm_sent_day.is_(None), Subscriber.confirm_sent_day != today,
                    Subscriber.confirm_sent_today < config["CONFIRM_MAX_PER_DAY"])
    result = cast(CursorResult[Any], session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id,
               or_(Subscriber.confirm_sent_at.is_(None), Subscriber.confirm_sent_at <= cooled),
               under_cap)
        .values(confirm_sent_at=now, confirm_sent_day=today,
                confirm_sent_today=case((Subscriber.confirm_sent_day == today,
                                         Subscriber.confirm_sent_today + 1), else_=1),
                confirm_nonce=func.coalesce(Subscriber.confirm_nonce, secrets.token_hex(16)))
        .execution_options(synchronize_session=False)
    ))
    session.expire(subscriber, ["confirm_sent_at", "confirm_sent_day", "confirm_sent_today",
                                "confirm_nonce"])
    if result.rowcount == 1:
        notices.queue(session, subscriber.id, NoticeKind.CONFIRM)


# --- Confirm -----------------------------------------------------------------------------

def _confirm_payload(payload) -> tuple[int, str]:
    if (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int)
            and isinstance(payload[1], str)):
        return payload[0], payload[1]
    raise BadToken("This link is not valid.")


def confirm_token(subscriber: Subscriber) -> str:
    return tokens.sign_timed(tokens.CONFIRM, [subscriber.id, subscriber.confirm_nonce])


def check_confirmation(session: Session, token: str) -> tuple[Subscriber, bool]:
    """(subscriber, already confirmed?) for the page behind a confirmation link; changes
    nothing. Raises ExpiredToken, or BadToken for a forged or used-up link."""
    payload = tokens.verify_timed(tokens.CONFIRM, token, current_app.config["CONFIRM_MAX_AGE"])
    subscriber_id, nonce = _confirm_payload(payload)
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise BadToken("This link is not valid.")
    statuses = {item.status for item in subscriber.subscriptions}
    if nonce == subscriber.confirm_nonce and PENDING in statuses:
        return subscriber, False
    if CONFIRMED in statuses and PENDING not in statuses:
        return subscriber, True  # confirming twice is harmless
    raise BadToken("This link is no longer valid.")


def confirm(session: Session, token: str, *, ip: str = "",
            user_agent: str = "") -> tuple[Subscriber, bool]:
    """Confirm the pending subscriptions named by ``token`` and queue the welcome mail; return
    the subscriber and whether it was confirmed already (nothing is done then: confirming
    twice is harmless). Raises ExpiredToken, or BadToken when the link is forged or was used
    up (a new link was confirmed, or the subscriber left since)."""
    subscriber, already = check_confirmation(session, token)
    if already:
        return subscriber, True
    origin = Origin("form", ip, user_agent)
    now = utcnow()
    version = current_app.config["CONSENT_TEXT_VERSION"]
    for subscription in subscriber.subscriptions:
        if subscription.status == PENDING:
            subscription.status = CONFIRMED
            subscription.confirmed_at = now
            record(session, subscriber, "confirm", origin, list_id=subscription.list_id,
                   version=version)
    subscriber.confirm_nonce = secrets.token_hex(16)  # single use
    session.flush()
    _lift_suppression(session, subscriber, origin)
    notices.queue(session, subscriber.id, NoticeKind.WELCOME)
    return subscriber, False


def _lift_suppression(session: Session, subscriber: Subscriber, origin: Origin) -> None:
    """A confirmed double opt-in is the mailbox owner's own word: it lifts a bounce or an
    erasure's suppression, and a complaint's when the confirmed consent was given after the
    complaint (a complaint rotated the nonce, so no older link gets here anyway). The
    consent record shows what was lifted."""
    entry = suppression.entry_for(session, subscriber.email)
    if entry is None:
        return
    if entry.reason == "complaint":
        fresh = session.scalar(select(ConsentRecord.id).where(
            ConsentRecord.subscriber_id == subscriber.id, ConsentRecord.action == "subscribe",
            ConsentRecord.created_at >= entry.created_at).limit(1))
        if fresh is None:
            return
    suppression.lift(session, subscriber.email)
    record(session, subscriber, f"lifted-{entry.reason}"[:32], origin, list_id=None,
           version=current_app.config["CONSENT_TEXT_VERSION"])


def resend_confirmation(session: Session, token: str) -> None:
    """Queue a new confirmation mail for the subscriber of an expired link (cool-down and
    caps apply; silent when nothing is pending). Raises BadToken for a forged link."""
    payload = tokens.verify_timed(tokens.CONFIRM, token, max_age=10 ** 10)
    subscriber_id, nonce = _confirm_payload(payload)
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or nonce != subscriber.confirm_nonce:
        return
    if any(item.status == PENDING for item in subscriber.subscriptions):
        _request_confirmation(session, subscriber)


# --- Unsubscribe -------------------------------------------------------------------------

def unsubscribe(session: Session, subscriber_id: int, *, list_ids: list[int] | None = None,
                source: str, ip: str = "", user_agent: str = "") -> None:
    """Leave ``list_ids`` (None: every list). Idempotent; silent for an unknown subscriber.
    Rotates the confirmation nonce so an old confirmation link cannot re-subscribe."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return
    wanted = None if list_ids is None else set(list_ids)
    origin = Origin(source, ip, user_agent)
    now = utcnow()
    for subscription in subscriber.subscriptions:
        if wanted is not None and subscription.list_id not in wanted:
            continue
        if subscription.status == UNSUBSCRIBED:
            continue
        subscription.status = UNSUBSCRIBED
        subscription.unsubscribed_at = now
        record(session, subscriber, "unsubscribe", origin, list_id=subscription.list_id)
    subscriber.confirm_nonce = secrets.token_hex(16)
    session.flush()


def unsubscribe_view(session: Session, token: str) -> tuple[Subscriber | None, list[Subscription], set[int]]:
    """What the page behind an unsubscribe link shows: the subscriber (None if erased),
    their subscriptions, and the list ids the link is about (the campaign's lists, or
    all). Changes nothing. Raises BadToken for a forged or wrong-purpose token."""
    subscriber_id, campaign_id = tokens.read_unsubscribe_token(token)
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None, [], set()
    subscriptions = sorted(subscriber.subscriptions, key=lambda item: item.list_id)
    targeted = _campaign_list_ids(session, campaign_id) if campaign_id else None
    about = {item.list_id for item in subscriptions
             if targeted is None or item.list_id in targeted}
    return subscriber, subscriptions, about


def leave(session: Session, token: str, *, list_ids: Sequence[int | str] | None = None, source: str,
          ip: str = "", user_agent: str = "") -> None:
    """Unsubscribe the holder of ``token``: from ``list_ids`` when given (only lists of
    theirs count), else from the campaign's lists when the token names one, else from
    all. Idempotent. Raises BadToken for a forged or wrong-purpose token, InvalidInput
    for an empty or malformed choice of lists."""
    subscriber_id, campaign_id = tokens.read_unsubscribe_token(token)
    chosen: list[int] | None = None
    if list_ids is not None:
        try:
            chosen = [parse_id(list_id) for list_id in list_ids]
        except InvalidInput as exc:
            raise InvalidInput("Choose at least one newsletter.", "lists") from exc
        if not chosen:
            raise InvalidInput("Choose at least one newsletter.", "lists")
    elif campaign_id:
        chosen = sorted(_campaign_list_ids(session, campaign_id)) or None
    unsubscribe(session, subscriber_id, list_ids=chosen, source=source, ip=ip,
                user_agent=user_agent)


def _campaign_list_ids(session: Session, campaign_id: int) -> set[int]:
    return set(session.scalars(select(campaign_lists.c.list_id)
                               .where(campaign_lists.c.campaign_id == campaign_id)))


# --- Purge -------------------------------------------------------------------------------

def purge_pending(session: Session) -> int:
    """Delete subscribers whose only subscriptions are pending ones older than
    PURGE_PENDING_AFTER_DAYS (with their consent records). Returns how many."""
    cutoff = utcnow() - timedelta(days=current_app.config["PURGE_PENDING_AFTER_DAYS"])
    other = exists().where(
        Subscription.subscriber_id == Subscriber.id,
        or_(Subscription.status != PENDING, Subscription.created_at > cutoff),
    )
    has_any = exists().where(Subscription.subscriber_id == Subscriber.id)
    ids = list(session.scalars(select(Subscriber.id).where(and_(has_any, ~other))))
    if not ids:
        return 0
    session.execute(delete(Delivery).where(Delivery.subscriber_id.in_(ids)))  # no FK cascade
    for subscriber in session.scalars(select(Subscriber).where(Subscriber.id.in_(ids))):
        session.delete(subscriber)  # cascades to subscriptions and consent records
    session.flush()
    return len(ids)

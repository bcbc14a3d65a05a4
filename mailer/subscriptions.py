"""Subscribing and leaving: double opt-in, confirmation, welcome, unsubscribe, purge.

Every function takes the session first; the caller (view or task) commits. Mails are
never sent here inside a request: ``subscribe`` and ``confirm`` enqueue the tasks that
call ``send_confirmation`` and ``send_welcome`` after the commit.
"""

import secrets
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import and_, case, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from . import links, suppression, tokens
from .consent import Origin, record
from .errors import BadToken, InvalidInput
from .jobs import enqueue
from .mail.headers import list_headers
from .mail.message import address, build, check_header_value
from .mail.render import render_notice
from .mail.transport import from_config
from .models import (ConsentRecord, Delivery, MailingList, Subscriber, Subscription, SubscriptionStatus,
                     campaign_lists, utcnow)
from .subscribers import normalize_email
from .suppression import is_suppressed

SOURCES = {"form", "api", "embed", "admin"}
MAX_NAME = 200
PENDING = SubscriptionStatus.PENDING
CONFIRMED = SubscriptionStatus.CONFIRMED
UNSUBSCRIBED = SubscriptionStatus.UNSUBSCRIBED


# --- Validation --------------------------------------------------------------------------

def clean_name(raw: str | None) -> str:
    """The display name as stored; raises InvalidInput (overlong, CR/LF, undecodable)."""
    name = " ".join((raw or "").split(" ")).strip()
    if len(name) > MAX_NAME:
        raise InvalidInput("Your name is too long.", "name")
    try:
        check_header_value(name)
    except InvalidInput as exc:
        raise InvalidInput("Line breaks are not allowed here.", "name") from exc
    if "\ufffd" in name or any(ord(ch) < 32 for ch in name):
        raise InvalidInput("Your name contains characters that are not allowed.", "name")
    return name


def _chosen_lists(session: Session, list_ids: list[int] | None) -> list[MailingList]:
    public = list(session.scalars(select(MailingList).where(MailingList.public.is_(True))
                                  .order_by(MailingList.id)))
    if not public:
        raise InvalidInput("There is no newsletter to subscribe to yet.", "lists")
    if list_ids is None:
        return public
    by_id = {item.id: item for item in public}
    try:
        wanted = {int(list_id) for list_id in list_ids}
    except (TypeError, ValueError) as exc:
        raise InvalidInput("Choose at least one newsletter.", "lists") from exc
    if not wanted or not wanted <= by_id.keys():
        raise InvalidInput("Choose at least one newsletter.", "lists")
    return [by_id[list_id] for list_id in sorted(wanted)]


def public_lists(session: Session) -> list[MailingList]:
    """The lists a visitor may choose on the subscribe form."""
    return list(session.scalars(select(MailingList).where(MailingList.public.is_(True))
                                .order_by(MailingList.id)))


# --- Subscribe ---------------------------------------------------------------------------

def subscribe(session: Session, *, email: str, name: str = "", list_ids: list[int] | None = None,
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
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is not None:
        if name and not subscriber.name:
            subscriber.name = name
        return subscriber
    subscriber = Subscriber(email=email, name=name, locale=locale, confirm_nonce=secrets.token_hex(16))
    session.add(subscriber)
    session.flush()
    return subscriber


def _request_confirmation(session: Session, subscriber: Subscriber) -> bool:
    """Enqueue a confirmation mail unless the cool-down, the daily cap per address or the
    global hourly cap forbid it. Decided by one conditional UPDATE, so two requests at
    once cannot both pass. Returns whether a mail was queued."""
    config = current_app.config
    now = utcnow()
    today = now.date().isoformat()
    hour_ago = now - timedelta(hours=1)
    recent = session.scalar(select(func.count(Subscriber.id))
                            .where(Subscriber.confirm_sent_at >= hour_ago))
    if recent >= config["PENDING_MAX_PER_HOUR"]:
        return False
    cooled = now - timedelta(seconds=config["CONFIRM_COOLDOWN"])
    under_cap = or_(Subscriber.confirm_sent_day.is_(None), Subscriber.confirm_sent_day != today,
                    Subscriber.confirm_sent_today < config["CONFIRM_MAX_PER_DAY"])
    result = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id,
               or_(Subscriber.confirm_sent_at.is_(None), Subscriber.confirm_sent_at <= cooled),
               under_cap)
        .values(confirm_sent_at=now, confirm_sent_day=today,
                confirm_sent_today=case((Subscriber.confirm_sent_day == today,
                                         Subscriber.confirm_sent_today + 1), else_=1),
                confirm_nonce=func.coalesce(Subscriber.confirm_nonce, secrets.token_hex(16)))
        .execution_options(synchronize_session=False)
    )
    session.expire(subscriber, ["confirm_sent_at", "confirm_sent_day", "confirm_sent_today",
                                "confirm_nonce"])
    if result.rowcount != 1:
        return False
    enqueue(session, "mailer.send_confirmation", subscriber.id)
    return True


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


def confirm(session: Session, token: str, *, ip: str = "", user_agent: str = "") -> Subscriber:
    """Confirm the pending subscriptions named by ``token`` and queue the welcome mail.
    Harmless when already confirmed. Raises ExpiredToken, or BadToken when the link is
    forged or was used up (a new link was confirmed, or the subscriber left since)."""
    return confirm_once(session, token, ip=ip, user_agent=user_agent)[0]


def confirm_once(session: Session, token: str, *, ip: str = "",
                 user_agent: str = "") -> tuple[Subscriber, bool]:
    """``confirm``, also telling whether it was already confirmed (nothing done then)."""
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
    enqueue(session, "mailer.send_welcome", subscriber.id)
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


def leave(session: Session, token: str, *, list_ids: list[int] | None = None, source: str,
          ip: str = "", user_agent: str = "") -> None:
    """Unsubscribe the holder of ``token``: from ``list_ids`` when given (only lists of
    theirs count), else from the campaign's lists when the token names one, else from
    all. Idempotent. Raises BadToken for a forged or wrong-purpose token, InvalidInput
    for an empty or malformed choice of lists."""
    subscriber_id, campaign_id = tokens.read_unsubscribe_token(token)
    if list_ids is not None:
        try:
            list_ids = [int(list_id) for list_id in list_ids]
        except (TypeError, ValueError) as exc:
            raise InvalidInput("Choose at least one newsletter.", "lists") from exc
        if not list_ids:
            raise InvalidInput("Choose at least one newsletter.", "lists")
    if list_ids is None and campaign_id:
        list_ids = sorted(_campaign_list_ids(session, campaign_id)) or None
    unsubscribe(session, subscriber_id, list_ids=list_ids, source=source, ip=ip,
                user_agent=user_agent)


def _campaign_list_ids(session: Session, campaign_id: int) -> set[int]:
    return set(session.scalars(select(campaign_lists.c.list_id)
                               .where(campaign_lists.c.campaign_id == campaign_id)))


# --- Notices (task bodies) ---------------------------------------------------------------

def _send(message) -> None:
    """Send one notice now; raises OSError on a temporary failure (the task retries)."""
    transport = from_config(current_app.config)
    try:
        [result] = transport.send([message])
    finally:
        transport.close()
    if not result.ok and result.temporary:
        raise OSError(f"temporary SMTP failure {result.code}: {result.error}")
    if not result.ok:
        current_app.logger.warning("notice to subscriber refused: %s %s", result.code, result.error)


def _sender():
    config = current_app.config
    return address(config["MAIL_FROM_NAME"], config["MAIL_FROM"])


def send_confirmation(session: Session, subscriber_id: int) -> None:
    """Mail the confirmation link (no announcement content) if something is still pending.
    Sent to a suppressed address too: confirming is the only way back (caps apply)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return
    pending = [item for item in subscriber.subscriptions if item.status == PENDING]
    if not pending or not subscriber.confirm_nonce:
        return
    config = current_app.config
    hours = config["CONFIRM_MAX_AGE"] // 3600
    with force_locale(subscriber.locale):
        rendered = render_notice(
            "confirm", _("Confirm your subscription"), recipient_name=subscriber.name,
            confirm_url=links.confirm_url(confirm_token(subscriber)), hours=hours,
            lists=[item.list.name for item in pending],
            organisation=config["ORGANISATION_NAME"],
        )
    _send(build(sender=_sender(), to=address(subscriber.name, subscriber.email),
                subject=rendered.subject, text=rendered.text, html=rendered.html,
                domain=config["MAIL_DOMAIN"]))


def send_welcome(session: Session, subscriber_id: int) -> None:
    """Mail the welcome notice, with the list headers and the unsubscribe link, if the
    subscriber is still confirmed on some list."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or is_suppressed(session, subscriber.email):
        return
    confirmed = sorted((item for item in subscriber.subscriptions if item.status == CONFIRMED),
                       key=lambda item: item.list_id)
    if not confirmed:
        return
    config = current_app.config
    first = confirmed[0].list
    unsubscribe_url = links.unsubscribe_url(subscriber.id)
    with force_locale(subscriber.locale):
        rendered = render_notice(
            "welcome", _("Welcome to the newsletter: %(name)s", name=first.name),
            recipient_name=subscriber.name, lists=[item.list.name for item in confirmed],
            unsubscribe_url=unsubscribe_url, organisation=config["ORGANISATION_NAME"],
            home_url=links.absolute("/"),
        )
    _send(build(sender=_sender(), to=address(subscriber.name, subscriber.email),
                subject=rendered.subject, text=rendered.text, html=rendered.html,
                domain=config["MAIL_DOMAIN"],
                headers=list_headers(config, unsubscribe_url=unsubscribe_url,
                                     label=first.name,
                                     slug=first.slug)))


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

"""Subscribing and leaving: double opt-in, confirmation, welcome, unsubscribe, purge.

Every function takes the session first; the caller (view or task) commits. Mails are
never sent here inside a request: ``subscribe`` and ``confirm`` owe the subscriber a
notice (``mailer.notices``), written with the rest and sent after the commit.
"""

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast
from weakref import WeakKeyDictionary

from flask import current_app
from sqlalchemy import CursorResult, and_, case, delete, exists, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import notices, suppression, tokens
from .consent import MAX_IP, MAX_USER_AGENT, MAX_WORDING, Origin, keep_text, record, sign_up_wording, text_hash
from .errors import BadToken, FieldErrors, InvalidInput
from .folding import subscriber_text
from .lookups import parse_id
from .models import (
    ConsentRecord,
    Delivery,
    MailingList,
    Notice,
    NoticeKind,
    NoticeStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    campaign_lists,
    utcnow,
)
from .statements import on_its_own
from .subscribers import clean_name, email_hash, normalize_email
from .suppression import is_suppressed

SOURCES = {"form", "api", "embed", "admin"}
PENDING = SubscriptionStatus.PENDING
CONFIRMED = SubscriptionStatus.CONFIRMED
UNSUBSCRIBED = SubscriptionStatus.UNSUBSCRIBED


# --- Validation --------------------------------------------------------------------------

_PUBLIC = (select(MailingList.id, MailingList.name).where(MailingList.joinable)
           .order_by(MailingList.name, MailingList.id))
# The joinable lists (id, name) as last read, per database: on PostgreSQL a sign-up of a new
# address validates against them and its one statement checks they are still the same
# (``_NEW_PG``, ``lists_now``), reading them again when not; this saved a round trip and 14 %
# of a web worker's CPU a sign-up. Anything else reads them fresh.
_SEEN_LISTS: "WeakKeyDictionary[Any, tuple[tuple[int, str], ...]]" = WeakKeyDictionary()


def _public_lists(session: Session) -> tuple[tuple[int, str], ...]:
    """The joinable lists, (id, name) in the order the form shows them, read now (and kept)."""
    public = tuple((row.id, row.name) for row in session.execute(_PUBLIC))
    _SEEN_LISTS[session.get_bind()] = public
    return public


def _chosen_lists(public: Sequence[tuple[int, str]],
                  list_ids: Sequence[int | str] | None) -> tuple[list[int], list[str]]:
    """The ids of the chosen lists of ``public`` (None: every one) and their names in the order
    the form shows them; raises InvalidInput."""
    if not public:
        raise InvalidInput("There is no newsletter to subscribe to yet.", "lists")
    if list_ids is None:
        return [id_ for id_, _name in public], [name for _id, name in public]
    try:
        wanted = {parse_id(list_id) for list_id in list_ids}
    except InvalidInput as exc:
        raise InvalidInput("Choose at least one newsletter.", "lists") from exc
    if not wanted or not wanted <= {id_ for id_, _name in public}:
        raise InvalidInput("Choose at least one newsletter.", "lists")
    return sorted(wanted), [name for id_, name in public if id_ in wanted]


def _checked_lists(session: Session, list_ids: Sequence[int | str] | None,
                   seen: tuple[tuple[int, str], ...] | None) -> tuple[list[int], list[str], tuple]:
    """``_chosen_lists`` and the public lists it was decided on: ``seen`` (the lists as last
    read) when they accept the choice, else the lists read now (one made joinable since is
    not refused). Raises InvalidInput."""
    if seen is not None:
        try:
            return (*_chosen_lists(seen, list_ids), seen)
        except InvalidInput:
            pass
    public = _public_lists(session)
    return (*_chosen_lists(public, list_ids), public)


# --- Subscribe ---------------------------------------------------------------------------

def subscribe(session: Session, *, email: str, name: str = "", list_ids: Sequence[int | str] | None = None,
              locale: str = "pl", consent: bool, source: str, ip: str = "",
              user_agent: str = "", consent_text: str | None = None) -> None:
    """Sign ``email`` up to ``list_ids`` (None: every public list), pending confirmation.

    The outcome is silent and the same for new, pending, confirmed, unsubscribed and
    suppressed addresses. A suppressed address (bounced, complained, erased) is not
    ignored: its chosen lists wait for a fresh confirmation by the mailbox owner, which
    lifts the suppression (``confirm_once``). Raises InvalidInput for a bad address or
    name, missing consent, an unknown or private list, or an unknown source.

    Each consent record names the exact wording consented to: ``consent_text`` when the
    caller states it (an API client's form), else the sign-up sentence naming the lists
    chosen, in ``locale`` (``consent.sign_up_wording``, as the form and the embed show it)."""
    if source not in SOURCES:
        raise InvalidInput("Unknown source.", "source")
    problems = FieldErrors()  # every mistake at once: the form shows them all
    if "\ufffd" in (email or ""):
        problems.add(InvalidInput("This email address is not valid.", "email"))
        address_ = ""
    else:
        address_ = problems.check(normalize_email, email)
    name = problems.check(clean_name, name)
    if consent is not True:
        problems.add(InvalidInput("Please tick the consent box to subscribe.", "consent"))
    bind = session.get_bind()
    seen = _SEEN_LISTS.get(bind) if bind.dialect.name == "postgresql" else None
    checked = problems.check(_checked_lists, session, list_ids, seen)
    problems.raise_if_any()
    chosen, names, public = checked
    config = current_app.config
    if locale not in config["LANGUAGES"]:
        locale = config["BABEL_DEFAULT_LOCALE"]
    origin = Origin(source, ip, user_agent)
    if consent_text is not None and not consent_text.strip():
        consent_text = None
    if consent_text is not None and (len(consent_text) > MAX_WORDING or any(
            (ord(ch) < 32 and ch not in "\n\t") or 0xD800 <= ord(ch) <= 0xDFFF for ch in consent_text)):
        raise InvalidInput("The consent text is too long or holds characters that are not allowed.", "consent_text")
    wording = consent_text.strip() if consent_text else sign_up_wording(names, locale)
    remembered = public is seen
    created = _sign_up_new(session, address_, name, locale, chosen, origin, (wording, locale),
                           lists_seen=public if remembered else None)
    if created:
        return  # a new address: everything written in one statement
    if remembered:  # decided on the lists as last read: they changed, or the address is known
        chosen, names = _chosen_lists(_public_lists(session), list_ids)
        wording = consent_text.strip() if consent_text else sign_up_wording(names, locale)
        if created is None and _sign_up_new(session, address_, name, locale, chosen, origin, (wording, locale)):
            return
    text = keep_text(session, wording, locale)
    suppressed = is_suppressed(session, address_)
    subscriber = _find_or_create(session, address_, name, locale)
    current = {item.list_id: item for item in subscriber.subscriptions}
    now = utcnow()
    for list_id in chosen:
        subscription = current.get(list_id)
        if subscription is None:
            subscription = Subscription(subscriber=subscriber, list_id=list_id, status=PENDING,
                                        created_at=now)
            session.add(subscription)
        elif subscription.status == UNSUBSCRIBED or (suppressed and subscription.status == CONFIRMED):
            subscription.status = PENDING  # suppressed: the owner must confirm again
            subscription.created_at = now
        else:
            continue  # already pending, or confirmed and mailed: nothing changes
        record(session, subscriber, "subscribe", origin, list_id=list_id,
               version=config["CONSENT_TEXT_VERSION"], text=text)
    session.flush()
    if any(item.status == PENDING for item in subscriber.subscriptions):
        _request_confirmation(session, subscriber)


# _sign_up_new on PostgreSQL: written out (not built per request: building and caching this
# statement from the models cost more CPU than running it); the columns are the models'.
# ``lists_now``: whether the joinable lists are still those the sign-up was decided on
# (``:checked`` false: read in this transaction already); when not, nothing is written.
_NEW_PG = text("""
WITH lists_now AS (
    SELECT NOT :checked OR (coalesce(array_agg(id ORDER BY name, id), '{}') = CAST(:seen_ids AS integer[])
           AND coalesce(array_agg(CAST(name AS text) ORDER BY name, id), '{}') = CAST(:seen_names AS text[])) AS same
    FROM lists WHERE public AND archived_at IS NULL
), new_subscriber AS (
    INSERT INTO subscribers (email, email_hash, name, locale, attributes, search_text, confirm_nonce,
                             confirm_sent_at, confirm_sent_day, confirm_sent_today, created_at, updated_at)
    SELECT :email, :email_hash, :name, :locale, CAST('{}' AS json), :search_text, :confirm_nonce,
           :confirm_sent_at, :confirm_sent_day, :confirm_sent_today, :created_at, :updated_at
    FROM lists_now WHERE lists_now.same
    ON CONFLICT (email) DO NOTHING
    RETURNING id
), chosen AS (
    SELECT new_subscriber.id AS subscriber_id, list_id
    FROM new_subscriber, unnest(CAST(:list_ids AS integer[])) AS list_id
), new_subscriptions AS (
    INSERT INTO subscriptions (subscriber_id, list_id, status, created_at)
    SELECT subscriber_id, list_id, 'pending', :created_at FROM chosen
), new_text AS (
    INSERT INTO consent_texts (hash, wording, language, created_at)
    SELECT :t_hash, :t_wording, :t_language, :created_at FROM lists_now WHERE lists_now.same
    ON CONFLICT (hash) DO NOTHING
), new_consents AS (
    INSERT INTO consent_records (subscriber_id, list_id, action, source, consent_version, consent_text, ip,
                                 user_agent, created_at)
    SELECT subscriber_id, list_id, :c_action, :c_source, :c_consent_version, :t_hash, :c_ip, :c_user_agent,
           :c_created_at FROM chosen
), new_notice AS (
    INSERT INTO notices (kind, subscriber_id, status, attempts, available_at, created_at, last_error, message_id)
    SELECT 'confirm', id, 'queued', 0, :created_at, :created_at, '', '' FROM new_subscriber
)
SELECT (SELECT id FROM new_subscriber) AS id, (SELECT same FROM lists_now) AS same
""")


def _sign_up_new(session: Session, email: str, name: str, locale: str, list_ids: list[int],
                 origin: Origin, wording: tuple[str, str],
                 lists_seen: Sequence[tuple[int, str]] | None = None) -> bool | None:
    """A new address: the subscriber, a pending subscription and a consent record per list
    and the confirmation notice (and the consent wording, unless kept already), as
    ``subscribe`` would write them for an address never seen (no cool-down or cap can
    apply yet), in ONE round trip on PostgreSQL (data-modifying CTEs; a few statements on
    SQLite). False, with nothing written, when the address exists (then the general path
    decides); None, with nothing written, when ``lists_seen`` (the joinable lists the sign-up
    was decided on, as last read; PostgreSQL only) are no longer the joinable lists. Costs the
    same at any audience size: an insert into the unique index of addresses, nothing counted
    or scanned."""
    now = utcnow()
    values = {"email": email, "email_hash": email_hash(email), "name": name, "locale": locale,
              "attributes": {}, "search_text": subscriber_text(email, name),
              "confirm_nonce": secrets.token_hex(16), "confirm_sent_at": now,
              "confirm_sent_day": now.date().isoformat(), "confirm_sent_today": 1,
              "created_at": now, "updated_at": now}
    consent = {"action": "subscribe", "source": origin.source, "ip": (origin.ip or "")[:MAX_IP],
               "user_agent": (origin.user_agent or "")[:MAX_USER_AGENT],
               "consent_version": current_app.config["CONSENT_TEXT_VERSION"], "created_at": now}
    text = {"t_hash": text_hash(wording[0][:MAX_WORDING]), "t_wording": wording[0][:MAX_WORDING],
            "t_language": wording[1]}
    if session.get_bind().dialect.name == "postgresql":
        seen = list(lists_seen or ())
        # One statement: on its own when the request has read nothing from the database yet.
        [(created, same)] = on_its_own(session, _NEW_PG, {
            **values, **{f"c_{key}": value for key, value in consent.items()}, **text, "list_ids": list_ids,
            "checked": lists_seen is not None, "seen_ids": [id_ for id_, _name in seen],
            "seen_names": [name for _id, name in seen]})
        if not same:
            return None
    else:
        created = session.execute(sqlite.insert(Subscriber).values(values).on_conflict_do_nothing(
            index_elements=["email"]).returning(Subscriber.id)).scalar()
        if created is not None:
            keep_text(session, *wording)
            session.execute(sqlite.insert(Subscription), [
                {"subscriber_id": created, "list_id": list_id, "status": PENDING.value, "created_at": now}
                for list_id in list_ids])
            session.execute(sqlite.insert(ConsentRecord), [
                {"subscriber_id": created, "list_id": list_id, **consent, "consent_text": text["t_hash"]}
                for list_id in list_ids])
            session.execute(sqlite.insert(Notice).values(
                subscriber_id=created, kind=NoticeKind.CONFIRM.value, status=NoticeStatus.QUEUED.value,
                attempts=0, available_at=now, created_at=now, last_error="", message_id=""))
    if created is None:
        return False
    notices.wake(session)
    return True


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
            search_text=subscriber_text(email, name), confirm_nonce=secrets.token_hex(16),
            confirm_sent_today=0, created_at=now, updated_at=now).on_conflict_do_nothing(index_elements=["email"]))
        return session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
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
    seen = _latest_wording(session, subscriber.id)
    for subscription in subscriber.subscriptions:
        if subscription.status == PENDING:
            subscription.status = CONFIRMED
            subscription.confirmed_at = now
            record(session, subscriber, "confirm", origin, list_id=subscription.list_id,
                   version=version, text=seen.get(subscription.list_id, ""))
    subscriber.confirm_nonce = secrets.token_hex(16)  # single use
    session.flush()
    _lift_suppression(session, subscriber, origin)
    notices.queue(session, subscriber.id, NoticeKind.WELCOME)
    return subscriber, False


def _latest_wording(session: Session, subscriber_id: int) -> dict[int, str]:
    """List id -> the wording (hash) of the latest sign-up to it: what a confirmation confirms."""
    rows = session.execute(select(ConsentRecord.list_id, ConsentRecord.consent_text).where(
        ConsentRecord.subscriber_id == subscriber_id, ConsentRecord.action == "subscribe")
        .order_by(ConsentRecord.id)).all()
    return {row.list_id: row.consent_text for row in rows if row.list_id is not None}


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

"""The preference centre: what a subscriber may do about their own subscription, reached by
a signed link from every mail or asked for by address on the site.

A link carries ``[subscriber id, day issued]`` (``tokens.manage_token``) and opens the page
for PREFERENCES_LINK_DAYS; an older one raises ExpiredToken and the page offers a new link
by mail. The signed link is the proof of owning the mailbox, so joining a list here is
confirmed at once (a consent record "subscribe" then "confirm", source "preferences", with
the consent text shown). Leaving is recorded as in any unsubscribe; changes of name,
language and interests, exports and erasures go to the audit log with the subscriber as the
actor (by id, never by address). An erasure is asked for here and done only from a second,
expiring link mailed to the address.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audience, audit, interests, notices, tokens
from .consent import Origin, keep_text, preferences_wording, record
from .errors import BadToken, InvalidInput
from .lookups import parse_id
from .models import Category, MailingList, NoticeKind, Subscriber, Subscription, SubscriptionStatus, utcnow
from .subscribers import clean_name, normalize_email
from .subscriptions import CONFIRMED, PENDING, UNSUBSCRIBED, _lift_suppression, unsubscribe

SOURCE = "preferences"


def _actor(subscriber_id: int, ip: str = "") -> audit.Actor:
    return audit.Actor(user_id=None, email=f"subscriber:{subscriber_id}", via="self", ip=ip)


@dataclass(frozen=True)
class Choice:
    """One list on the page: whether the subscriber is on it (confirmed or pending)."""

    list: MailingList
    status: str | None  # pending, confirmed, unsubscribed, or None (never joined)

    @property
    def on(self) -> bool:
        return self.status in (PENDING, CONFIRMED)


@dataclass(frozen=True)
class Page:
    subscriber: Subscriber
    choices: list[Choice]
    categories: list[Category]
    interests: set[int]  # the ids of the categories chosen (none: every event)
    held: dict[str, Any]  # counts of what is kept about them


def subscriber_for(session: Session, token: str) -> Subscriber:
    """The subscriber of a preference-centre link. Raises ExpiredToken (carrying the
    subscriber id), or BadToken for a forged link or an erased subscriber."""
    subscriber_id = tokens.read_manage_token(token, current_app.config["PREFERENCES_LINK_DAYS"])
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise BadToken("This link is not valid.")
    return subscriber


def _lists_for(session: Session, subscriber: Subscriber) -> list[Choice]:
    """The lists anyone may join (public, not archived), and the others the subscriber is on
    (to leave, not to join)."""
    current = {item.list_id: item for item in subscriber.subscriptions}
    lists = session.scalars(select(MailingList).order_by(MailingList.name, MailingList.id)).all()
    return [Choice(item, current[item.id].status.value if item.id in current else None)
            for item in lists if item.joinable or (item.id in current and current[item.id].status != UNSUBSCRIBED)]


def page(session: Session, token: str) -> Page:
    """What the preference centre shows; changes nothing. Raises ExpiredToken, BadToken."""
    subscriber = subscriber_for(session, token)
    export = audience.export_subscriber(session, subscriber.id)
    held = {"consents": len(export["consent_history"]), "messages": len(export["messages"]),
            "returned": len(export["returned_mail"])}
    return Page(subscriber, _lists_for(session, subscriber), interests.all_categories(session),
                interests.interests_of(session, subscriber.id), held)


def save(session: Session, token: str, *, name: str, locale: str, list_ids: Sequence[int | str],
         interest_ids: Sequence[int | str] | None = None, page_locale: str = "", ip: str = "",
         user_agent: str = "") -> Subscriber:
    """Apply the page's form: the lists ticked (joining recorded as consent with the
    version of the consent text the page shows; leaving as an unsubscribe), the name and
    the language, and the interests (None: left as they are). ``page_locale``: the language
    the page was shown in (the consent sentence recorded is the one it showed). Raises ExpiredToken, BadToken;
    InvalidInput for a bad name, language, list (a private list cannot be joined here) or
    category."""
    subscriber = subscriber_for(session, token)
    name = clean_name(name)
    if locale not in current_app.config["LANGUAGES"]:
        raise InvalidInput("Choose a language.", "locale")
    try:
        wanted = {parse_id(list_id) for list_id in list_ids}
    except InvalidInput as exc:
        raise InvalidInput("Choose newsletters from the list.", "lists") from exc
    choices = {choice.list.id: choice for choice in _lists_for(session, subscriber)}
    for list_id in wanted:
        choice = choices.get(list_id)
        if choice is None or (not choice.list.joinable and not choice.on):
            raise InvalidInput("Choose newsletters from the list.", "lists")
    if interest_ids is not None:
        interests.chosen_categories(session, interest_ids, "interests")  # checked before any write
    origin = Origin(SOURCE, ip, user_agent)
    shown = page_locale if page_locale in current_app.config["LANGUAGES"] else subscriber.locale
    leaving = [list_id for list_id, choice in choices.items() if choice.on and list_id not in wanted]
    joining = [list_id for list_id in sorted(wanted) if not choices[list_id].on]
    if leaving:
        unsubscribe(session, subscriber.id, list_ids=leaving, source=SOURCE, ip=ip, user_agent=user_agent)
    _join(session, subscriber, joining, origin, current_app.config["CONSENT_TEXT_VERSION"],
          keep_text(session, preferences_wording(shown), shown) if joining else "")
    changed: dict[str, Any] = {}
    if interest_ids is not None:
        slugs = interests.set_interests(session, subscriber, interest_ids)
        if slugs is not None:
            changed["interests"] = slugs
    if name != subscriber.name:
        changed["name"] = True  # the audit log keeps no personal data
        subscriber.name = name
    if locale != subscriber.locale:
        changed["locale"] = locale
        subscriber.locale = locale
    if changed:
        audit.record(session, _actor(subscriber.id, ip), "subscriber.preferences",
                     f"subscriber:{subscriber.id}", **changed)
    session.flush()
    return subscriber


def _join(session: Session, subscriber: Subscriber, list_ids: list[int], origin: Origin,
          version: str, text: str) -> None:
    """Join ``list_ids`` confirmed: the link that opened the page proves the mailbox."""
    if not list_ids:
        return
    current = {item.list_id: item for item in subscriber.subscriptions}
    now = utcnow()
    for list_id in list_ids:
        subscription = current.get(list_id)
        if subscription is None:
            subscription = Subscription(subscriber=subscriber, list_id=list_id, created_at=now)
            session.add(subscription)
        subscription.status = SubscriptionStatus.CONFIRMED
        subscription.created_at = now
        subscription.confirmed_at = now
        subscription.unsubscribed_at = None
        record(session, subscriber, "subscribe", origin, list_id=list_id, version=version, text=text)
        record(session, subscriber, "confirm", origin, list_id=list_id, version=version, text=text)
    session.flush()
    _lift_suppression(session, subscriber, origin)


def leave_all(session: Session, token: str, *, ip: str = "", user_agent: str = "") -> Subscriber:
    """Leave every list in one click (recorded per list). Raises ExpiredToken, BadToken."""
    subscriber = subscriber_for(session, token)
    unsubscribe(session, subscriber.id, source=SOURCE, ip=ip, user_agent=user_agent)
    return subscriber


def export(session: Session, token: str, *, ip: str = "") -> dict[str, Any]:
    """Everything kept about the link's subscriber (the admin export, with where each consent
    came from: it is their own data); recorded in the audit log. Raises ExpiredToken, BadToken."""
    subscriber = subscriber_for(session, token)
    audit.record(session, _actor(subscriber.id, ip), "subscriber.export", f"subscriber:{subscriber.id}",
                 by="self")
    return audience.export_subscriber(session, subscriber.id)


def request_link(session: Session, email: str) -> None:
    """Mail a preference-centre link to ``email`` if it is a subscriber's; silent otherwise
    (the answer must not tell whether the address is known). Raises InvalidInput for
    something that is not an address."""
    address = normalize_email(email)
    subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
    if subscriber_id is not None:
        notices.queue(session, subscriber_id, NoticeKind.MANAGE)


def renew_link(session: Session, token: str) -> None:
    """Mail a new link to the subscriber of an expired (genuine) one; silent when they are
    gone. Raises BadToken for a forged link."""
    subscriber_id = tokens.read_manage_token(token, 10 ** 9)
    if session.get(Subscriber, subscriber_id) is not None:
        notices.queue(session, subscriber_id, NoticeKind.MANAGE)


def request_erasure(session: Session, token: str, *, ip: str = "") -> Subscriber:
    """Mail the link that confirms an erasure. Raises ExpiredToken, BadToken."""
    subscriber = subscriber_for(session, token)
    notices.queue(session, subscriber.id, NoticeKind.ERASE)
    return subscriber


def erase_token(subscriber_id: int, email_hash: str) -> str:
    """Bound to the address too (its hash): the link is void once the address changes."""
    return tokens.sign_timed(tokens.ERASE, [subscriber_id, email_hash[:16]])


def erasure_subject(session: Session, token: str) -> Subscriber:
    """The subscriber an erasure link names; changes nothing. Raises ExpiredToken, BadToken
    (forged, or the subscriber is gone already)."""
    payload = tokens.verify_timed(tokens.ERASE, token, current_app.config["ERASE_LINK_HOURS"] * 3600)
    if not (isinstance(payload, list) and len(payload) == 2 and type(payload[0]) is int
            and isinstance(payload[1], str)):
        raise BadToken("This link is not valid.")
    subscriber = session.get(Subscriber, payload[0])
    if subscriber is None or subscriber.email_hash[:16] != payload[1]:
        raise BadToken("This link is not valid.")
    return subscriber


def erase(session: Session, token: str, *, ip: str = "") -> None:
    """Erase the subscriber of a confirmed erasure link (``audience.erase_subscriber``: the
    keyed hash of the address stays suppressed). Raises ExpiredToken, BadToken."""
    subscriber = erasure_subject(session, token)
    subscriber_id = subscriber.id
    audience.erase_subscriber(session, subscriber_id)
    audit.record(session, _actor(subscriber_id, ip), "subscriber.erase", f"subscriber:{subscriber_id}",
                 by="self")

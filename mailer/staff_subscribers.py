"""Subscribers added and edited by hand by staff.

Adding someone records how their consent was obtained, with who added them:

- with a confirmation mail (double opt-in, the default), the subscriptions wait for the
  person to confirm, as a sign-up on the form would;
- without one, the staff member states where the consent is recorded (a paper form, an
  e-mail...), and the subscriptions are confirmed at once; the consent record says "added by
  staff" and names the staff member and that basis.

An address on the suppression list (erased, bounced, complained) is never added by hand:
only its owner can bring it back by signing up and confirming.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import consent, suppression
from .errors import Conflict, InvalidInput
from .lookups import get_or_404, parse_id
from .models import MailingList, Subscriber, Subscription, SubscriptionStatus, utcnow
from .subscribers import clean_name, normalize_email
from .subscriptions import _request_confirmation

LOCALES = ("pl", "en")
MAX_BASIS = 200
STAFF_ADDED = "staff-added"  # the consent record's action for a subscription confirmed by staff


@dataclass(frozen=True)
class Staff:
    """Who acts: the staff member's id and address, and the address they act from."""

    user_id: int | None
    email: str
    ip: str = ""


def _locale(value: str) -> str:
    if value not in LOCALES:
        raise InvalidInput("Choose Polish or English.", "locale")
    return value


def _lists(session: Session, list_ids: Sequence[int | str]) -> list[MailingList]:
    try:
        ids = sorted({parse_id(item) for item in list_ids or ()})
    except InvalidInput:
        raise InvalidInput("Choose at least one list.", "list_ids") from None
    if not ids:
        raise InvalidInput("Choose at least one list.", "list_ids")
    found = list(session.scalars(select(MailingList).where(MailingList.id.in_(ids),
                                                           MailingList.archived_at.is_(None))))
    if len(found) != len(ids):
        raise InvalidInput("One of the chosen lists does not exist or is archived.", "list_ids")
    return found


def _check_basis(confirmation_mail: bool, basis: str, consent_confirmed: bool) -> str:
    basis = " ".join((basis or "").split())
    if not confirmation_mail and not basis:
        raise InvalidInput("Without a confirmation mail, say where this person's consent is recorded "
                           "(for example \u201cpaper form, 12 May\u201d).", "basis")
    if not confirmation_mail and not consent_confirmed:
        raise InvalidInput("Without a confirmation mail, confirm that this person agreed to receive these "
                           "newsletters.", "consent_confirmed")
    if len(basis) > MAX_BASIS:
        raise InvalidInput("The consent source is too long.", "basis")
    return basis


def _refuse_suppressed(session: Session, email: str) -> None:
    if suppression.entry_for(session, email) is not None:
        raise Conflict("This address is on the suppression list (erased, bounced or marked as spam): it cannot be "
                       "added by hand. It comes back only when its owner signs up and confirms.", "email")


def _subscribe(session: Session, staff: Staff, subscriber: Subscriber, chosen: list[MailingList],
               confirmation_mail: bool, basis: str) -> int:
    """Put ``subscriber`` on ``chosen``: pending with a confirmation mail, or confirmed on
    ``basis``. Lists they are on (confirmed or pending) already are left as they are; a list
    they left comes back only through a confirmation mail (Conflict otherwise). Returns how
    many subscriptions were added or renewed."""
    now = utcnow()
    status = SubscriptionStatus.PENDING if confirmation_mail else SubscriptionStatus.CONFIRMED
    # The origin of a staff entry is the staff member: their address and the basis they gave
    # stand where a form's browser would (shown to admins with the consent history).
    who = f"staff {staff.email} (#{staff.user_id})"
    origin = consent.Origin("admin", staff.ip, f"{who}: {basis}" if basis else who)
    current = {sub.list_id: sub for sub in session.scalars(
        select(Subscription).where(Subscription.subscriber_id == subscriber.id))}
    changed = 0
    for item in chosen:
        existing = current.get(item.id)
        if existing is not None and existing.status != SubscriptionStatus.UNSUBSCRIBED:
            continue
        if existing is not None and not confirmation_mail:
            raise Conflict("%(email)s left \u201c%(list)s\u201d: only their own confirmation can bring them back. "
                           "Send a confirmation mail.", "confirmation_mail", email=subscriber.email, list=item.name)
        if existing is None:
            existing = Subscription(subscriber_id=subscriber.id, list_id=item.id)
            session.add(existing)
        existing.status = status
        existing.confirmed_at = None if confirmation_mail else now
        existing.unsubscribed_at = None
        consent.record(session, subscriber, "subscribe" if confirmation_mail else STAFF_ADDED, origin,
                       list_id=item.id, version=current_app.config["CONSENT_TEXT_VERSION"] if confirmation_mail
                       else "")
        changed += 1
    session.flush()
    if changed and confirmation_mail:
        _request_confirmation(session, subscriber)  # the cool-down and daily cap hold for staff too
    return changed


def add_subscriber(session: Session, staff: Staff, *, email: str, name: str = "", locale: str = "pl",
                   list_ids: Sequence[int | str], confirmation_mail: bool = True,
                   basis: str = "", consent_confirmed: bool = False) -> Subscriber:
    """A new subscriber on ``list_ids``: pending with a confirmation mail queued (sent after
    the caller commits), or, without one, confirmed on ``basis`` (where the consent is
    recorded) with ``consent_confirmed`` (the staff member vouches for it): both required
    then. Raises InvalidInput (address, name, language, lists, basis) or Conflict (the
    address is a subscriber already, or suppressed)."""
    email = normalize_email(email)
    name = clean_name(name)
    locale = _locale(locale)
    chosen = _lists(session, list_ids)
    basis = _check_basis(confirmation_mail, basis, consent_confirmed)
    if session.scalar(select(Subscriber.id).where(Subscriber.email == email)) is not None:
        raise Conflict("%(email)s is a subscriber already: open their page to change their lists.", "email",
                       email=email)
    _refuse_suppressed(session, email)
    subscriber = Subscriber(email=email, name=name, locale=locale, attributes={},
                            confirm_nonce=secrets.token_hex(16))
    session.add(subscriber)
    session.flush()
    _subscribe(session, staff, subscriber, chosen, confirmation_mail, basis)
    return subscriber


def add_to_lists(session: Session, staff: Staff, subscriber_id: int, *, list_ids: Sequence[int | str],
                 confirmation_mail: bool = True, basis: str = "", consent_confirmed: bool = False) -> int:
    """Put a subscriber on more lists, as ``add_subscriber`` would (a list they left: only
    with a confirmation mail). Returns how many subscriptions were added. Raises NotFound,
    InvalidInput, Conflict (suppressed; a list they left without a confirmation mail)."""
    subscriber = get_or_404(session, Subscriber, subscriber_id)
    chosen = _lists(session, list_ids)
    basis = _check_basis(confirmation_mail, basis, consent_confirmed)
    _refuse_suppressed(session, subscriber.email)
    return _subscribe(session, staff, subscriber, chosen, confirmation_mail, basis)


def update_subscriber(session: Session, subscriber_id: int, *, name: str, locale: str) -> Subscriber:
    """Change a subscriber's name and language (of their mail and pages). Raises NotFound,
    InvalidInput."""
    subscriber = get_or_404(session, Subscriber, subscriber_id)
    subscriber.name = clean_name(name)
    subscriber.locale = _locale(locale)
    session.flush()
    return subscriber

"""Mailing lists: create, rename, describe, public or private, archive, delete; slugs from
names; names unique whatever their case and spacing."""

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from .errors import Conflict, InvalidInput
from .lookups import get_or_404
from .mail.message import check_header_value
from .models import (
    Campaign,
    CampaignStatus,
    ConsentRecord,
    MailingList,
    Subscription,
    SubscriptionStatus,
    campaign_lists,
    utcnow,
)

MAX_NAME = 120
MAX_SLUG = 80
MAX_DESCRIPTION = 2000
_POLISH = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")


def slugify(text: str) -> str:
    """ASCII slug: Polish letters transliterated (ł → l), other marks dropped."""
    text = unicodedata.normalize("NFKD", (text or "").translate(_POLISH))
    text = text.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:MAX_SLUG].strip("-")


def _clean(name: str, description: str) -> tuple[str, str]:
    name = (name or "").strip()
    description = (description or "").strip()
    if not name:
        raise InvalidInput("Enter a name.", "name")
    if len(name) > MAX_NAME:
        raise InvalidInput("The name is too long.", "name")
    try:
        check_header_value(name)  # list names can end up in List-Id headers
    except InvalidInput as exc:
        raise InvalidInput("The name must be a single line.", "name") from exc
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput("The description is too long.", "description")
    return name, description


def name_key(name: str) -> str:
    """What makes two list names the same: case and runs of spaces do not count."""
    return " ".join((name or "").split()).casefold()


def _check_name_free(session: Session, name: str, exclude_id: int | None = None) -> None:
    """Raises Conflict when another list has this name (compared by ``name_key`` in Python, so
    Polish capitals fold on SQLite too; lists are few)."""
    key = name_key(name)
    for list_id, other in session.execute(select(MailingList.id, MailingList.name)):
        if list_id != exclude_id and name_key(other) == key:
            raise Conflict("A list named \u201c%(name)s\u201d exists already.", "name", name=other)


def _unique_slug(session: Session, base: str, exclude_id: int | None = None) -> str:
    base = base or "lista"
    slug, n = base, 2
    while True:
        query = select(MailingList.id).where(MailingList.slug == slug)
        if exclude_id is not None:
            query = query.where(MailingList.id != exclude_id)
        if session.scalar(query) is None:
            return slug
        suffix = f"-{n}"
        slug, n = base[: MAX_SLUG - len(suffix)] + suffix, n + 1


def create_list(session: Session, *, name: str, slug: str | None = None, description: str = "",
                public: bool = True) -> MailingList:
    """A new list; slug derived from the name when not given (made unique with -2, -3...).
    Raises InvalidInput (missing/overlong name, bad slug) or Conflict (name taken, slug given
    and taken)."""
    name, description = _clean(name, description)
    _check_name_free(session, name)
    if slug:
        wanted = slugify(slug)
        if not wanted:
            raise InvalidInput("The short name may contain only letters, digits and hyphens.", "slug")
        if session.scalar(select(MailingList.id).where(MailingList.slug == wanted)) is not None:
            raise Conflict("A list with this short name exists.", "slug")
    else:
        wanted = _unique_slug(session, slugify(name))
    mailing_list = MailingList(name=name, slug=wanted, description=description, public=bool(public))
    session.add(mailing_list)
    session.flush()
    return mailing_list


def update_list(session: Session, list_id: int, *, name: str, description: str,
                public: bool) -> MailingList:
    """Rename, describe, make public or private (the slug stays, links keep working).
    Raises NotFound, InvalidInput, Conflict (another list has the name)."""
    mailing_list = get_or_404(session, MailingList, list_id)
    name, description = _clean(name, description)
    _check_name_free(session, name, list_id)
    mailing_list.name, mailing_list.description = name, description
    mailing_list.public = bool(public)
    session.flush()
    return mailing_list


def all_lists(session: Session) -> list[MailingList]:
    return list(session.scalars(select(MailingList).order_by(MailingList.name, MailingList.id)))


def public_lists(session: Session) -> list[MailingList]:
    """The lists a visitor may choose on the subscribe form, by name (archived ones never)."""
    return list(session.scalars(select(MailingList).where(MailingList.joinable)
                                .order_by(MailingList.name, MailingList.id)))


def offered_lists(session: Session, keep_ids=()) -> list[MailingList]:
    """The lists a campaign may be sent to, by name: those not archived, and of the archived
    ones only those in ``keep_ids`` (already chosen by the campaign)."""
    keep = [int(i) for i in keep_ids]
    return list(session.scalars(select(MailingList).where(
        MailingList.archived_at.is_(None) | MailingList.id.in_(keep)).order_by(MailingList.name, MailingList.id)))


@dataclass(frozen=True)
class ListCounts:
    confirmed: int = 0
    pending: int = 0
    unsubscribed: int = 0

    @property
    def total(self) -> int:
        return self.confirmed + self.pending + self.unsubscribed


def overview(session: Session, per_list: dict[str, dict[str, int]] | None = None
             ) -> list[tuple[MailingList, ListCounts]]:
    """Every list (active first, then archived; by name) with its subscriptions counted by
    status: from ``per_list`` (the background summary's, by list id and status), else now,
    in one statement (a GROUP BY over the (list_id, status) index)."""
    order = (MailingList.archived_at.is_not(None), MailingList.name, MailingList.id)
    if per_list is not None:
        kept = {list_id: ListCounts(confirmed=counts.get("confirmed", 0), pending=counts.get("pending", 0),
                                    unsubscribed=counts.get("unsubscribed", 0))
                for list_id, counts in per_list.items()}
        return [(item, kept.get(str(item.id), ListCounts()))
                for item in session.scalars(select(MailingList).order_by(*order))]

    def counted(status: SubscriptionStatus):
        return func.coalesce(func.sum(case((Subscription.status == status, 1), else_=0)), 0)

    counts = (select(Subscription.list_id, counted(SubscriptionStatus.CONFIRMED).label("confirmed"),
                     counted(SubscriptionStatus.PENDING).label("pending"),
                     counted(SubscriptionStatus.UNSUBSCRIBED).label("unsubscribed"))
              .group_by(Subscription.list_id).subquery())
    rows = session.execute(
        select(MailingList, counts.c.confirmed, counts.c.pending, counts.c.unsubscribed)
        .outerjoin(counts, counts.c.list_id == MailingList.id).order_by(*order))
    return [(item, ListCounts(int(c or 0), int(p or 0), int(u or 0))) for item, c, p, u in rows]


def set_archived(session: Session, list_id: int, archived: bool) -> MailingList:
    """Archive a list (hidden from the subscribe form and from new campaigns; its
    subscriptions, consent records and campaigns stay) or bring it back. Idempotent.
    Raises NotFound."""
    mailing_list = get_or_404(session, MailingList, list_id)
    if archived and mailing_list.archived_at is None:
        mailing_list.archived_at = utcnow()
    elif not archived:
        mailing_list.archived_at = None
    session.flush()
    return mailing_list


BUSY = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)


def delete_list(session: Session, list_id: int) -> int:
    """Delete a list and its subscriptions (the subscribers stay; their consent records stay,
    no longer naming the list; campaigns already sent keep their deliveries). Returns how
    many subscriptions went. Raises NotFound, Conflict (a scheduled, sending or paused
    campaign goes to it: cancel it or archive the list instead)."""
    get_or_404(session, MailingList, list_id)
    busy = session.scalar(select(Campaign.subject).join(campaign_lists, campaign_lists.c.campaign_id == Campaign.id)
                          .where(campaign_lists.c.list_id == list_id, Campaign.status.in_(BUSY)).limit(1))
    if busy is not None:
        raise Conflict("This list cannot be deleted: the campaign \u201c%(subject)s\u201d is being sent "
                       "or is scheduled to it.", subject=busy or "\u2014")
    session.execute(update(ConsentRecord).where(ConsentRecord.list_id == list_id).values(list_id=None)
                    .execution_options(synchronize_session=False))
    gone = session.execute(delete(Subscription).where(Subscription.list_id == list_id)
                           .execution_options(synchronize_session=False)).rowcount or 0  # type: ignore[attr-defined]
    session.execute(delete(campaign_lists).where(campaign_lists.c.list_id == list_id))
    session.execute(delete(MailingList).where(MailingList.id == list_id).execution_options(synchronize_session=False))
    session.expire_all()
    return gone

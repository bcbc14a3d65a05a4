"""Interests: categories of events that staff define, events carry and subscribers choose.

The rule, in one place: an event is of interest to a subscriber when the subscriber chose no
interests, or the event has no category, or they share one. A campaign goes only to those
for whom at least one of its events is of interest (``audience_clause``, added to the
snapshot), and each recipient's copy of a digest shows only those events: the built-in
digest wraps each event in section markers (``event.begin`` ... ``event.end``) that stay in
the frozen content, and per recipient the engine leaves out the sections of other events
(``mail.render.Personalizer``) with the event set ``EventFilter`` worked out once per
distinct set of interests. A staff template without the markers shows every event.
"""

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.orm import Session

from . import audit
from .errors import InvalidInput
from .lookups import get_or_404, parse_id
from .models import Campaign, Category, Event, Subscriber, event_categories, subscriber_interests

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_NAME = 120


# --- Staff: the categories ------------------------------------------------------------------

def all_categories(session: Session) -> list[Category]:
    return list(session.scalars(select(Category).order_by(Category.name_pl, Category.id)))


def _clean(session: Session, values: dict[str, Any], category_id: int | None = None) -> dict[str, str]:
    cleaned = {}
    for field in ("name_pl", "name_en"):
        value = values.get(field)
        value = value.strip() if isinstance(value, str) else ""
        if not value:
            raise InvalidInput("This field is required.", field)
        if len(value) > MAX_NAME:
            raise InvalidInput("This text is too long.", field)
        if any(ch in value for ch in "\r\n\x00"):
            raise InvalidInput("This field must be a single line of text.", field)
        cleaned[field] = value
    slug = values.get("slug")
    slug = slug.strip().lower() if isinstance(slug, str) else ""
    if not _SLUG.fullmatch(slug) or len(slug) > 80:
        raise InvalidInput("Use lower-case letters, digits and hyphens (e.g. concerts).", "slug")
    taken = session.scalar(select(Category.id).where(Category.slug == slug, Category.id != (category_id or 0)))
    if taken is not None:
        raise InvalidInput("A category with this slug exists already.", "slug")
    cleaned["slug"] = slug
    return cleaned


def create_category(session: Session, values: dict[str, Any], actor: audit.Actor) -> Category:
    """Raises InvalidInput (a missing or overlong name, a bad or taken slug)."""
    category = Category(**_clean(session, values))
    session.add(category)
    session.flush()
    audit.record(session, actor, "category.create", str(category.id), slug=category.slug)
    return category


def update_category(session: Session, category_id: int, values: dict[str, Any], actor: audit.Actor) -> Category:
    """Raises NotFound, InvalidInput."""
    category = get_or_404(session, Category, category_id)
    for key, value in _clean(session, values, category_id).items():
        setattr(category, key, value)
    session.flush()
    audit.record(session, actor, "category.update", str(category.id), slug=category.slug)
    return category


def delete_category(session: Session, category_id: int, actor: audit.Actor) -> None:
    """Delete a category (events and subscribers lose it). Raises NotFound."""
    category = get_or_404(session, Category, category_id)
    session.execute(delete(event_categories).where(event_categories.c.category_id == category_id))
    session.execute(delete(subscriber_interests).where(subscriber_interests.c.category_id == category_id))
    audit.record(session, actor, "category.delete", str(category.id), slug=category.slug)
    session.delete(category)
    session.flush()


def chosen_categories(session: Session, ids: Iterable[int | str] | None, field: str = "category_ids") -> list[Category]:
    """The categories named by ``ids``; raises InvalidInput for a malformed or unknown one."""
    wanted = set()
    for value in ids or ():
        try:
            wanted.add(parse_id(value))
        except InvalidInput as exc:
            raise InvalidInput("Choose categories from the list.", field) from exc
    if not wanted:
        return []
    found = list(session.scalars(select(Category).where(Category.id.in_(wanted)).order_by(Category.slug)))
    if len(found) != len(wanted):
        raise InvalidInput("Choose categories from the list.", field)
    return found


def set_event_categories(session: Session, event: Event, ids: Iterable[int | str] | None) -> None:
    """Raises InvalidInput."""
    event.categories = chosen_categories(session, ids)
    session.flush()


# --- Subscribers' interests -----------------------------------------------------------------

def interests_of(session: Session, subscriber_id: int) -> set[int]:
    return set(session.scalars(select(subscriber_interests.c.category_id)
                               .where(subscriber_interests.c.subscriber_id == subscriber_id)))


def set_interests(session: Session, subscriber: Subscriber, ids: Sequence[int | str]) -> list[str] | None:
    """Replace the subscriber's interests; the new slugs, or None when nothing changed.
    Raises InvalidInput for an unknown category."""
    chosen = chosen_categories(session, ids, "interests")
    before = interests_of(session, subscriber.id)
    if before == {category.id for category in chosen}:
        return None
    session.execute(delete(subscriber_interests).where(subscriber_interests.c.subscriber_id == subscriber.id))
    if chosen:
        session.execute(insert(subscriber_interests), [
            {"subscriber_id": subscriber.id, "category_id": category.id} for category in chosen])
    return [category.slug for category in chosen]


# --- Sending: who gets a campaign, and which of its events -----------------------------------

def _event_categories(session: Session, event_ids: Sequence[int]) -> dict[int, frozenset[int]]:
    found: dict[int, set[int]] = {event_id: set() for event_id in event_ids}
    for event_id, category_id in session.execute(
            select(event_categories.c.event_id, event_categories.c.category_id)
            .where(event_categories.c.event_id.in_(event_ids))):
        found[event_id].add(category_id)
    return {event_id: frozenset(ids) for event_id, ids in found.items()}


def audience_clause(session: Session, campaign_id: int) -> Any:
    """The condition a campaign's audience must also meet (None: none): when every event of
    the campaign has categories, a subscriber with interests must share one with them."""
    campaign = session.get(Campaign, campaign_id)
    event_ids = [item.event_id for item in campaign.campaign_events] if campaign is not None else []
    if not event_ids:
        return None
    categories = _event_categories(session, event_ids)
    if any(not ids for ids in categories.values()):
        return None  # an event for everyone
    union = set().union(*categories.values())
    mine = subscriber_interests.c.subscriber_id == Subscriber.id
    return ~exists().where(mine) | exists().where(mine, subscriber_interests.c.category_id.in_(union))


class EventFilter:
    """Which of a campaign's events each recipient's copy shows (None: all). Built once per
    campaign mail; per batch one query reads the recipients' interests, and each distinct set
    of interests is worked out once."""

    def __init__(self, event_categories_: dict[int, frozenset[int]]):
        self.categories = event_categories_
        self.active = any(self.categories.values())  # no categorised event: nothing to filter
        self._memo: dict[frozenset[int], frozenset[int]] = {}

    @classmethod
    def for_events(cls, session: Session, event_ids: Sequence[int]) -> "EventFilter":
        return cls(_event_categories(session, event_ids) if event_ids else {})

    def allowed(self, interests: frozenset[int]) -> frozenset[int] | None:
        if not self.active or not interests:
            return None
        shown = self._memo.get(interests)
        if shown is None:
            shown = self._memo[interests] = frozenset(
                event_id for event_id, ids in self.categories.items() if not ids or ids & interests)
        return shown

    def for_batch(self, session: Session, subscriber_ids: Sequence[int]) -> dict[int, frozenset[int] | None]:
        """Subscriber id -> the events their copy shows (absent or None: all)."""
        if not self.active or not subscriber_ids:
            return {}
        found: dict[int, set[int]] = {}
        for subscriber_id, category_id in session.execute(
                select(subscriber_interests.c.subscriber_id, subscriber_interests.c.category_id)
                .where(subscriber_interests.c.subscriber_id.in_(subscriber_ids))):
            found.setdefault(subscriber_id, set()).add(category_id)
        return {subscriber_id: self.allowed(frozenset(ids)) for subscriber_id, ids in found.items()}


def count_interested(session: Session, category_id: int) -> int:
    return session.scalar(select(func.count()).where(subscriber_interests.c.category_id == category_id)) or 0

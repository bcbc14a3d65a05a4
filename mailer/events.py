"""Events: what the institution announces."""

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import markdown as md
import nh3
from flask import current_app
from flask_babel import force_locale, format_datetime
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import Conflict, FieldErrors, InvalidInput
from .interests import set_event_categories
from .languages import EVENT_FIELDS, event_missing, event_text
from .lookups import get_or_404
from .mail.render import SECTION_END, html_to_text, section_start
from .models import Campaign, CampaignEvent, CampaignStatus, Event, utcnow

_markdown = md.Markdown(extensions=["extra", "sane_lists"], output_format="html")


def markdown_to_html(source: str) -> str:
    """Staff Markdown as sanitized HTML: no script, no on* handlers, no javascript: URLs."""
    _markdown.reset()
    return nh3.clean(_markdown.convert(source or ""), url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer")


def when(event: Event, locale: str) -> str:
    """'sobota, 5 grudnia 2026, 18:00–20:00' in the event's own timezone (Europe/Warsaw)."""
    tz = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    start = event.starts_at.astimezone(tz)
    with force_locale(locale):
        text = format_datetime(start, "EEEE, d MMMM y, HH:mm", rebase=False)
        if event.ends_at:
            end = event.ends_at.astimezone(tz)
            pattern = "HH:mm" if end.date() == start.date() else "d MMMM y, HH:mm"
            text += "–" + format_datetime(end, pattern, rebase=False)
    return text


def ics_url(event: Event) -> str:
    return current_app.config["BASE_URL"] + f"/events/{event.id}.ics"


def body_text(event: Event) -> str:
    """The description as plain text, made as the mail's text part is made (Markdown to
    sanitized HTML to text, links kept): no Markdown marks, no stripped tags."""
    return html_to_text(markdown_to_html(event.body_md)) if event.body_md else ""


def event_context(event: Event, locale: str) -> dict:
    """What an email template sees of an event, in ``locale`` (Polish where not translated:
    ``untranslated`` names those fields)."""
    body_md = event_text(event, "body_md", locale)
    body_html = Markup(markdown_to_html(body_md))  # sanitized, so safe to embed
    return {
        "id": event.id, "title": event_text(event, "title", locale), "when": when(event, locale),
        "place": event_text(event, "place", locale),
        "summary": event_text(event, "summary", locale), "body_html": body_html,
        "body_text": html_to_text(body_html) if body_md else "",
        "untranslated": event_missing(event, locale),
        "image_url": event.image_url, "link": event.link, "ics_url": ics_url(event),
        "starts_at": event.starts_at, "ends_at": event.ends_at,
        # Around an event's block in a digest: a recipient's copy leaves out the events
        # outside their interests (mailer.interests).
        "begin": section_start(event.id), "end": SECTION_END,
        "categories": [category.name(locale) for category in event.categories],
    }


def upcoming(session: Session, limit: int = 20) -> list[Event]:
    """Events that have not ended yet, soonest first."""
    ends = func.coalesce(Event.ends_at, Event.starts_at)
    return list(session.scalars(
        select(Event).where(ends >= utcnow()).order_by(Event.starts_at).limit(limit)
    ))


# --- Editing events -----------------------------------------------------------------

_LIMITS = {"title": 200, "place": 200, "summary": 500, "body_md": 20000, "image_url": 500,
           "link": 500}
_LIMITS.update({f"{field}_en": _LIMITS[field] for field in EVENT_FIELDS})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])


YEARS = (1900, 2200)


def parse_when(value, field: str, required: bool) -> datetime | None:
    """An aware UTC datetime from an aware datetime or an ISO 8601 string; naive values are
    local (Europe/Warsaw) time. Raises InvalidInput."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput("Give the date and time.", field)
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput("Give the date and time as YYYY-MM-DD HH:MM.", field) from None
    if not isinstance(value, datetime):
        raise InvalidInput("Give the date and time as YYYY-MM-DD HH:MM.", field)
    if not YEARS[0] <= value.year <= YEARS[1]:  # also keeps astimezone() from overflowing
        raise InvalidInput("Give a date between the years 1900 and 2200.", field)
    if value.tzinfo is None:
        value = value.replace(tzinfo=local_zone())
    return value.astimezone(timezone.utc)


def _text(values: dict, field: str, required: bool = False, single_line: bool = True) -> str:
    value = values.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput("This field must be text.", field)
    value = value.strip().replace("\r\n", "\n")
    if required and not value:
        raise InvalidInput("This field is required.", field)
    if len(value) > _LIMITS[field]:
        raise InvalidInput("This text is too long.", field)
    if single_line and _CONTROL.search(value):
        raise InvalidInput("This field must be a single line of text.", field)
    return value


def _url(values: dict, field: str) -> str:
    value = _text(values, field)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise InvalidInput("Give a web address starting with http:// or https://.", field)
    return value


def clean_event(values: dict) -> dict:
    """Validated event fields; raises InvalidInput (with ``field``) for the first mistake,
    carrying every mistake found (``errors``): each field is checked."""
    if not isinstance(values, dict):
        raise InvalidInput("Send the event's fields.")
    problems = FieldErrors()
    cleaned: dict[str, Any] = {
        "title": problems.check(_text, values, "title", required=True),
        "starts_at": problems.check(parse_when, values.get("starts_at"), "starts_at", required=True),
        "ends_at": problems.check(parse_when, values.get("ends_at"), "ends_at", required=False),
        "place": problems.check(_text, values, "place"),
        "summary": problems.check(_text, values, "summary", single_line=False),
        "body_md": problems.check(_text, values, "body_md", single_line=False),
        "image_url": problems.check(_url, values, "image_url"),
        "link": problems.check(_url, values, "link"),
    }
    # English texts: optional; empty is "not translated" (None), shown in Polish.
    for field in EVENT_FIELDS:
        cleaned[f"{field}_en"] = problems.check(
            _text, values, f"{field}_en", single_line=field in {"title", "place"}) or None
    if not problems.failed("starts_at", "ends_at") and cleaned["ends_at"] is not None \
            and cleaned["ends_at"] <= cleaned["starts_at"]:
        problems.add(InvalidInput("The end must be after the start.", "ends_at"))
    problems.raise_if_any()
    return cleaned


def create_event(session: Session, values: dict) -> Event:
    """A new event from ``values`` (``category_ids`` too, when given); raises InvalidInput."""
    event = Event(**clean_event(values))
    session.add(event)
    if "category_ids" in values:
        set_event_categories(session, event, values["category_ids"])
    session.flush()
    return event


def update_event(session: Session, event_id: int, values: dict) -> Event:
    """Replace an event's fields; raises NotFound, InvalidInput."""
    event = get_or_404(session, Event, event_id)
    for key, value in clean_event(values).items():
        setattr(event, key, value)
    if "category_ids" in values:
        set_event_categories(session, event, values["category_ids"])
    session.flush()
    return event


def delete_event(session: Session, event_id: int) -> None:
    """Raises NotFound; Conflict when a campaign that is not a draft announces it."""
    event = get_or_404(session, Event, event_id)
    used = session.scalar(
        select(func.count()).select_from(CampaignEvent).join(Campaign)
        .where(CampaignEvent.event_id == event_id, Campaign.status != CampaignStatus.DRAFT)
    )
    if used:
        raise Conflict("This event was announced in a campaign and cannot be deleted.")
    session.delete(event)
    session.flush()


def all_events(session: Session) -> list[Event]:
    """Every event, the latest start first."""
    return list(session.scalars(select(Event).order_by(Event.starts_at.desc())))


def by_date(events: Iterable[Event]) -> list[Event]:
    """Events in the order they happen (start time, then the older entry): how a campaign
    lists them, whatever order they were chosen or created in."""
    return sorted(events, key=lambda event: (event.starts_at, event.id or 0))


def events_to_choose(session: Session) -> list[Event]:
    """The campaign editor's choice: upcoming events soonest first, then past ones, the most
    recent first."""
    now = utcnow()
    upcoming = session.scalars(select(Event).where(Event.starts_at >= now).order_by(Event.starts_at, Event.id))
    past = session.scalars(select(Event).where(Event.starts_at < now).order_by(Event.starts_at.desc(), Event.id))
    return [*upcoming, *past]


def to_ics(event: Event) -> bytes:
    """The event as an iCalendar file (one VEVENT, times in UTC)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//mailer//events//PL")
    calendar.add("version", "2.0")
    item = icalendar.Event()
    item.add("uid", f"event-{event.id}@{current_app.config['MAIL_DOMAIN']}")
    item.add("dtstamp", utcnow())
    item.add("dtstart", event.starts_at)
    item.add("dtend", event.ends_at or event.starts_at + timedelta(hours=1))
    item.add("summary", event.title)
    if event.place:
        item.add("location", event.place)
    description = "\n\n".join(part for part in (event.summary, body_text(event).strip()) if part)
    if description:
        item.add("description", description)
    if event.link:
        item.add("url", event.link)
    calendar.add_component(item)
    return calendar.to_ical()

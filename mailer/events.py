"""Events: what the institution announces."""

from zoneinfo import ZoneInfo

import markdown as md
import nh3
from flask import current_app
from flask_babel import format_datetime, force_locale
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Event, utcnow
from .mail.render import html_to_text

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


def event_context(event: Event, locale: str) -> dict:
    """What an email template sees of an event."""
    body_html = Markup(markdown_to_html(event.body_md))  # sanitized, so safe to embed
    return {
        "id": event.id, "title": event.title, "when": when(event, locale), "place": event.place,
        "summary": event.summary, "body_html": body_html,
        "body_text": html_to_text(body_html) if event.body_md else "",
        "image_url": event.image_url, "link": event.link, "ics_url": ics_url(event),
        "starts_at": event.starts_at, "ends_at": event.ends_at,
    }



def upcoming(session: Session, limit: int = 20) -> list[Event]:
    """Events that have not ended yet, soonest first."""
    ends = func.coalesce(Event.ends_at, Event.starts_at)
    return list(session.scalars(
        select(Event).where(ends >= utcnow()).order_by(Event.starts_at).limit(limit)
    ))

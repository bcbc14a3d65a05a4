"""Public pages about what was sent and announced: view in browser, archive, calendar files."""

from flask import Blueprint, Response, current_app, render_template
from flask_babel import get_locale

from .. import campaigns, events, languages, tokens
from ..extensions import db_session
from ..lookups import get_or_404
from ..models import Event
from .i18n import in_subscriber_language

bp = Blueprint("archive", __name__)

# A rendered campaign is staff HTML already sanitized and sandboxed; still, no scripts run.
_MAIL_CSP = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; " \
            "frame-ancestors 'self'"


@bp.app_template_global("event_when")
def event_when(event) -> str:
    """An event's date and time in the page's language, Warsaw time."""
    return events.when(event, str(get_locale()))


@bp.app_template_global("event_text")
def event_text(event, field: str) -> str:
    """An event's title, place, summary ... in the page's language (Polish where not translated)."""
    return languages.event_text(event, field, str(get_locale()))


@bp.app_template_global("campaign_subject")
def campaign_subject(campaign) -> str:
    """A campaign's subject in the page's language (its own language's where it has no version)."""
    found = languages.versions(campaign)
    return found[languages.pick(found, str(get_locale()), campaign.locale)].subject


# templates/web/admin/base.html asks current_app which endpoints exist; Flask does not
# expose it to templates by default.
bp.add_app_template_global(current_app, "current_app")


def mail_page(html: str) -> Response:
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _MAIL_CSP
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/m/<token>")
@in_subscriber_language(tokens.VIEW)
def view_in_browser(token: str):
    """One recipient's copy of a campaign; a forged token gets the generic 400 page."""
    return mail_page(campaigns.view_copy(db_session, token).html)


@bp.get("/archive")
def index():
    return render_template("web/archive/index.html", campaigns=campaigns.archived(db_session))


@bp.get("/archive/<int:campaign_id>")
def campaign(campaign_id: int):
    item = campaigns.get_archived(db_session, campaign_id)
    return render_template("web/archive/campaign.html", campaign=item)


@bp.get("/archive/<int:campaign_id>/mail")
def campaign_mail(campaign_id: int):
    """The archived campaign's HTML, shown in the archive page's frame."""
    item = campaigns.get_archived(db_session, campaign_id)
    return mail_page(campaigns.render_as(db_session, item, None, public=True, locale=str(get_locale())).html)


@bp.get("/events/<int:event_id>.ics")
def event_ics(event_id: int):
    event = get_or_404(db_session, Event, event_id)
    return Response(events.to_ics(event), mimetype="text/calendar",
                    headers={"Content-Disposition": f'attachment; filename="event-{event.id}.ics"'})

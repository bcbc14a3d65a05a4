"""Campaigns: compose from events and a template, edit, schedule, preview and test.

Sending itself (launch, pause, resume, cancel, progress) is mailer.sending's.
"""

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import campaign_mail, interests, links, recipients, segments, tokens
from . import campaign_states as states
from .email_templates import SAMPLE_EMAIL, SAMPLE_NAME, compile_for, content_templates, default_content_template
from .errors import BadToken, Conflict, InvalidInput, NotFound
from .events import all_events, parse_when
from .events import when as event_when
from .jobs import enqueue
from .lookups import MAX_ID, get_or_404, parse_id
from .mail.message import check_header_value
from .mail.render import Rendered
from .mail.transport import ConnectionFailed, from_config
from .models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Event,
    MailingList,
    Subscriber,
    Template,
    TemplateKind,
    utcnow,
)
from .subscribers import normalize_email

EDITABLE = states.EDITABLE
MAX_TEST_ADDRESSES = 10
_UPCOMING = {"pl": "Najbliższe wydarzenia", "en": "Upcoming events"}


def all_campaigns(session: Session) -> list[Campaign]:
    """Every campaign, the newest first."""
    return list(session.scalars(select(Campaign).order_by(Campaign.created_at.desc(),
                                                          Campaign.id.desc())))


def _ids(values, field: str) -> list[int]:
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise InvalidInput("Expected a list of ids.", field)
    return list(dict.fromkeys(parse_id(value, field) for value in values))


def _events(session: Session, event_ids) -> list[Event]:
    ids = _ids(event_ids, "event_ids")
    if not ids:
        raise InvalidInput("Choose at least one event.", "event_ids")
    found = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(ids)))}
    if len(found) != len(ids):
        raise InvalidInput("One of the chosen events does not exist.", "event_ids")
    return [found[i] for i in ids]


def _lists(session: Session, list_ids) -> list[MailingList]:
    ids = _ids(list_ids, "list_ids")
    found = list(session.scalars(select(MailingList).where(MailingList.id.in_(ids)))) if ids else []
    if len(found) != len(ids):
        raise InvalidInput("One of the chosen lists does not exist.", "list_ids")
    return found


def _template(session: Session, template_id) -> Template | None:
    if template_id in (None, ""):
        return None
    try:
        template = session.get(Template, parse_id(template_id))
    except InvalidInput:
        template = None
    if template is None or template.kind != TemplateKind.CONTENT:
        raise InvalidInput("Choose a content template.", "template_id")
    return template


def _line(value, field: str, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput("This field must be text.", field)
    value = value.strip()
    if required and not value:
        raise InvalidInput("This field is required.", field)
    if len(value) > 200:
        raise InvalidInput("This text is too long.", field)
    try:
        check_header_value(value)
    except InvalidInput:
        raise InvalidInput("This field must be a single line of text.", field) from None
    return value


def _locale(value) -> str:
    if value not in current_app.config["LANGUAGES"]:
        raise InvalidInput("Choose a language.", "locale")
    return value


def suggested_subject(events: list[Event], locale: str) -> str:
    if len(events) == 1:
        return events[0].title[:200]
    return _UPCOMING.get(locale, _UPCOMING["pl"])


def suggested_preheader(events: list[Event], locale: str) -> str:
    if len(events) == 1:
        event = events[0]
        text = event_when(event, locale) + (f" · {event.place}" if event.place else "")
    else:
        text = " · ".join(event.title for event in events)
    return text if len(text) <= 200 else text[:199] + "…"


def _set_events(campaign: Campaign, events: list[Event]) -> None:
    campaign.campaign_events = [CampaignEvent(event=event, position=i) for i, event in enumerate(events)]


def create_campaign(session: Session, *, event_ids: Sequence[int | str], list_ids: Sequence[int | str],
                    template_id: int | str | None = None, subject: str | None = None,
                    preheader: str | None = None, locale: str = "pl",
                    created_by_id: int | None = None, segment_ids: Sequence[int | str] | None = None) -> Campaign:
    """A draft campaign; subject and preheader are prefilled from the events when None, the
    template defaults to the announcement (one event) or the digest (several).
    Raises InvalidInput."""
    locale = _locale(locale)
    events = _events(session, event_ids)
    lists = _lists(session, list_ids)
    template = _template(session, template_id) or default_content_template(session, len(events) > 1)
    subject = _line(suggested_subject(events, locale) if subject is None else subject, "subject", True)
    preheader = _line(suggested_preheader(events, locale) if preheader is None else preheader,
                      "preheader", False)
    campaign = Campaign(subject=subject, preheader=preheader, template=template, locale=locale,
                        lists=lists, created_by_id=created_by_id, status=CampaignStatus.DRAFT,
                        segments=segments.segments_by_id(session, list(segment_ids or [])))
    _set_events(campaign, events)
    session.add(campaign)
    session.flush()
    compile_for(session, campaign)  # a broken template is refused now, not at send time
    recipients.recount_later(session, campaign.id)
    return campaign


def update_campaign(session: Session, campaign_id: int, values: dict) -> Campaign:
    """Change any of subject, preheader, template_id, event_ids, list_ids, segment_ids, locale, archived.
    Raises NotFound, Conflict (unless draft or scheduled; ``archived`` alone may change at any
    time), InvalidInput."""
    campaign = get_or_404(session, Campaign, campaign_id)
    if not isinstance(values, dict):
        raise InvalidInput("Send the campaign's fields.")
    content_keys = set(values) - {"archived"}
    if content_keys and campaign.status not in EDITABLE:
        raise Conflict("This campaign can no longer be changed.")
    if "locale" in values:
        campaign.locale = _locale(values["locale"])
    if "subject" in values:
        campaign.subject = _line(values["subject"], "subject", True)
    if "preheader" in values:
        campaign.preheader = _line(values["preheader"], "preheader", False)
    if "template_id" in values:
        campaign.template = _template(session, values["template_id"]) or \
            default_content_template(session, len(campaign.campaign_events) > 1)
    if "event_ids" in values:
        _set_events(campaign, _events(session, values["event_ids"]))
    if "list_ids" in values:
        campaign.lists = _lists(session, values["list_ids"])
    if "segment_ids" in values:
        campaign.segments = segments.segments_by_id(session, values["segment_ids"])
    if "list_ids" in values or "segment_ids" in values:
        recipients.recount_later(session, campaign.id)
    if "archived" in values:
        campaign.archived = bool(values["archived"])
    session.flush()
    if content_keys:
        compile_for(session, campaign)
    return campaign


def schedule(session: Session, campaign_id: int, when: datetime | str) -> Campaign:
    """Send at ``when`` (aware, ISO 8601, or naive Europe/Warsaw time); beat's tick starts it.
    Raises NotFound, Conflict, InvalidInput (past time, no lists)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    states.check(campaign, "schedule")
    at = parse_when(when, "scheduled_at", required=True)
    if at is None or at <= utcnow():
        raise InvalidInput("Choose a time in the future.", "scheduled_at")
    if not campaign.lists and not campaign.segments:
        raise InvalidInput("Choose at least one list.", "list_ids")
    states.require(session, campaign, "schedule", scheduled_at=at)
    return campaign


def unschedule(session: Session, campaign_id: int) -> Campaign:
    """Back to draft; raises NotFound, Conflict unless scheduled."""
    campaign = get_or_404(session, Campaign, campaign_id)
    states.require(session, campaign, "unschedule", scheduled_at=None)
    return campaign


def test_addresses(addresses) -> list[str]:
    """Validated test addresses from a list or a comma/space separated string; raises InvalidInput."""
    if isinstance(addresses, str):
        addresses = addresses.replace(";", ",").replace("\n", ",").split(",")
    if not isinstance(addresses, (list, tuple)):
        raise InvalidInput("Give one or more email addresses.", "addresses")
    cleaned = []
    for raw in addresses:
        if not isinstance(raw, str):
            raise InvalidInput("Give one or more email addresses.", "addresses")
        if raw.strip():
            try:
                cleaned.append(normalize_email(raw))
            except InvalidInput:
                raise InvalidInput("One of the test addresses is not valid.", "addresses") from None
    cleaned = list(dict.fromkeys(cleaned))
    if not cleaned:
        raise InvalidInput("Give one or more email addresses.", "addresses")
    if len(cleaned) > MAX_TEST_ADDRESSES:
        raise InvalidInput("Send a test to at most 10 addresses.", "addresses")
    return cleaned


def request_test(session: Session, campaign_id: int, addresses) -> None:
    """Validate, then queue "mailer.send_test" (sent after the caller commits).
    Raises NotFound, InvalidInput (addresses, a broken template)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    cleaned = test_addresses(addresses)
    compile_for(session, campaign)
    enqueue(session, "mailer.send_test", campaign.id, cleaned)


def send_test(session: Session, campaign_id: int, addresses) -> None:
    """Task body: send the campaign now to ``addresses``, subject marked [TEST], as a sample
    recipient. Raises NotFound, InvalidInput; OSError when the mail server cannot be reached."""
    campaign = get_or_404(session, Campaign, campaign_id)
    cleaned = test_addresses(addresses)
    compiled = campaign_mail.compiled(session, campaign)
    compiled = dataclasses.replace(compiled, subject=f"[TEST] {compiled.subject}")
    mail = campaign_mail.CampaignMail(campaign, compiled, current_app.config)
    # A test copy's links act on nobody: the unsubscribe link names no subscriber (0), and
    # "view in browser" opens the campaign's staff page (a draft is not shown to anyone else).
    links_ = {"unsubscribe_url": links.unsubscribe_url(0, campaign.id),
              "view_url": links.absolute(f"/admin/campaigns/{campaign.id}"),
              "manage_url": links.absolute("/manage")}
    transport = from_config(current_app.config)
    try:
        results = transport.send([mail.test_message(address, {"name": "", "email": address, **links_})
                                  for address in cleaned])
    except ConnectionFailed as exc:
        raise OSError(f"test mail not sent: {exc}") from exc
    finally:
        transport.close()
    failed = [r for r in results if not r.ok and r.temporary]
    if failed:
        raise OSError(f"test mail not accepted: {failed[0].code} {failed[0].error}")


# What the links of a staff preview point at: nothing that acts on anyone (STANDARDS 39).
PREVIEW_LINKS = {"unsubscribe_url": "#unsubscribe-preview", "view_url": "#view-in-browser-preview",
                 "manage_url": "#manage-preview"}


def render_as(session: Session, campaign: Campaign, subscriber_id: int | None = None, *,
              public: bool = False, live_links: bool = True) -> Rendered:
    """The campaign as one recipient sees it (None or 0: a sample recipient; ``public``: no
    name or address at all, for the archive). What a launched campaign sent, not what its
    template and events say now. ``live_links``: the recipient's own signed unsubscribe and
    view links (their copy, opened from their mail); otherwise inert ones (a staff preview).
    Raises InvalidInput (a draft's broken template)."""
    compiled = campaign_mail.compiled(session, campaign)
    subscriber = session.get(Subscriber, subscriber_id) if subscriber_id else None
    if public:
        return compiled.personalize(name="", email="", unsubscribe_url=links.absolute("/"),
                                    view_url=links.absolute(f"/archive/{campaign.id}"),
                                    manage_url=links.absolute("/manage"))
    events = None
    if subscriber is not None:  # their copy (a preview too): the events of their interests
        shown = interests.EventFilter.for_events(session, [item.event_id for item in campaign.campaign_events])
        events = shown.for_batch(session, [subscriber.id]).get(subscriber.id)
    if subscriber is not None and live_links:
        urls = {"unsubscribe_url": links.unsubscribe_url(subscriber.id, campaign.id),
                "view_url": links.view_url(campaign.id, subscriber.id),
                "manage_url": links.manage_url(subscriber.id)}
    else:
        urls = PREVIEW_LINKS
    return compiled.personalize(events, name=subscriber.name if subscriber else SAMPLE_NAME,
                                email=subscriber.email if subscriber else SAMPLE_EMAIL, **urls)


def archived(session: Session) -> list[Campaign]:
    """Sent campaigns opted into the public archive, the newest first."""
    return list(session.scalars(
        select(Campaign).where(Campaign.archived.is_(True), Campaign.status == CampaignStatus.SENT)
        .order_by(Campaign.finished_at.desc(), Campaign.id.desc())
    ))


def get_archived(session: Session, campaign_id: int) -> Campaign:
    """Raises NotFound unless the campaign is sent and archived."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or not campaign.archived or campaign.status != CampaignStatus.SENT:
        raise NotFound("This campaign does not exist.")
    return campaign


def view_copy(session: Session, token: str) -> Rendered:
    """A recipient's copy from a /m/<token> link: what was sent to them, from the content
    frozen at launch. Links are signed only for real recipients when a campaign is sent, so
    a draft (nothing frozen) or the sample recipient (0) has no copy to show: NotFound, as
    the page must neither show a draft to anyone holding a link nor later edits. Raises
    BadToken, NotFound."""
    payload = tokens.verify(tokens.VIEW, token)
    if not (isinstance(payload, list) and len(payload) == 2
            and all(isinstance(part, int) and not isinstance(part, bool) for part in payload)):
        raise BadToken("This link is not valid.")
    campaign_id, subscriber_id = payload
    campaign = get_or_404(session, Campaign, campaign_id)
    if subscriber_id <= 0 or campaign_mail.frozen(session, campaign.id) is None:
        raise NotFound("This message is not available.")
    if session.get(Subscriber, subscriber_id) is None:  # erased since
        return render_as(session, campaign, public=True)
    return render_as(session, campaign, subscriber_id)


def compose_options(session: Session) -> dict:
    """What the compose form offers: events (upcoming first), lists, content templates."""
    return {"events": all_events(session),
            "lists": list(session.scalars(select(MailingList).order_by(MailingList.name))),
            "segments": segments.all_segments(session),
            "templates": content_templates(session)}


def preview(session: Session, campaign_id: int, recipient: str | None = None, **options) -> Rendered:
    """The campaign rendered as the subscriber with this id or address (empty: a sample
    recipient), for staff: with that person's name and address, never their working links
    (a preview is no way to unsubscribe anyone). ``options`` go to ``render_as``.
    Raises NotFound, InvalidInput (unknown subscriber, broken template)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    recipient = (recipient or "").strip()
    subscriber_id = None
    if recipient:
        if recipient.isascii() and recipient.isdigit():
            number = int(recipient[:12])
            subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.id == number)) \
                if number <= MAX_ID else None
        elif len(recipient) <= 320:
            subscriber_id = session.scalar(select(Subscriber.id)
                                           .where(Subscriber.email == recipient.lower()))
        if subscriber_id is None:
            raise InvalidInput("No subscriber has this address.", "recipient")
    return render_as(session, campaign, subscriber_id, **{**options, "live_links": False})

"""Campaigns: compose from events and a template, edit, schedule, preview and test.

Sending itself (launch, pause, resume, cancel, progress) is mailer.sending's.
"""

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import campaign_mail, email_templates, interests, languages, links, recipients, segments, tokens
from . import campaign_states as states
from .email_templates import SAMPLE_EMAIL, SAMPLE_NAME, compile_versions, content_templates, default_content_template
from .errors import BadToken, Conflict, FieldErrors, InvalidInput, NotFound
from .events import by_date, events_to_choose, parse_when
from .events import when as event_when
from .jobs import enqueue
from .lists import offered_lists
from .lookups import MAX_ID, get_or_404, parse_id
from .mail.message import check_header_value
from .mail.render import NOBODYS_UNSUBSCRIBE, Rendered, public_copy
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
from .subscribers import address_key, normalize_email

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
    return by_date(found[i] for i in ids)


def _lists(session: Session, list_ids, already=()) -> list[MailingList]:
    """The chosen lists; an archived one only when ``already`` (the campaign's lists) has it.
    Raises InvalidInput."""
    ids = _ids(list_ids, "list_ids")
    found = list(session.scalars(select(MailingList).where(MailingList.id.in_(ids)))) if ids else []
    if len(found) != len(ids):
        raise InvalidInput("One of the chosen lists does not exist.", "list_ids")
    kept = {item.id for item in already}
    archived = next((item for item in found if item.archived_at is not None and item.id not in kept), None)
    if archived is not None:
        raise InvalidInput("The list \u201c%(name)s\u201d is archived.", "list_ids", name=archived.name)
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
        return languages.event_text(events[0], "title", locale)[:200]
    return _UPCOMING.get(locale, _UPCOMING["pl"])


def suggested_preheader(events: list[Event], locale: str) -> str:
    if len(events) == 1:
        event = events[0]
        place = languages.event_text(event, "place", locale)
        text = event_when(event, locale) + (f" · {place}" if place else "")
    else:
        text = " · ".join(languages.event_text(event, "title", locale) for event in events)
    return text if len(text) <= 200 else text[:199] + "…"


def _suggested_english(events: list[Event], locale: str) -> tuple[str | None, str | None]:
    """An English subject and preheader for a campaign in another language whose events all
    have English titles (None, None otherwise: English readers get its own language)."""
    if locale == languages.TRANSLATED or not all(event.title_en for event in events):
        return None, None
    english = languages.TRANSLATED
    return _line(suggested_subject(events, english), "subject_en", False), \
        _line(suggested_preheader(events, english), "preheader_en", False)


def _set_events(campaign: Campaign, events: list[Event]) -> None:
    campaign.campaign_events = [CampaignEvent(event=event, position=i) for i, event in enumerate(events)]


def create_campaign(session: Session, *, event_ids: Sequence[int | str], list_ids: Sequence[int | str],
                    template_id: int | str | None = None, subject: str | None = None,
                    preheader: str | None = None, locale: str = "pl",
                    subject_en: str | None = None, preheader_en: str | None = None,
                    created_by_id: int | None = None, segment_ids: Sequence[int | str] | None = None) -> Campaign:
    """A draft campaign; subject and preheader are prefilled from the events when None, the
    template defaults to the announcement (one event) or the digest (several). ``subject_en``
    (and ``preheader_en``) make an English version; prefilled too, with the subject, when
    every event has an English title. Raises InvalidInput (carrying every mistake found)."""
    subject_given = subject
    problems = FieldErrors()  # every mistake at once
    locale = problems.check(_locale, locale)
    events = problems.check(_events, session, event_ids)
    lists = problems.check(_lists, session, list_ids)
    template = problems.check(_template, session, template_id)
    problems.raise_if_any()
    template = template or default_content_template(session, len(events) > 1)
    subject = _line(suggested_subject(events, locale) if subject is None else subject, "subject", True)
    preheader = _line(suggested_preheader(events, locale) if preheader is None else preheader,
                      "preheader", False)
    if subject_given is None and subject_en is None:
        subject_en, preheader_en = _suggested_english(events, locale)
    campaign = Campaign(subject=subject, preheader=preheader, template=template, locale=locale,
                        subject_en=_line(subject_en, "subject_en", False) or None,
                        preheader_en=_line(preheader_en, "preheader_en", False) or None,
                        lists=lists, created_by_id=created_by_id, status=CampaignStatus.DRAFT,
                        segments=segments.segments_by_id(session, list(segment_ids or [])))
    _set_events(campaign, events)
    session.add(campaign)
    session.flush()
    compile_versions(session, campaign)  # a broken template is refused now, not at send time
    recipients.recount_later(session, campaign.id)
    return campaign


def duplicate_campaign(session: Session, campaign_id: int, *, prefix: str = "Kopia: ",
                       created_by_id: int | None = None) -> Campaign:
    """A new draft with the same subject (after ``prefix``), preheader, template, language,
    events, lists and segments; never its deliveries, counts, frozen content, schedule,
    test report or archive choice. Archived lists are left out (new campaigns cannot use
    them). Raises NotFound."""
    original = get_or_404(session, Campaign, campaign_id)
    copy = Campaign(subject=(prefix + original.subject)[:200],
                    name=(prefix + (original.name or original.subject))[:200],
                    preheader=original.preheader, template_id=original.template_id, locale=original.locale,
                    subject_en=original.subject_en, preheader_en=original.preheader_en,
                    lists=[item for item in original.lists if item.archived_at is None],
                    segments=list(original.segments), created_by_id=created_by_id, status=CampaignStatus.DRAFT)
    copy.campaign_events = [CampaignEvent(event_id=link.event_id, position=link.position)
                            for link in original.campaign_events]
    session.add(copy)
    session.flush()
    recipients.recount_later(session, copy.id)
    return copy


def update_campaign(session: Session, campaign_id: int, values: dict) -> Campaign:
    """Change any of subject, preheader, subject_en, preheader_en (empty: no English
    version), template_id, event_ids, list_ids, segment_ids, locale, archived.
    Raises NotFound, Conflict (unless draft or scheduled; ``archived`` alone may change at any
    time), InvalidInput."""
    campaign = get_or_404(session, Campaign, campaign_id)
    if not isinstance(values, dict):
        raise InvalidInput("Send the campaign's fields.")
    content_keys = set(values) - {"archived"}
    if content_keys and campaign.status not in EDITABLE:
        raise Conflict("This campaign can no longer be changed.")
    problems = FieldErrors()  # every field checked before anything changes
    checks = {"locale": (_locale, values.get("locale")),
              "subject": (_line, values.get("subject"), "subject", True),
              "preheader": (_line, values.get("preheader"), "preheader", False),
              "template_id": (_template, session, values.get("template_id")),
              "event_ids": (_events, session, values.get("event_ids")),
              "list_ids": (_lists, session, values.get("list_ids"), campaign.lists),
              "segment_ids": (segments.segments_by_id, session, values.get("segment_ids")),
              "subject_en": (_line, values.get("subject_en"), "subject_en", False),
              "preheader_en": (_line, values.get("preheader_en"), "preheader_en", False)}
    new = {key: problems.check(*check) for key, check in checks.items() if key in values}
    problems.raise_if_any()
    if "locale" in new:
        campaign.locale = new["locale"]
    if "subject" in new:
        campaign.subject = new["subject"]
    if "preheader" in new:
        campaign.preheader = new["preheader"]
    for field in ("subject_en", "preheader_en"):
        if field in new:
            setattr(campaign, field, new[field] or None)
    if "template_id" in new:
        campaign.template = new["template_id"] or \
            default_content_template(session, len(campaign.campaign_events) > 1)
    if "event_ids" in new:
        _set_events(campaign, new["event_ids"])
    if "list_ids" in new:
        campaign.lists = new["list_ids"]
    if "segment_ids" in new:
        campaign.segments = new["segment_ids"]
    if "list_ids" in values or "segment_ids" in values:
        recipients.recount_later(session, campaign.id)
    if "archived" in values:
        campaign.archived = bool(values["archived"])
    session.flush()
    if content_keys:
        compile_versions(session, campaign)
    return campaign


def schedule(session: Session, campaign_id: int, when: datetime | str) -> Campaign:
    """Send at ``when`` (aware, ISO 8601, or naive Europe/Warsaw time); beat's tick starts it.
    Raises NotFound, Conflict, InvalidInput (past time, no lists), NoRecipients (nobody to
    send to now; beat's tick asks again when it is due)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    states.check(campaign, "schedule")
    at = parse_when(when, "scheduled_at", required=True)
    if at is None or at <= utcnow():
        raise InvalidInput("Choose a time in the future.", "scheduled_at")
    recipients.require_audience(session, campaign)
    states.require(session, campaign, "schedule", scheduled_at=at, status_code="", status_reason="")
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
                raise InvalidInput("\u201c%(address)s\u201d is not a valid email address.", "addresses",
                                   address=raw.strip()[:100]) from None
    cleaned = list(dict.fromkeys(cleaned))
    if not cleaned:
        raise InvalidInput("Give one or more email addresses.", "addresses")
    if len(cleaned) > MAX_TEST_ADDRESSES:
        raise InvalidInput("Send a test to at most 10 addresses.", "addresses")
    return cleaned


def request_test(session: Session, campaign_id: int, addresses) -> None:
    """Validate, then queue "mailer.send_test" (sent after the caller commits); the campaign's
    ``test_report`` says it is on its way. Raises NotFound, InvalidInput (an address, naming
    it; a broken template)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    cleaned = test_addresses(addresses)
    compile_versions(session, campaign)
    campaign.test_report = {"state": "queued", "addresses": cleaned, "at": utcnow().isoformat()}
    enqueue(session, "mailer.send_test", campaign.id, cleaned)


def _report_test(session: Session, campaign: Campaign, state: str, addresses: list[str], *,
                 results=(), error: str = "") -> None:
    """Keep what the mail server said of a test send on the campaign (its page shows it);
    commits, so the answer stays when the task then fails for a retry."""
    campaign.test_report = {
        "state": state, "addresses": addresses, "at": utcnow().isoformat(), "error": error[:300],
        "results": [{"address": address, "ok": r.ok, "code": r.code, "error": (r.error or "")[:300],
                     "temporary": r.temporary} for address, r in results]}
    session.commit()


def send_test(session: Session, campaign_id: int, addresses) -> None:
    """Task body: send the campaign now to ``addresses``, one copy per language version,
    subject marked [TEST], as a sample recipient, and record each address's answer in
    ``Campaign.test_report`` (commits). Raises NotFound, InvalidInput; OSError when the mail
    server cannot be reached or answers 4xx (the task tries again)."""
    campaign = get_or_404(session, Campaign, campaign_id)
    cleaned = test_addresses(addresses)
    versions = {locale: dataclasses.replace(compiled, subject=f"[TEST] {compiled.subject}")
                for locale, compiled in campaign_mail.compiled_versions(session, campaign).items()}
    mail = campaign_mail.CampaignMail(campaign, versions, current_app.config)
    # A test copy's links act on nobody: the unsubscribe link names no subscriber (0), and
    # "view in browser" opens the campaign's staff page (a draft is not shown to anyone else).
    links_ = {"unsubscribe_url": links.unsubscribe_url(0, campaign.id),
              "view_url": links.absolute(f"/admin/campaigns/{campaign.id}"),
              "manage_url": links.absolute("/manage")}
    transport = from_config(current_app.config)
    try:
        results = transport.send([mail.test_message(address, {"name": "", "email": address, **links_}, locale)
                                  for address in cleaned for locale in versions])
    except ConnectionFailed as exc:
        _report_test(session, campaign, "retrying", cleaned, error=str(exc))
        raise OSError(f"test mail not sent: {exc}") from exc
    finally:
        transport.close()
    failed = [r for r in results if not r.ok and r.temporary]
    # One answer per address: the first refusal of its copies (one per language), else the first.
    per_address = [results[i:i + len(versions)] for i in range(0, len(results), len(versions))]
    answers = [next((r for r in copies if not r.ok), copies[0]) for copies in per_address]
    _report_test(session, campaign, "retrying" if failed else "done", cleaned,
                 results=list(zip(cleaned, answers, strict=True)))
    if failed:
        raise OSError(f"test mail not accepted: {failed[0].code} {failed[0].error}")


# What the links of a staff preview point at: nothing that acts on anyone (STANDARDS 39).
PREVIEW_LINKS = {"unsubscribe_url": "#unsubscribe-preview", "view_url": "#view-in-browser-preview",
                 "manage_url": "#manage-preview"}


def render_as(session: Session, campaign: Campaign, subscriber_id: int | None = None, *,
              public: bool = False, live_links: bool = True, locale: str | None = None) -> Rendered:
    """The campaign as one recipient sees it (None or 0: a sample recipient; ``public``: no
    name or address at all, for the archive). What a launched campaign sent, not what its
    template and events say now. ``live_links``: the recipient's own signed unsubscribe and
    view links (their copy, opened from their mail); otherwise inert ones (a staff preview).
    ``locale``: the language version shown (None: the recipient's language, else the
    campaign's). Raises InvalidInput (a draft's broken template)."""
    subscriber = session.get(Subscriber, subscriber_id) if subscriber_id else None
    compiled = campaign_mail.compiled(session, campaign, locale or (subscriber.locale if subscriber else None))
    if public:  # nobody's copy: no name, address, footer or unsubscribe link
        rendered = compiled.personalize(name="", email="", unsubscribe_url=NOBODYS_UNSUBSCRIBE,
                                        view_url=links.absolute(f"/archive/{campaign.id}"),
                                        manage_url=links.absolute("/manage"))
        return dataclasses.replace(rendered, html=public_copy(rendered.html))
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


def archive_has_entries(session: Session) -> bool:
    """Whether the public archive shows anything (the home page links it only then)."""
    return session.scalar(select(Campaign.id).where(Campaign.archived.is_(True),
                                                    Campaign.status == CampaignStatus.SENT).limit(1)) is not None


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


def untranslated(session: Session, campaign: Campaign, locale: str) -> dict:
    """What ``locale`` readers of the campaign get in its own language (email_templates.untranslated)."""
    return email_templates.untranslated(session, campaign, locale)


def compose_options(session: Session, campaign: Campaign | None = None) -> dict:
    """What the compose form offers: events (upcoming first), lists (archived ones only when
    ``campaign`` has them already), content templates."""
    return {"events": events_to_choose(session),
            "lists": offered_lists(session, [item.id for item in campaign.lists] if campaign else ()),
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
                                           .where(Subscriber.email == address_key(recipient)))
        if subscriber_id is None:
            raise InvalidInput("No subscriber has this address.", "recipient")
    return render_as(session, campaign, subscriber_id, **{**options, "live_links": False})

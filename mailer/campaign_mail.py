"""What a campaign sends: its content frozen at launch, and each recipient's copy of it.

``freeze`` renders the campaign once with its template and events (the sandboxed Jinja2 of
``email_templates``) and stores the subject and both parts with the recipient markers left
in. From then on every copy, the archive and the view-in-browser page come from that
frozen content: editing the template or an event later changes none of them, and a
template that breaks cannot fail a sending worker. A campaign is frozen once per language
version it has (``languages.versions``: its own language, English when it has an English
subject). ``CampaignMail`` turns the frozen content into one message skeleton per language
once per process; per recipient it picks the skeleton of the recipient's language (that of
the campaign when it has no version in it: a dict look-up), signs three short links, leaves out
the digest's events outside the recipient's interests (``interests.EventFilter``) and fills
in the markers.
"""

from collections import OrderedDict

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import deliveries, interests, languages, tokens
from .email_templates import compile_for, compile_versions
from .mail import dkim
from .mail.headers import ListSettings, list_headers
from .mail.message import Outgoing, Skeleton, address, make_msgid
from .mail.render import CompiledCampaign
from .models import Campaign, CampaignContent
from .verp import DELIVERY, Verp

_cache: OrderedDict = OrderedDict()  # (campaign id, launch time) -> CampaignMail, per process


def freeze(session: Session, campaign: Campaign) -> CampaignContent:
    """Render every language version of ``campaign`` and store what it will send (replacing
    an earlier freeze); returns the content of its own language. Raises InvalidInput when
    its template is broken."""
    rendered = compile_versions(session, campaign)
    stored = {content.locale: content for content in session.scalars(
        select(CampaignContent).where(CampaignContent.campaign_id == campaign.id))}
    for locale, old in stored.items():
        if locale not in rendered:  # a version dropped since an earlier freeze
            session.delete(old)
    for locale, compiled_ in rendered.items():
        content = stored.get(locale)
        if content is None:
            content = CampaignContent(campaign_id=campaign.id, locale=locale)
            session.add(content)
            stored[locale] = content
        content.subject, content.html, content.text = (compiled_.subject, compiled_.html_source,
                                                       compiled_.text_source)
    session.flush()
    return stored[campaign.locale]


def frozen(session: Session, campaign_id: int) -> CampaignContent | None:
    return session.scalars(select(CampaignContent).where(
        CampaignContent.campaign_id == campaign_id).limit(1)).first()


def compiled_versions(session: Session, campaign: Campaign) -> dict[str, CompiledCampaign]:
    """Every language version as it is sent: frozen once launched, else rendered now."""
    stored = session.scalars(select(CampaignContent).where(
        CampaignContent.campaign_id == campaign.id)).all()
    if not stored:
        return compile_versions(session, campaign)
    return {content.locale: CompiledCampaign(content.subject, content.html, content.text)
            for content in stored}


def compiled(session: Session, campaign: Campaign, locale: str | None = None) -> CompiledCampaign:
    """The campaign as it is sent to ``locale`` readers (None: in its own language): its
    frozen content once launched, else rendered now (a draft's preview). Raises
    InvalidInput for a draft whose template is broken."""
    stored = {content.locale: content for content in session.scalars(
        select(CampaignContent).where(CampaignContent.campaign_id == campaign.id))}
    if not stored:
        return compile_for(session, campaign, locale)
    content = stored.get(languages.pick(stored, locale, campaign.locale)) or next(iter(stored.values()))
    return CompiledCampaign(content.subject, content.html, content.text)


class CampaignMail:
    """One campaign's message skeleton; ``message`` makes one recipient's copy."""

    def __init__(self, campaign: Campaign, compiled: CompiledCampaign | dict[str, CompiledCampaign],
                 config, events: interests.EventFilter | None = None):
        """``compiled``: the campaign's versions by language (or its one version); ``events``:
        which events each recipient's copy shows (their interests; None: all)."""
        self.campaign_id = campaign.id
        versions = compiled if isinstance(compiled, dict) else {campaign.locale: compiled}
        first = campaign.lists[0] if campaign.lists else None
        headers, suffix = list_headers(ListSettings(
            label=first.name if first else config["ORGANISATION_NAME"],
            slug=first.slug if first else "newsletter",
            namespace=config.get("LIST_ID_NAMESPACE") or config["MAIL_DOMAIN"],
            mailto=config.get("UNSUBSCRIBE_MAILTO") or "",
            feedback_sender=config.get("FEEDBACK_ID_SENDER") or "",
            feedback_kind=f"campaign{campaign.id}"))
        sender, signer = address(config["MAIL_FROM_NAME"], config["MAIL_FROM"]), dkim.from_config(config)
        self.skeletons = {locale: Skeleton(
            sender=sender, subject=version.subject, text=version.text, html=version.html,
            headers=headers, language=locale, unsubscribe_suffix=suffix, signer=signer)
            for locale, version in versions.items()}
        # Readers of a language the campaign has no version in get its own language's.
        self.skeleton = self.skeletons.get(campaign.locale) or next(iter(self.skeletons.values()))
        self.domain = config["MAIL_DOMAIN"]
        self.message_id_suffix = deliveries.message_id_suffix(campaign.started_at, self.domain)
        self.base_url = config["BASE_URL"]
        self.verp = Verp(config)
        # mailer.links' tokens, signed fast (this runs a million times)
        self._unsubscribe = tokens.PairSigner(tokens.UNSUBSCRIBE)
        self._view = tokens.PairSigner(tokens.VIEW)
        self._manage = tokens.PairSigner(tokens.MANAGE)
        # Which events each recipient's copy shows (their interests); a test copy shows all.
        self.events = events if events is not None else interests.EventFilter({})

    def message(self, row: deliveries.Row, date: str | None = None,
                events: frozenset[int] | None = None) -> Outgoing:
        """The copy for one delivery, showing ``events`` of a digest (None: all; see
        ``EventFilter.for_batch``). Raises InvalidInput when the recipient's name or address
        cannot go in a header."""
        sid, cid = row.subscriber_id, self.campaign_id
        unsubscribe = f"{self.base_url}/u/{self._unsubscribe(sid, cid)}"
        values = {"name": row.name, "email": row.email, "unsubscribe_url": unsubscribe,
                  "view_url": f"{self.base_url}/m/{self._view(cid, sid)}",
                  "manage_url": f"{self.base_url}/p/{self._manage(sid, tokens.day_number())}"}
        return self.skeletons.get(row.locale, self.skeleton).render(
            to_name=row.name, to_email=row.email, values=values, date=date,
            return_path=self.verp.return_path(DELIVERY, row.delivery_id),
            message_id=deliveries.message_id(cid, row.delivery_id, self.message_id_suffix),
            unsubscribe_url=unsubscribe, events=events)

    def test_message(self, email: str, values: dict[str, str], locale: str | None = None) -> Outgoing:
        """A test copy to ``email`` in ``locale`` (None: the campaign's language) with the
        sample recipient's ``values`` (its links act on nobody); bounces of it go to the
        plain bounce address."""
        return self.skeletons.get(locale or "", self.skeleton).render(
            to_name="", to_email=email, values=values, return_path=self.verp.address,
            message_id=make_msgid(self.domain), unsubscribe_url=values.get("unsubscribe_url", ""))


def mail_for(session: Session, campaign: Campaign) -> CampaignMail:
    """The campaign's CampaignMail, made once per process and launch."""
    key = (campaign.id, campaign.started_at)
    if key not in _cache:
        shown = interests.EventFilter.for_events(session, [item.event_id for item in campaign.campaign_events])
        _cache[key] = CampaignMail(campaign, compiled_versions(session, campaign), current_app.config, shown)
        while len(_cache) > 8:
            _cache.popitem(last=False)
    return _cache[key]

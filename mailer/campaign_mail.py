"""What a campaign sends: its content frozen at launch, and each recipient's copy of it.

``freeze`` renders the campaign once with its template and events (the sandboxed Jinja2 of
``email_templates``) and stores the subject and both parts with the recipient markers left
in. From then on every copy, the archive and the view-in-browser page come from that
frozen content: editing the template or an event later changes none of them, and a
template that breaks cannot fail a sending worker. ``CampaignMail`` turns the frozen
content into a message skeleton once per process; per recipient it only signs three short
links and fills in the markers.
"""

from collections import OrderedDict

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import deliveries, interests, tokens
from .email_templates import compile_for
from .mail import dkim
from .mail.headers import ListSettings, list_headers
from .mail.message import Outgoing, Skeleton, address, make_msgid
from .mail.render import CompiledCampaign
from .models import Campaign, CampaignContent
from .verp import DELIVERY, Verp

_cache: OrderedDict = OrderedDict()  # (campaign id, launch time) -> CampaignMail, per process


def freeze(session: Session, campaign: Campaign) -> CampaignContent:
    """Render ``campaign`` and store what it will send (replacing an earlier freeze).
    Raises InvalidInput when its template is broken."""
    compiled = compile_for(session, campaign)
    content = session.get(CampaignContent, (campaign.id, campaign.locale))
    if content is None:
        content = CampaignContent(campaign_id=campaign.id, locale=campaign.locale)
        session.add(content)
    content.subject, content.html, content.text = (compiled.subject, compiled.html_source,
                                                   compiled.text_source)
    session.flush()
    return content


def frozen(session: Session, campaign_id: int) -> CampaignContent | None:
    return session.scalars(select(CampaignContent).where(
        CampaignContent.campaign_id == campaign_id).limit(1)).first()


def compiled(session: Session, campaign: Campaign) -> CompiledCampaign:
    """The campaign as it is sent: its frozen content once launched, else rendered now
    (a draft's preview). Raises InvalidInput for a draft whose template is broken."""
    content = frozen(session, campaign.id)
    if content is None:
        return compile_for(session, campaign)
    return CompiledCampaign(content.subject, content.html, content.text)


class CampaignMail:
    """One campaign's message skeleton; ``message`` makes one recipient's copy."""

    def __init__(self, campaign: Campaign, compiled: CompiledCampaign, config,
                 events: interests.EventFilter | None = None):
        self.campaign_id = campaign.id
        first = campaign.lists[0] if campaign.lists else None
        headers, suffix = list_headers(ListSettings(
            label=first.name if first else config["ORGANISATION_NAME"],
            slug=first.slug if first else "newsletter",
            namespace=config.get("LIST_ID_NAMESPACE") or config["MAIL_DOMAIN"],
            mailto=config.get("UNSUBSCRIBE_MAILTO") or "",
            feedback_sender=config.get("FEEDBACK_ID_SENDER") or "",
            feedback_kind=f"campaign{campaign.id}"))
        self.skeleton = Skeleton(
            sender=address(config["MAIL_FROM_NAME"], config["MAIL_FROM"]),
            subject=compiled.subject, text=compiled.text, html=compiled.html, headers=headers,
            language=campaign.locale, unsubscribe_suffix=suffix, signer=dkim.from_config(config))
        stamp = int(campaign.started_at.timestamp()) if campaign.started_at else 0
        self.domain = config["MAIL_DOMAIN"]
        self.message_id_suffix = f".{stamp}@{self.domain}"
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
        return self.skeleton.render(
            to_name=row.name, to_email=row.email, values=values, date=date,
            return_path=self.verp.return_path(DELIVERY, row.delivery_id),
            message_id=deliveries.message_id(cid, row.delivery_id, self.message_id_suffix),
            unsubscribe_url=unsubscribe, events=events)

    def test_message(self, email: str, values: dict[str, str]) -> Outgoing:
        """A test copy to ``email`` with the sample recipient's ``values`` (its links act
        on nobody); bounces of it go to the plain bounce address."""
        return self.skeleton.render(
            to_name="", to_email=email, values=values, return_path=self.verp.address,
            message_id=make_msgid(self.domain), unsubscribe_url=values.get("unsubscribe_url", ""))


def mail_for(session: Session, campaign: Campaign) -> CampaignMail:
    """The campaign's CampaignMail, made once per process and launch."""
    key = (campaign.id, campaign.started_at)
    if key not in _cache:
        shown = interests.EventFilter.for_events(session, [item.event_id for item in campaign.campaign_events])
        _cache[key] = CampaignMail(campaign, compiled(session, campaign), current_app.config, shown)
        while len(_cache) > 8:
            _cache.popitem(last=False)
    return _cache[key]

"""One campaign's message for one recipient: rendered parts, list headers, bytes."""

from dataclasses import dataclass

from flask import current_app

from .. import links
from ..models import Campaign
from .headers import list_headers
from .message import Outgoing, address, build
from .render import CompiledCampaign


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int | None  # None for a test send to an address that is not a subscriber
    email: str
    name: str = ""


class CampaignMailer:
    """Built once per campaign (or batch); ``message_for`` is called per recipient."""

    def __init__(self, campaign: Campaign, compiled: CompiledCampaign):
        config = current_app.config
        self.config = config
        self.campaign_id = campaign.id
        self.compiled = compiled
        self.sender = address(config["MAIL_FROM_NAME"], config["MAIL_FROM"])
        first_list = campaign.lists[0] if campaign.lists else None
        self.list_label = first_list.name if first_list else config["ORGANISATION_NAME"]
        self.list_slug = first_list.slug if first_list else "newsletter"

    def message_for(self, recipient: Recipient) -> Outgoing:
        """Raises InvalidInput when the recipient's name or address cannot go in a header."""
        sid = recipient.subscriber_id or 0
        unsubscribe = links.unsubscribe_url(sid, self.campaign_id)
        rendered = self.compiled.personalize(
            name=recipient.name, email=recipient.email, unsubscribe_url=unsubscribe,
            view_url=links.view_url(self.campaign_id, sid),
        )
        return build(
            sender=self.sender, to=address(recipient.name, recipient.email),
            subject=rendered.subject, text=rendered.text, html=rendered.html,
            domain=self.config["MAIL_DOMAIN"],
            headers=list_headers(self.config, unsubscribe_url=unsubscribe, label=self.list_label,
                                 slug=self.list_slug, campaign_id=self.campaign_id),
        )

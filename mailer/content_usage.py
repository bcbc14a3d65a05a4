"""Which campaigns in progress use an event or a template, so an editor changing one is told
what the change does to them: a campaign that is sending (or paused) sends what was frozen
at its launch (``campaign_mail.freeze``) and is not changed by the edit; a scheduled one is
frozen when it starts, so it will send the edited version."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .email_templates import default_content_template
from .errors import InvalidInput
from .models import Campaign, CampaignEvent, CampaignStatus

IN_PROGRESS = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)


@dataclass(frozen=True)
class Usage:
    frozen: list[Campaign]  # sending or paused: the edit does not change what they send
    scheduled: list[Campaign]  # not started: they will send the edited version

    def __bool__(self) -> bool:
        return bool(self.frozen or self.scheduled)


def _usage(campaigns) -> Usage:
    campaigns = list(campaigns)
    return Usage(frozen=[c for c in campaigns if c.status != CampaignStatus.SCHEDULED],
                 scheduled=[c for c in campaigns if c.status == CampaignStatus.SCHEDULED])


def of_event(session: Session, event_id: int) -> Usage:
    """Campaigns in progress announcing the event ``event_id``."""
    return _usage(session.scalars(
        select(Campaign).join(CampaignEvent).where(
            CampaignEvent.event_id == event_id, Campaign.status.in_(IN_PROGRESS))
        .order_by(Campaign.id)))


def of_template(session: Session, template_id: int) -> Usage:
    """Campaigns in progress rendered with the template ``template_id``: as their content
    template (chosen, or the built-in default they fall back on) or as its layout. There
    are a handful of campaigns in progress at most, so they are checked one by one."""
    used = []
    for campaign in session.scalars(
            select(Campaign).where(Campaign.status.in_(IN_PROGRESS)).order_by(Campaign.id)):
        try:
            template = campaign.template or default_content_template(
                session, len(campaign.campaign_events) > 1)
        except InvalidInput:
            continue
        if template_id in (template.id, template.layout_id):
            used.append(campaign)
    return _usage(used)

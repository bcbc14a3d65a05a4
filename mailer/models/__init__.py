"""The persistent nouns, one module per area."""

from .audience import ConsentRecord, MailingList, Subscriber, Subscription, SubscriptionStatus, Suppression
from .bounces import BounceEvent, BounceKind, WebhookNonce
from .campaigns import (
    Campaign,
    CampaignContent,
    CampaignEvent,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    SendBatch,
    campaign_lists,
)
from .content import Event, Template, TemplateKind
from .imports import ImportJob, ImportStatus
from .queue import Job, Notice, NoticeKind, NoticeStatus
from .segments import AudienceAction, AudienceSummary, Segment, SubscriberTag, campaign_segments
from .staff import ApiToken, Role, User
from .types import utcnow

__all__ = [
    "AudienceAction", "AudienceSummary", "Segment", "SubscriberTag", "campaign_segments",
    "ApiToken", "BounceEvent", "BounceKind", "Campaign", "CampaignContent", "CampaignEvent", "CampaignStatus",
    "ConsentRecord", "Delivery", "DeliveryStatus", "Event", "ImportJob", "ImportStatus", "Job", "MailingList",
    "Notice", "NoticeKind", "NoticeStatus", "Role", "SendBatch", "Subscriber", "Subscription",
    "SubscriptionStatus", "Suppression", "Template", "TemplateKind", "User", "WebhookNonce", "campaign_lists",
    "utcnow",
]

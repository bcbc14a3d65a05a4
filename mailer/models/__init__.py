"""The persistent nouns, one module per area."""

from .audience import ConsentRecord, ConsentText, MailingList, Subscriber, Subscription, SubscriptionStatus, Suppression
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
from .content import Category, Event, Template, TemplateKind, event_categories, subscriber_interests
from .imports import ImportJob, ImportStatus
from .queue import Job, Notice, NoticeKind, NoticeStatus
from .segments import AudienceAction, AudienceSummary, Segment, SubscriberTag, campaign_segments
from .staff import ApiToken, AuditEntry, RecoveryCode, Role, Scope, StaffSetting, User
from .types import utcnow

__all__ = [
    "ApiToken", "AudienceAction", "AudienceSummary", "AuditEntry", "BounceEvent", "BounceKind", "Campaign", "Category",
    "CampaignContent", "CampaignEvent", "CampaignStatus", "ConsentRecord", "ConsentText", "Delivery", "DeliveryStatus",
    "Event",
    "ImportJob", "ImportStatus", "Job", "MailingList", "Notice", "NoticeKind", "NoticeStatus", "RecoveryCode", "Role",
    "Scope", "Segment", "SendBatch", "StaffSetting", "Subscriber", "SubscriberTag", "Subscription",
    "SubscriptionStatus", "Suppression", "Template", "TemplateKind", "User", "WebhookNonce", "campaign_lists",
    "campaign_segments", "event_categories", "subscriber_interests", "utcnow",
]

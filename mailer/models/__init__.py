"""The persistent nouns, one module per area."""

from .audience import ConsentRecord, MailingList, Subscriber, Subscription, SubscriptionStatus, Suppression
from .bounces import BounceEvent, BounceKind, WebhookNonce
from .campaigns import Campaign, CampaignEvent, CampaignStatus, Delivery, DeliveryStatus, campaign_lists
from .content import Event, Template, TemplateKind
from .imports import ImportJob, ImportStatus
from .staff import ApiToken, Role, User
from .types import utcnow

__all__ = [
    "ApiToken", "BounceEvent", "BounceKind", "Campaign", "CampaignEvent", "CampaignStatus",
    "ConsentRecord", "Delivery", "DeliveryStatus", "Event", "ImportJob", "ImportStatus", "MailingList", "Role", "Subscriber", "Subscription",
    "SubscriptionStatus", "Suppression", "Template", "TemplateKind", "User", "WebhookNonce", "campaign_lists",
    "utcnow",
]

"""What came back: bounces and complaints kept against their delivery, and webhook nonces."""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model
from .campaigns import str_enum
from .types import UTCDateTime, utcnow


class BounceKind(enum.StrEnum):
    HARD = "hard"  # the address does not exist (5.1.x and the like): suppressed at once
    SOFT = "soft"  # mailbox full, gave up after retries (4.x.x): counted, suppressed after N
    BLOCK = "block"  # refused by policy or for its content (5.7.x): the address is fine
    COMPLAINT = "complaint"  # the recipient reported it as spam (ARF, provider)


class BounceEvent(Model):
    """One returned mail or provider report about one delivery (or notice) of one subscriber.

    ``report_key`` (unique) makes processing the same report twice a no-op; ``count_key``
    (unique, set only on the event that counted) makes a campaign count one bounce and one
    complaint per delivery however many reports name it. No foreign key to deliveries (they
    have none either, see ``Delivery``); the subscriber's events go with the subscriber."""

    __tablename__ = "bounce_events"
    __table_args__ = (
        Index("ix_bounce_events_subscriber_kind", "subscriber_id", "kind", "created_at"),
        Index("ix_bounce_events_campaign", "campaign_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[BounceKind] = mapped_column(str_enum(BounceKind))
    source: Mapped[str] = mapped_column(String(16))  # smtp, lmtp, imap, ses, postmark, sendgrid, mailgun
    matched_by: Mapped[str] = mapped_column(String(16))  # verp, message-id, recipient, provider
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="")  # enhanced status code, 5.1.1
    diagnostic: Mapped[str] = mapped_column(String(1000), default="")
    feedback_type: Mapped[str] = mapped_column(String(32), default="")  # complaints: abuse, fraud...
    report_key: Mapped[str] = mapped_column(String(64), unique=True)
    count_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    raw_size: Mapped[int] = mapped_column(Integer, default=0)
    raw_sha256: Mapped[str] = mapped_column(String(64), default="")
    raw_excerpt: Mapped[str] = mapped_column(Text, default="")  # the start of what came back
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookNonce(Model):
    """A signed webhook's one-time token, kept while its timestamp is fresh (replays refused)."""

    __tablename__ = "webhook_nonces"
    __table_args__ = (UniqueConstraint("provider", "nonce", name="uq_webhook_nonces_provider_nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

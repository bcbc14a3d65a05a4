"""Campaigns and their per-recipient delivery rows."""

import enum
from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, Column, Enum, ForeignKey, Index, Integer, String,
                        Table, Text, UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .audience import MailingList
from .content import Event, Template
from .types import UTCDateTime, utcnow


def str_enum(cls):
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    SKIPPED = "skipped"  # unsubscribed or suppressed after the snapshot, or cancelled


campaign_lists = Table(
    "campaign_lists",
    db.metadata,
    Column("campaign_id", ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("list_id", ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
)


class CampaignEvent(db.Model):
    __tablename__ = "campaign_events"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    event: Mapped[Event] = relationship()


class Campaign(db.Model):
    __tablename__ = "campaigns"
    # Ids are never reused (SQLite too): tokens and tasks carry them.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(200))
    preheader: Mapped[str] = mapped_column(String(200), default="")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id", ondelete="SET NULL"))
    locale: Mapped[str] = mapped_column(String(8), default="pl")
    status: Mapped[CampaignStatus] = mapped_column(str_enum(CampaignStatus), default=CampaignStatus.DRAFT)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)  # shown in the public archive
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Counters kept by the sending engine, so progress needs no scan of deliveries.
    total_count: Mapped[int] = mapped_column(Integer, default=0)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # Engine bookkeeping: when the audience snapshot was taken, rows skipped since, and the
    # last time a chunk was recorded (the beat tick re-enqueues batches of a stalled campaign).
    snapshot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Returned mail and complaints, one of each at most per delivery (mailer.bounces).
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    complaint_count: Mapped[int] = mapped_column(Integer, default=0)

    template: Mapped[Template | None] = relationship()
    lists: Mapped[list[MailingList]] = relationship(secondary=campaign_lists)
    campaign_events: Mapped[list[CampaignEvent]] = relationship(
        cascade="all, delete-orphan", order_by=CampaignEvent.position
    )


class Delivery(db.Model):
    """One row per (campaign, subscriber): what makes sending exactly-once and resumable.

    Built for the snapshot, which inserts a whole audience (a million rows) in one
    statement. So there are no foreign keys (their per-row trigger checks took a third
    of that time): the snapshot selects only existing subscribers, campaigns are never
    deleted, and whoever deletes a subscriber deletes their rows (``audience.erase_subscriber``,
    ``subscriptions.purge_pending``). And three indexes, no more: the key; the unique
    (subscriber, campaign) pair, which also serves a subscriber's history and erasure;
    and (campaign, status, batch) for claims and progress.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "campaign_id", name="uq_deliveries_subscriber_campaign"),
        Index("ix_deliveries_campaign_status_batch", "campaign_id", "status", "batch"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int] = mapped_column(Integer)
    batch: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    message_id: Mapped[str] = mapped_column(String(200), default="")
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A row put back after a temporary (4xx) failure is not claimed again before this.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

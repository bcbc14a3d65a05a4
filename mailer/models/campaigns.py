"""Campaigns and their per-recipient delivery rows."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import Model, db
from .audience import MailingList
from .content import Event, Template
from .segments import Segment, campaign_segments
from .types import UTCDateTime, str_enum, utcnow


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"  # to be sent (now, or after next_attempt_at); its batch's lease says by whom
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


class CampaignEvent(Model):
    __tablename__ = "campaign_events"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    event: Mapped[Event] = relationship()


class Campaign(Model):
    __tablename__ = "campaigns"
    # Ids are never reused (SQLite too): tokens and tasks carry them.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(200))
    preheader: Mapped[str] = mapped_column(String(200), default="")
    # The English version's subject and preheader: None, no English version (English
    # readers get the campaign's own language; mailer.languages).
    subject_en: Mapped[str | None] = mapped_column(String(200))
    preheader_en: Mapped[str | None] = mapped_column(String(200))
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
    # Messages that may have reached their recipient twice: sent when a worker died or a
    # connection was lost before the server's answer was recorded (an upper bound).
    doubtful_count: Mapped[int] = mapped_column(Integer, default=0)
    # Permanent refusals in a row; and since when nothing was accepted while failures came.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # After temporary refusals or a relay that does not answer, senders wait until
    # retry_at; backoff_level doubles the wait each time and falls back on success.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backoff_level: Mapped[int] = mapped_column(Integer, default=0)
    # Why the campaign waits or stopped: a code ("failures", "failing", "backoff", "launch"
    # ...; see sending.reason) and its detail (the server's last answer, or a message id).
    status_code: Mapped[str] = mapped_column(String(16), default="")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # Engine bookkeeping: when the audience snapshot was taken, rows skipped since, and the
    # last time a chunk was recorded (the beat tick re-enqueues batches of a stalled campaign).
    snapshot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last test send: the addresses typed, then each one's answer (campaigns.send_test).
    test_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Returned mail and complaints, one of each at most per delivery (mailer.bounces).
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    complaint_count: Mapped[int] = mapped_column(Integer, default=0)

    template: Mapped[Template | None] = relationship()
    lists: Mapped[list[MailingList]] = relationship(secondary=campaign_lists)
    # Segments narrow or add to the audience (mailer.segments, mailer.deliveries._audience).
    segments: Mapped[list[Segment]] = relationship(secondary=campaign_segments)
    campaign_events: Mapped[list[CampaignEvent]] = relationship(
        cascade="all, delete-orphan", order_by=CampaignEvent.position
    )


class CampaignContent(Model):
    """What a campaign sends, frozen when it is launched: the subject and both parts
    rendered from its template and events, with the recipient markers left in. Every copy,
    the archive and the view-in-browser page come from this, whatever is edited later."""

    __tablename__ = "campaign_contents"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"),
                                             primary_key=True)
    locale: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SendBatch(Model):
    """One batch of a campaign's deliveries (``Delivery.batch``) and its lease: the sender
    holding it is the only one that may send or record its rows. A lease is renewed every
    few tenths of a second while its holder lives, so a dead holder's batch is taken over
    seconds after the lease runs out. Done when no row is left to send; ``due_at`` when its
    next rows wait for a retry."""

    __tablename__ = "send_batches"
    __table_args__ = (UniqueConstraint("campaign_id", "batch", name="uq_send_batches_campaign_batch"),
                      Index("ix_send_batches_campaign_done", "campaign_id", "done"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    batch: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class Delivery(Model):
    """One row per (campaign, subscriber): what makes sending exactly-once and resumable.

    Built for the snapshot, which inserts a whole audience (a million rows) in one
    statement. So there are no foreign keys (their per-row trigger checks took a third
    of that time): the snapshot selects only existing subscribers, campaigns are never
    deleted, and whoever deletes a subscriber deletes their rows (``audience.erase_subscriber``,
    ``subscriptions.purge_pending``). And three indexes, no more: the key; the unique
    (subscriber, campaign) pair, which also serves a subscriber's history and erasure;
    and (campaign, batch), which finds a batch's rows. No index holds the status, so
    recording an outcome changes no index entry: on PostgreSQL the update is HOT (heap-only,
    no index touched) when the new version finds room on its page. A flush records a
    batch's rows, whole pages of them, in one transaction, whose old versions cannot be
    pruned before it commits: so pages are filled to 45 % (54 rows of 68 bytes, and room for
    as many new versions of 76), and a sent row grows only by its ``sent_at`` (its
    Message-ID is not stored: ``deliveries.message_id`` makes it from the ids and the
    campaign's launch). Updating 100,000 rows 500 at a time: 7.4 us of PostgreSQL CPU a
    row with pages filled to 85 % and the Message-ID written (12 % HOT), 7.0 without it,
    6.1 at half-full pages with it, 2.8 at half-full pages without it (93 % HOT; at 45 %
    every one; ``tests/test_deliveries.py``).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "campaign_id", name="uq_deliveries_subscriber_campaign"),
        Index("ix_deliveries_campaign_batch", "campaign_id", "batch"),
        {"sqlite_autoincrement": True, "postgresql_with": {"fillfactor": 45}},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int] = mapped_column(Integer)
    batch: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A row put back after a temporary (4xx) failure is not claimed again before this.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

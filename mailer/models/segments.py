"""Audience tools: tags on subscribers, saved segments, what campaigns target, the record of
bulk actions, and the dashboard's summary refreshed in the background."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model, db
from .types import UTCDateTime, utcnow


class SubscriberTag(Model):
    """A staff label on a subscriber ("wolontariusz", "prasa"); (tag, subscriber) is indexed
    for segment conditions and bulk actions."""

    __tablename__ = "subscriber_tags"
    __table_args__ = (Index("ix_subscriber_tags_tag", "tag", "subscriber_id"),)

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"),
                                               primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Segment(Model):
    """Saved, named conditions over the audience (``mailer.segments`` compiles them); never SQL."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    match: Mapped[str] = mapped_column(String(3), default="all")  # all | any
    conditions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


campaign_segments = Table(
    "campaign_segments",
    db.metadata,
    Column("campaign_id", ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("segment_id", ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
)


class AudienceAction(Model):
    """Who did what to many subscribers at once (a bulk action on a search or segment): the
    selection, the action and how many it touched. ``mailer.bulk_actions`` writes it."""

    __tablename__ = "audience_actions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320), default="")  # the address, kept if the account goes
    action: Mapped[str] = mapped_column(String(32))
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    affected: Mapped[int] = mapped_column(Integer, default=0)
    # A bulk action runs as a job, chunk by chunk in id order: queued, running, done.
    status: Mapped[str] = mapped_column(String(16), default="done")
    cursor: Mapped[int] = mapped_column(Integer, default=0)  # the last subscriber id done
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AudienceSummary(Model):
    """Figures too costly to count on every page view at a million subscribers, computed in
    the background (``mailer.stats.refresh_summary``) and read by the dashboard."""

    __tablename__ = "audience_summaries"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

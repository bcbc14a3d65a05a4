"""Durable work: jobs written in the transaction of the data they act on (a transactional
outbox relayed to the broker), and the notices each subscriber is owed (confirmation,
welcome), sent in batches over one connection."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model
from .types import UTCDateTime, utcnow


class Job(Model):
    """A task to run, committed with the data it acts on. Published to the broker right
    after the commit, and again by the relay while no worker has finished it (a broker that
    was down or restarted loses nothing); deleted when its task has run."""

    __tablename__ = "jobs"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    relayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class NoticeKind(enum.StrEnum):
    CONFIRM = "confirm"
    WELCOME = "welcome"
    MANAGE = "manage"  # a link to the preference centre, asked for on the site
    ERASE = "erase"  # the link that confirms an erasure asked for in the preference centre


class NoticeStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"  # nothing left to notify about when its turn came (e.g. erased)


def _enum(cls):
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Notice(Model):
    """One mail owed to one subscriber. Claimed with a lease like a campaign's batch, so a
    redelivered task or a crashed worker sends it once; confirmations past the hourly cap
    wait (``available_at``) instead of being dropped."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_status_available_at", "status", "available_at"),
                      Index("ix_notices_kind_sent_at", "kind", "sent_at"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[NoticeKind] = mapped_column(_enum(NoticeKind))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"),
                                               index=True)
    status: Mapped[NoticeStatus] = mapped_column(_enum(NoticeStatus), default=NoticeStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    holder: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    message_id: Mapped[str] = mapped_column(String(200), default="")

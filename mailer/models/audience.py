"""Who is mailed: subscribers, lists, their subscriptions, consent and suppression."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import DDL, JSON, Boolean, ColumnElement, ForeignKey, Index, Integer, String, Text, and_, event
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import Model
from .types import UTCDateTime, str_enum, utcnow


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class Subscriber(Model):
    __tablename__ = "subscribers"
    # Ids are never reused (SQLite too): tokens and tasks carry them. Substring search goes
    # through a trigram index of ``search_text`` on PostgreSQL (pg_trgm, migration 0010); on
    # SQLite the same index is a plain one (a search there reads the table).
    __table_args__ = (
        Index("ix_subscribers_search_text_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}),
        # Matched by equality only, random keys: a hash index on PostgreSQL (migration 0016).
        Index("ix_subscribers_email_hash", "email_hash", postgresql_using="hash"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # Keyed hash of the address, matched against the suppression list in set-based SQL; set
    # on every insert and address change by mailer.subscribers.
    email_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(8), default="pl")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The address and name folded for search (lower case, diacritics and ł removed; see
    # mailer.folding), kept in step by mailer.subscribers and by every bulk insert.
    search_text: Mapped[str] = mapped_column(String(600), default="", server_default="")
    # A confirmation link is valid only while its nonce is the current one.
    confirm_nonce: Mapped[str | None] = mapped_column(String(32))
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_sent_day: Mapped[str | None] = mapped_column(String(10))
    confirm_sent_today: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    subscriptions: Mapped[list["Subscription"]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )
    consents: Mapped[list["ConsentRecord"]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="ConsentRecord.id"
    )


# The trigram operator class the search index uses (create_all; migration 0010 does the same).
event.listen(Subscriber.__table__, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))


class MailingList(Model):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Archived: kept with its history, but offered neither to visitors nor to new campaigns.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriptions: Mapped[list["Subscription"]] = relationship(
        back_populates="list", cascade="all, delete-orphan"
    )

    @hybrid_property
    def joinable(self) -> bool:
        """Whether visitors may join it (the sign-up form, the embed, the preference centre):
        public and not archived. Also a SQL condition: ``select(...).where(MailingList.joinable)``."""
        return self.public and self.archived_at is None

    @joinable.inplace.expression
    @classmethod
    def _joinable_condition(cls) -> ColumnElement[bool]:
        return and_(cls.public.is_(True), cls.archived_at.is_(None))


class Subscription(Model):
    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_list_status", "list_id", "status"),)

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[SubscriptionStatus] = mapped_column(str_enum(SubscriptionStatus),
                                                       default=SubscriptionStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    list: Mapped[MailingList] = relationship(back_populates="subscriptions")


class ConsentRecord(Model):
    """Append-only proof of consent and of its withdrawal."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))  # subscribe, confirm, unsubscribe, import...
    source: Mapped[str] = mapped_column(String(32))  # form, api, import, admin, one-click, bounce
    consent_version: Mapped[str] = mapped_column(String(32), default="")
    # The exact wording the person saw (ConsentText.hash); empty for records made before texts
    # were kept, and for withdrawals.
    consent_text: Mapped[str] = mapped_column(String(64), default="", server_default="")
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consents")


class ConsentText(Model):
    """Every wording of consent ever shown (a form, the embed, the preference centre) or
    stated (an API client, an import), kept for good under the hash of its text: a new
    wording is a new version by itself. Holds no personal data (erasure leaves it)."""

    __tablename__ = "consent_texts"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the wording, hex
    wording: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Suppression(Model):
    """Addresses never to be mailed again, kept only as a keyed hash."""

    __tablename__ = "suppressions"
    __table_args__ = (Index("ix_suppressions_reason_id", "reason", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))  # erased, bounced, complaint
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

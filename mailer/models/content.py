"""What is announced: events, and the email templates that announce them."""

import enum
from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import Model
from .types import UTCDateTime, str_enum, utcnow


class Category(Model):
    """A kind of event (concerts, sport ...): staff tag events with them, subscribers choose
    them as interests."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name_pl: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def name(self, locale: str) -> str:
        return self.name_en if locale == "en" and self.name_en else self.name_pl


event_categories = Table(
    "event_categories", Model.metadata,
    Column("event_id", Integer, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("category_id", Integer, ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)

# A subscriber's interests: none chosen means every event.
subscriber_interests = Table(
    "subscriber_interests", Model.metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("category_id", Integer, ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)


class Event(Model):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    place: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[str] = mapped_column(String(500), default="")
    body_md: Mapped[str] = mapped_column(Text, default="")
    # The English texts (mailer.languages): None where not translated, then the Polish is shown.
    title_en: Mapped[str | None] = mapped_column(String(200))
    place_en: Mapped[str | None] = mapped_column(String(200))
    summary_en: Mapped[str | None] = mapped_column(String(500))
    body_md_en: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str] = mapped_column(String(500), default="")
    link: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    categories: Mapped[list[Category]] = relationship(secondary=event_categories, order_by=Category.slug)


class TemplateKind(enum.StrEnum):
    LAYOUT = "layout"
    CONTENT = "content"


class Template(Model):
    """A staff-editable email template: a layout, or content placed in a layout."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[TemplateKind] = mapped_column(str_enum(TemplateKind))
    layout_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(200), default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    # The English version (mailer.languages); None: the Polish source, rendered with locale "en".
    html_en: Mapped[str | None] = mapped_column(Text)
    text_en: Mapped[str | None] = mapped_column(Text)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    layout: Mapped["Template | None"] = relationship(remote_side=[id])

"""CSV imports: one row per uploaded file, with its options and progress."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model
from .types import UTCDateTime, str_enum, utcnow


class ImportStatus(enum.StrEnum):
    UPLOADED = "uploaded"  # checked, waiting for the column mapping
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportJob(Model):
    __tablename__ = "import_jobs"
    # Ids are never reused (SQLite too): tokens and tasks carry them.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    stored_name: Mapped[str] = mapped_column(String(64))  # file under IMPORT_DIR, deleted when done
    status: Mapped[ImportStatus] = mapped_column(str_enum(ImportStatus), default=ImportStatus.UPLOADED)
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    has_header: Mapped[bool] = mapped_column(Boolean, default=True)
    columns: Mapped[int] = mapped_column(Integer, default=0)
    # Chosen on the mapping page: email_col, name_col, locale_col, list_ids, status.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    consent_source: Mapped[str] = mapped_column(String(200), default="")
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    done_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    subscribed_count: Mapped[int] = mapped_column(Integer, default=0)
    existing_count: Mapped[int] = mapped_column(Integer, default=0)
    suppressed_count: Mapped[int] = mapped_column(Integer, default=0)
    invalid_count: Mapped[int] = mapped_column(Integer, default=0)
    invalid_rows: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[line, reason]], capped
    # Why the job failed: a message id and its parameters, translated when shown.
    error: Mapped[str] = mapped_column(Text, default="")
    error_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Moved after every chunk; a RUNNING job whose heartbeat stopped may be claimed again.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

"""The suppression list: addresses never mailed again, kept only as a keyed hash."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Suppression
from .subscribers import email_hash

__all__ = ["email_hash", "is_suppressed", "suppress"]


def suppress(session: Session, email: str, reason: str) -> None:
    """Put ``email`` on the list (idempotent)."""
    digest = email_hash(email)
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        session.add(Suppression(email_hash=digest, reason=reason))
        session.flush()


def is_suppressed(session: Session, email: str) -> bool:
    return session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(email))) is not None

"""The suppression list: addresses never mailed again, kept only as a keyed hash."""

import hashlib
import hmac

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Suppression


def email_hash(email: str) -> str:
    """HMAC-SHA256 of the normalized address under SUPPRESSION_KEY (kept apart from
    SECRET_KEY so rotating that does not forget who must never be mailed)."""
    secret = current_app.config["SUPPRESSION_KEY"] or current_app.config["SECRET_KEY"]
    key = hashlib.sha256(b"mailer.suppression:" + secret.encode()).digest()
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()


def suppress(session: Session, email: str, reason: str) -> None:
    """Put ``email`` on the list (idempotent)."""
    digest = email_hash(email)
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        session.add(Suppression(email_hash=digest, reason=reason))
        session.flush()


def is_suppressed(session: Session, email: str) -> bool:
    return session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(email))) is not None

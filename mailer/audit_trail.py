"""The record of who did what to the audience in bulk. ``record`` is the one place such
actions are written down (an ``AudienceAction`` row, in the caller's transaction); when the
service gets a general audit log, this function is where to send them there too."""

from typing import Any

from sqlalchemy.orm import Session

from .models import AudienceAction, User


def record(session: Session, actor: User | None, action: str, *, selection: dict[str, Any] | None = None,
           details: dict[str, Any] | None = None, affected: int = 0) -> AudienceAction:
    """Write down a bulk action by ``actor`` (None: the system) on ``selection``."""
    entry = AudienceAction(user_id=actor.id if actor else None, actor=actor.email if actor else "",
                           action=action, selection=selection or {}, details=details or {}, affected=affected)
    session.add(entry)
    session.flush()
    return entry

"""The suppression list: addresses never mailed again, kept only as a keyed hash."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import bounded
from .errors import InvalidInput
from .models import Subscriber, Suppression, utcnow
from .subscribers import address_key, email_hash

# Why an address is suppressed, weakest first: a stronger reason replaces a weaker one.
REASONS = ("soft_bounced", "bounced", "complaint", "erased")
MAX_PER_PAGE = 200
COUNT_LIMIT = 1_000  # entries counted exactly; past that, the estimate ("about")
COUNT_SECONDS = 0.025

__all__ = ["email_hash", "is_suppressed", "suppress"]


def _rank(reason: str) -> int:
    return REASONS.index(reason) if reason in REASONS else -1


def suppress(session: Session, email: str, reason: str) -> None:
    """Put ``email`` on the list (idempotent); a stronger reason replaces a weaker one
    (a complaint after a bounce is kept as a complaint)."""
    digest = email_hash(email)
    entry = session.scalar(select(Suppression).where(Suppression.email_hash == digest))
    if entry is None:
        session.add(Suppression(email_hash=digest, reason=reason))
        session.flush()
    elif _rank(reason) > _rank(entry.reason):
        entry.reason = reason
        entry.created_at = utcnow()  # the date of the reason shown
        session.flush()


def is_suppressed(session: Session, email: str) -> bool:
    return session.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(email))) is not None


def entry_for(session: Session, email: str) -> Suppression | None:
    """The address's suppression (reason, date), or None."""
    return session.scalar(select(Suppression).where(Suppression.email_hash == email_hash(email)))


def lift(session: Session, email: str) -> Suppression | None:
    """Take ``email`` off the list; returns the entry that was removed (None if none).
    Only a confirmed double opt-in calls this (``subscriptions.confirm_once``)."""
    entry = entry_for(session, email)
    if entry is not None:
        session.delete(entry)
        session.flush()
    return entry


def search(session: Session, *, query: str = "", reason: str | None = None, after: int | None = None,
           before: int | None = None, per_page: int = 50) -> bounded.Page:
    """One page of the list, newest first (``bounded.keyset``: the same cost at any depth),
    counted exactly up to COUNT_LIMIT: each entry as {"entry", "subscriber_id", "email"}, the
    address when a subscriber still has it (erased addresses are known only by their hash).
    ``query`` is a whole address (hashed, as stored: a fragment cannot match). Raises
    InvalidInput."""
    query = (query or "").strip()
    if len(query) > 320:
        raise InvalidInput("The search text is too long.", "q")
    if any(ord(ch) < 32 for ch in query):
        raise InvalidInput("This email address is not valid.", "q")
    if reason and reason not in REASONS:
        raise InvalidInput("Unknown reason.", "reason")
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    clauses = []
    if query:
        clauses.append(Suppression.email_hash == email_hash(address_key(query)))
    if reason:
        clauses.append(Suppression.reason == reason)
    total, exact = bounded.count(session, select(Suppression.id).where(*clauses), COUNT_LIMIT, COUNT_SECONDS)
    statement = (select(Suppression, Subscriber.id, Subscriber.email)
                 .outerjoin(Subscriber, Subscriber.email_hash == Suppression.email_hash).where(*clauses))
    rows, older, newer = bounded.keyset(session, statement, Suppression.id, lambda row: row[0].id, after=after,
                                        before=before, per_page=per_page, scalars=False)
    return bounded.Page([{"entry": entry, "subscriber_id": sid, "email": email} for entry, sid, email in rows],
                        total, exact, next_after=older, prev_before=newer)


def counts(session: Session) -> dict[str, int]:
    """Suppressed addresses per reason (every reason present, zeros included)."""
    found = dict(session.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason)).all())
    return {reason: found.get(reason, 0) for reason in REASONS}

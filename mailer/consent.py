"""Consent records: the append-only proof of each subscribe, confirm and unsubscribe."""

from dataclasses import dataclass

from sqlalchemy.orm import Session

from .models import ConsentRecord, Subscriber

MAX_USER_AGENT = 400
MAX_IP = 45


@dataclass(frozen=True)
class Origin:
    """Where a request came from: ``ip`` is what ProxyFix made of the connection."""

    source: str
    ip: str = ""
    user_agent: str = ""


def record(session: Session, subscriber: Subscriber, action: str, origin: Origin, *,
           list_id: int | None, version: str = "") -> ConsentRecord:
    """Append one record (the caller commits)."""
    entry = ConsentRecord(
        subscriber=subscriber, list_id=list_id, action=action, source=origin.source,
        consent_version=version, ip=(origin.ip or "")[:MAX_IP],
        user_agent=(origin.user_agent or "")[:MAX_USER_AGENT],
    )
    session.add(entry)
    return entry

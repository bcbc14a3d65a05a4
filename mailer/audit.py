"""The audit log of staff actions: appended in the transaction of the action it records (a
refused or rolled-back action leaves no entry), never changed, read and exported by admins.

Who acted is an ``Actor`` the edge makes (the web from the signed-in user and the request's
address, the API from its token, the command line from the shell); the domain does not know
it. Entries name their target by id, never by a subscriber's address: an erasure must not
leave the address behind in the log.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import bounded
from .errors import InvalidInput
from .models import AuditEntry
from .subscribers import address_key

MAX_PER_PAGE = 200
COUNT_LIMIT = 1_000  # entries counted exactly; past that, the estimate ("about")
COUNT_SECONDS = 0.025
# Every action the log records, for the filter on the page (and so a typo is caught in tests).
ACTIONS = (
    "login", "login.failed", "login.2fa_failed", "logout",
    "password.change", "password.reset",
    "2fa.enable", "2fa.disable", "2fa.recovery_codes", "2fa.recovery_used", "2fa.require",
    "user.create", "user.role", "user.activate", "user.deactivate",
    "token.create", "token.revoke",
    "campaign.send", "campaign.schedule", "campaign.unschedule", "campaign.pause", "campaign.resume",
    "campaign.cancel", "campaign.retry", "campaign.test", "campaign.deliveries_export",
    "subscriber.export", "subscriber.erase", "subscriber.unsubscribe", "subscriber.create", "subscriber.update",
    "subscriber.preferences", "subscriber.consent_proof",
    "subscribers.export", "subscribers.add_to_list", "subscribers.tag", "subscribers.untag",
    "subscribers.unsubscribe", "subscribers.erase",
    "import.start", "audit.export", "list.archive", "list.restore", "list.delete",
    "category.create", "category.update", "category.delete",
)


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    email: str
    via: str = "web"  # web, api, cli
    ip: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the API token's id


def record(session: Session, actor: Actor, action: str, target: str = "", **detail: Any) -> AuditEntry:
    """Append one entry (the caller commits, with the action itself)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(actor_id=actor.user_id, actor=actor.email[:320], via=actor.via[:8], action=action,
                       target=str(target)[:200], detail={**actor.extra, **detail}, ip=(actor.ip or "")[:45])
    session.add(entry)
    return entry


def _clauses(action: str | None, actor: str | None) -> list:
    clauses = []
    if action:
        if action not in ACTIONS:
            raise InvalidInput("Unknown action.", "action")
        clauses.append(AuditEntry.action == action)
    if actor:
        if len(actor) > 320:
            raise InvalidInput("The search text is too long.", "actor")
        clauses.append(AuditEntry.actor == address_key(actor))
    return clauses


def search(session: Session, *, action: str | None = None, actor: str | None = None, after: int | None = None,
           before: int | None = None, per_page: int = 100) -> bounded.Page:
    """One page of entries, newest first (``bounded.keyset``: a page costs the same at any
    depth of a log of millions; an API client's writes are each an entry), counted exactly up
    to COUNT_LIMIT within COUNT_SECONDS. Raises InvalidInput."""
    clauses = _clauses(action, actor)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    total, exact = bounded.count(session, select(AuditEntry.id).where(*clauses), COUNT_LIMIT, COUNT_SECONDS)
    rows, older, newer = bounded.keyset(session, select(AuditEntry).where(*clauses), AuditEntry.id,
                                        lambda entry: entry.id, after=after, before=before, per_page=per_page)
    return bounded.Page(rows, total, exact, next_after=older, prev_before=newer)


EXPORT_HEADER = ["id", "time", "actor", "via", "action", "target", "detail", "ip"]


def export_rows(session: Session, *, action: str | None = None, actor: str | None = None,
                chunk: int = 1000) -> Iterator[list[str]]:
    """Rows for the CSV export, oldest first, streamed. Raises InvalidInput before the first."""
    import json

    statement = (select(AuditEntry).where(*_clauses(action, actor)).order_by(AuditEntry.id)
                 .execution_options(yield_per=chunk))

    def rows() -> Iterator[list[str]]:
        for entry in session.scalars(statement):
            yield [str(entry.id), entry.created_at.isoformat(), entry.actor, entry.via, entry.action,
                   entry.target, json.dumps(entry.detail or {}, ensure_ascii=False, sort_keys=True), entry.ip]

    return rows()

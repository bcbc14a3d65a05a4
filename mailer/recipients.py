"""How many a campaign would reach if it were sent now, shown before sending.

Counting a million-subscriber audience with its segments takes about a second on
PostgreSQL, too slow for a page view. So the count is made by a worker
("mailer.count_recipients", queued whenever a campaign's lists or segments change) and kept
as an AudienceSummary; a page reads it with the time it was made. Small audiences (under
LIVE_LIMIT subscribers, and every SQLite database) are counted as the page is shown.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from . import deliveries, jobs
from .errors import InvalidInput
from .models import AudienceSummary, Campaign, utcnow

TASK = "mailer.count_recipients"
LIVE_LIMIT = 100_000


class NoRecipients(InvalidInput):
    """A campaign that would reach nobody (no confirmed subscriber on its lists or in its
    segments, or all of them suppressed)."""


def require_audience(session: Session, campaign: Campaign) -> int:
    """How many the campaign would reach now (one COUNT, as the page shows it); raises
    InvalidInput (no list or segment chosen), NoRecipients (nobody). Sending and scheduling
    both ask here, so a campaign to nobody stays an editable draft."""
    if not campaign.lists and not campaign.segments:
        raise InvalidInput("Choose at least one list.", "list_ids")
    count = deliveries.campaign_audience_count(session, campaign.id)
    if not count:
        raise NoRecipients("Nobody would receive this campaign: its lists and segments have no "
                           "confirmed subscribers. It stays a draft.", "list_ids")
    return count


def _key(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def audience_is_small(session: Session) -> bool:
    """Few enough subscribers to count at once (the planner's estimate on PostgreSQL)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    estimate = session.scalar(text("SELECT reltuples::bigint FROM pg_class WHERE relname = 'subscribers'"))
    return estimate is None or estimate < LIVE_LIMIT


def recount_later(session: Session, campaign_id: int) -> None:
    """Queue a fresh count (after the caller commits)."""
    jobs.enqueue(session, TASK, campaign_id)


def count_now(session: Session, campaign_id: int) -> None:
    """Task body: count the campaign's recipients and keep the figure; commits."""
    if session.get(Campaign, campaign_id) is None:
        return
    by_locale = deliveries.campaign_audience_by_locale(session, campaign_id)
    row = session.get(AudienceSummary, _key(campaign_id))
    if row is None:
        row = AudienceSummary(name=_key(campaign_id))
        session.add(row)
    row.payload, row.computed_at = {"recipients": sum(by_locale.values()), "languages": by_locale}, utcnow()
    session.commit()


def languages(session: Session, campaign_id: int) -> dict[str, int]:
    """A launched campaign's recipients per language: counted now for small audiences, else
    the last count made before it was sent (empty when there was none)."""
    if audience_is_small(session):
        return deliveries.delivery_languages(session, campaign_id)
    row = session.scalar(select(AudienceSummary).where(AudienceSummary.name == _key(campaign_id)))
    return dict(row.payload.get("languages", {})) if row else {}


def recipients(session: Session, campaign_id: int) -> dict[str, Any]:
    """{"count": N or None (not counted yet), "languages": {subscriber language: N},
    "counted_at": when, or None when counted now}. One grouped count gives both figures."""
    if audience_is_small(session):
        by_locale = deliveries.campaign_audience_by_locale(session, campaign_id)
        return {"count": sum(by_locale.values()), "languages": by_locale, "counted_at": None}
    row = session.scalar(select(AudienceSummary).where(AudienceSummary.name == _key(campaign_id)))
    counted_at: datetime | None = row.computed_at if row else None
    return {"count": row.payload.get("recipients") if row else None,
            "languages": row.payload.get("languages", {}) if row else {}, "counted_at": counted_at}

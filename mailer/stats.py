"""Figures for the staff dashboard.

The audience figures (subscribers, subscriptions by status and list, sign-ups per day) are
counts over the whole audience: at a million subscribers about a second of PostgreSQL's
time, too slow for a page. Beat has them counted every SUMMARY_SECONDS in the background
(``refresh_summary``) and the dashboard reads that summary, saying when it was made; a small
audience (``recipients.audience_is_small``) is counted as the page is shown. The notices
waiting to be sent (the hourly cap's backlog) are always read live: an index range.
"""

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import lists, notices, suppression
from .bounces.handling import rates
from .models import AudienceSummary, Campaign, MailingList, Subscriber, Subscription, SubscriptionStatus, utcnow
from .recipients import audience_is_small

SUMMARY = "dashboard"
SUMMARY_SECONDS = 60

SIGNUP_DAYS = 90


def _day_expr(session: Session, column):
    """The UTC calendar day of a timestamp column, as text YYYY-MM-DD, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def signups_per_day(session: Session, days: int = SIGNUP_DAYS) -> list[tuple[date, int]]:
    """New subscribers per UTC day over the last ``days`` days, oldest first, zeros included."""
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    day = _day_expr(session, Subscriber.created_at)
    counts: dict[str, int] = dict(session.execute(
        select(day, func.count(Subscriber.id))
        .where(Subscriber.created_at >= utcnow() - timedelta(days=days + 1)).group_by(day)
    ).all())
    return [(first + timedelta(n), counts.get((first + timedelta(n)).isoformat(), 0))
            for n in range(days)]


def chart(series: list[tuple[date, int]], width: int = 720, height: int = 180) -> dict[str, Any]:
    """Geometry of a bar chart drawn as inline SVG by the template (no JavaScript)."""
    top = max((count for _, count in series), default=0) or 1
    pad_left, pad_bottom = 36, 22
    slot = (width - pad_left) / max(len(series), 1)
    bars = []
    for n, (day, count) in enumerate(series):
        h = (height - pad_bottom - 8) * count / top
        bars.append({"x": round(pad_left + n * slot + 1, 2), "y": round(height - pad_bottom - h, 2),
                     "w": round(max(slot - 2, 1), 2), "h": round(h, 2), "day": day, "count": count})
    ticks = [bars[i] for i in range(0, len(bars), 15)] if bars else []
    return {"width": width, "height": height, "bars": bars, "max": top, "ticks": ticks,
            "base": height - pad_bottom, "left": pad_left, "total": sum(c for _, c in series)}


def audience_figures(session: Session) -> dict[str, Any]:
    """The whole audience counted (a scan of subscribers, subscriptions and suppressions): JSON-able."""
    by_status = {s.value: 0 for s in SubscriptionStatus}
    for status, count in session.execute(
            select(Subscription.status, func.count()).group_by(Subscription.status)):
        by_status[str(status)] = count
    per_list: dict[str, dict[str, int]] = {}
    for list_id, status, count in session.execute(
            select(Subscription.list_id, Subscription.status, func.count())
            .group_by(Subscription.list_id, Subscription.status)):
        per_list.setdefault(str(list_id), {})[str(status)] = count
    return {"subscribers": session.scalar(select(func.count(Subscriber.id))) or 0, "by_status": by_status,
            "per_list": per_list, "suppressed": suppression.counts(session),
            "signups": [[day.isoformat(), count] for day, count in signups_per_day(session)]}


def refresh_summary(session: Session) -> None:
    """Task body (beat): count the audience figures and keep them for the dashboard; commits."""
    figures = audience_figures(session)
    row = session.get(AudienceSummary, SUMMARY)
    if row is None:
        row = AudienceSummary(name=SUMMARY)
        session.add(row)
    row.payload, row.computed_at = figures, utcnow()
    session.commit()


def _summary(session: Session) -> AudienceSummary | None:
    """The background summary, when the audience is too big to count as a page is shown."""
    return None if audience_is_small(session) else session.get(AudienceSummary, SUMMARY)


def _figures(session: Session) -> tuple[dict[str, Any], Any]:
    """The audience figures and when they were counted (None: now)."""
    row = _summary(session)
    if row is None:  # small, or the first minute of a big database (beat keeps it fresh after)
        return audience_figures(session), None
    return row.payload, row.computed_at


def suppressed(session: Session) -> tuple[dict[str, int], Any]:
    """``suppression.counts`` and when it was counted (None: now): from the background summary
    when the audience is big (a GROUP BY of every suppressed address)."""
    row = _summary(session)
    if row is None or "suppressed" not in row.payload:
        return suppression.counts(session), None
    return row.payload["suppressed"], row.computed_at


def lists_overview(session: Session) -> tuple[list[tuple[MailingList, lists.ListCounts]], Any]:
    """``lists.overview`` and when it was counted (None: now): from the background summary
    when the audience is big (a GROUP BY of every subscription: 230 ms at a million)."""
    row = _summary(session)
    if row is None:
        return lists.overview(session), None
    return lists.overview(session, row.payload["per_list"]), row.computed_at


def dashboard(session: Session, recent: int = 8) -> dict[str, Any]:
    """Subscriptions by status, subscribers by list and status, sign-ups per day (counted now or
    by the background summary: ``counted_at``), notices waiting to be sent, recent campaigns
    with their bounce and complaint rates, suppressed addresses by reason, the last 30 days' rates."""
    figures, counted_at = _figures(session)
    per_list: list[dict[str, Any]] = [
        {"list": m, **{s.value: figures["per_list"].get(str(m.id), {}).get(s.value, 0) for s in SubscriptionStatus}}
        for m in session.scalars(select(MailingList).order_by(MailingList.name))]
    series = [(date.fromisoformat(day), count) for day, count in figures["signups"]]
    recent_campaigns = list(session.scalars(
        select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc()).limit(recent)))
    return {
        "subscribers": figures["subscribers"],
        "by_status": {s.value: figures["by_status"].get(s.value, 0) for s in SubscriptionStatus},
        "by_list": per_list,
        "counted_at": counted_at,
        "backlog": notices.backlog(session),
        "signups": chart(series),
        "campaigns": recent_campaigns,
        "campaign_rates": {c.id: rates(c) for c in recent_campaigns},
        "suppressed": figures.get("suppressed") or suppression.counts(session),  # a summary made before it had them
        "returned": returned_since(session, 30),
    }


def returned_since(session: Session, days: int) -> dict[str, Any]:
    """Messages sent, bounced and complained about over the last ``days`` days (campaigns
    started then), with the rates: what Gmail and Yahoo judge a sender by."""
    since = utcnow() - timedelta(days=days)
    sent, bounces, complaints = session.execute(
        select(func.coalesce(func.sum(Campaign.sent_count), 0), func.coalesce(func.sum(Campaign.bounce_count), 0),
               func.coalesce(func.sum(Campaign.complaint_count), 0))
        .where(Campaign.started_at >= since)).one()
    return {"days": days, "sent": sent, "bounces": bounces, "complaints": complaints,
            "bounce_rate": bounces / sent if sent else None,
            "complaint_rate": complaints / sent if sent else None}

"""Figures for the staff dashboard."""

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import suppression
from .bounces.handling import rates
from .models import Campaign, MailingList, Subscriber, Subscription, SubscriptionStatus, utcnow

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


def dashboard(session: Session, recent: int = 8) -> dict[str, Any]:
    """Subscriptions by status, subscribers by list and status, sign-ups per day, recent campaigns
    with their bounce and complaint rates, suppressed addresses by reason, the last 30 days' rates."""
    by_status = {s.value: 0 for s in SubscriptionStatus}
    for status, count in session.execute(
            select(Subscription.status, func.count()).group_by(Subscription.status)):
        by_status[str(status)] = count
    per_list: dict[int, dict[str, Any]] = {
        m.id: {"list": m, **{s.value: 0 for s in SubscriptionStatus}}
        for m in session.scalars(select(MailingList).order_by(MailingList.name))
    }
    for list_id, status, count in session.execute(
            select(Subscription.list_id, Subscription.status, func.count())
            .group_by(Subscription.list_id, Subscription.status)):
        per_list[list_id][str(status)] = count
    series = signups_per_day(session)
    recent_campaigns = list(session.scalars(
        select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc()).limit(recent)))
    return {
        "subscribers": session.scalar(select(func.count(Subscriber.id))) or 0,
        "by_status": by_status,
        "by_list": list(per_list.values()),
        "signups": chart(series),
        "campaigns": recent_campaigns,
        "campaign_rates": {c.id: rates(c) for c in recent_campaigns},
        "suppressed": suppression.counts(session),
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

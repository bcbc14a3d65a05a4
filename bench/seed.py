"""Bench data on PostgreSQL: a fresh database, N subscribers in set-based SQL, a campaign."""

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from mailer.extensions import db
from mailer.models import Campaign, CampaignEvent, Event, MailingList

DOMAIN = "bench.example.org"


def address(i: int) -> str:
    return f"osoba{i}@{DOMAIN}"


def seed_subscribers(count: int, first: int = 1) -> None:
    """``count`` subscribers numbered from ``first`` (one INSERT ... SELECT)."""
    db.session.execute(sa.text(
        "INSERT INTO subscribers (email, email_hash, name, locale, attributes, confirm_sent_today,"
        " created_at, updated_at)"
        " SELECT 'osoba' || g || :domain, md5(g::text) || md5('x' || g::text),"
        " 'Osoba ' || g, 'pl', '{}'::json, 0, now(), now()"
        " FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g"),
        {"domain": "@" + DOMAIN, "first": first, "last": first + count - 1})
    db.session.commit()


def make_list(name: str, slug: str, upto: int) -> MailingList:
    """A list with every subscriber numbered up to ``upto`` confirmed on it."""
    mailing_list = MailingList(name=name, slug=slug)
    db.session.add(mailing_list)
    db.session.flush()
    db.session.execute(sa.text(
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)"
        " SELECT id, :list_id, 'confirmed', now(), now() FROM subscribers"
        " WHERE id <= :upto"), {"list_id": mailing_list.id, "upto": upto})
    db.session.commit()
    settle()
    return mailing_list


def settle() -> None:
    """Leave the loaded tables as a database in service has them, not as a bulk load
    does: VACUUM ANALYZE (statistics, hint bits, visibility map), then CHECKPOINT (the
    load's dirty pages written out before, not during, a timing)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        conn.execute(sa.text("CHECKPOINT"))


def make_campaign(mailing_list: MailingList, subject: str) -> int:
    event = Event(title="Noc Muzeów 2026", starts_at=datetime.now(timezone.utc) + timedelta(days=10),
                  place="Rynek Główny", summary="Muzea otwarte do północy, wstęp wolny.",
                  body_md="Zapraszamy **wszystkich** mieszkańców. Program na stronie miasta.")
    db.session.add(event)
    db.session.flush()
    campaign = Campaign(subject=subject, name=subject, locale="pl")
    campaign.lists = [mailing_list]
    campaign.campaign_events = [CampaignEvent(event_id=event.id, position=0)]
    db.session.add(campaign)
    db.session.commit()
    return campaign.id

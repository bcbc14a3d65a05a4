"""Returned mail for the bounce tests: a campaign really sent through the test SMTP server,
and bounces built from the corpus in tests/data/bounces/ as the MTAs write them.

``return_path`` is the one place that decides where a bounce of a delivery is addressed:
the envelope sender the test SMTP server recorded (``Received.sender``) when it is a signed
return path, as it will be once the sending engine uses VERP; until then the return path
``Verp`` builds for the delivery, as an MTA would see it.
"""

import string
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer import deliveries
from mailer.extensions import db
from mailer.models import (BounceEvent, Campaign, ConsentRecord, Delivery, Subscriber, Subscription,
                           Suppression)
from mailer.suppression import email_hash
from mailer.verp import Verp
from tests.conftest import settle_worker
from tests.helpers_engine import launch_and_snapshot, make_audience, make_campaign, run_all_batches
from tests.smtp_server import Received

CORPUS = Path(__file__).resolve().parent / "data" / "bounces"


@dataclass
class Sent:
    """One message of the campaign as it left: its delivery row and what the server got."""

    email: str
    subscriber_id: int
    delivery_id: int
    message_id: str
    received: Received | None


def send_campaign(session, smtp_server, count: int, subject: str = "Koncert na Rynku") -> tuple[int, list[Sent]]:
    """A campaign to ``count`` confirmed subscribers, sent by the engine to the test SMTP
    server; returns its id and what was sent, in subscriber order."""
    lists = make_audience(session, count)
    campaign = make_campaign(session, lists, subject)
    session.commit()
    launch_and_snapshot(session, campaign.id)
    run_all_batches(session, campaign.id)
    smtp_server.wait_for(count)
    # The launch also queued the start task: a test worker running (from an earlier test)
    # may still take it and finish the campaign after a test has set its status back.
    settle_worker(current_app._get_current_object())
    # this campaign's copies (the server may still hold another test's to the same addresses)
    by_recipient = {r: m for m in smtp_server.messages for r in m.recipients
                    if (deliveries.parse_message_id(message_id_of(m)) or (0,))[0] == campaign.id}
    rows = session.execute(
        select(Subscriber.email, Subscriber.id, Delivery.id)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.campaign_id == campaign.id).order_by(Subscriber.id)).all()
    session.commit()
    return campaign.id, [Sent(email, sid, did, message_id_of(by_recipient.get(email)), by_recipient.get(email))
                         for email, sid, did in rows]


def message_id_of(received: Received | None) -> str:
    """The Message-ID header of a message as the server got it ("" if none came)."""
    return str(received.message["Message-ID"] or "") if received is not None else ""


def return_path(app, sent: Sent) -> str:
    """Where the bounce of ``sent`` goes: the recorded envelope sender if it is a signed
    return path, else the one ``Verp`` makes for the delivery."""
    verp = Verp(app.config)
    if sent.received is not None and verp.read(sent.received.sender) is not None:
        return sent.received.sender
    return verp.return_path("d", sent.delivery_id)


def forge(path: str) -> str:
    """``path`` with the last character of its signature changed (still base32)."""
    local, _, domain = path.rpartition("@")
    return f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"


def corpus(name: str, **values: str) -> bytes:
    """A corpus message with $RETURN_PATH, $RECIPIENT, $MESSAGE_ID filled in, CRLF line ends."""
    text = string.Template((CORPUS / name).read_text(encoding="utf-8")).safe_substitute(values)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def bounce_of(app, sent: Sent, name: str, *, to: str | None = None) -> bytes:
    """The corpus message ``name`` as it comes back for ``sent``."""
    return corpus(name, RETURN_PATH=to or return_path(app, sent), RECIPIENT=sent.email,
                  MESSAGE_ID=sent.message_id or "<none@example.org>")


@contextmanager
def fresh():
    """A session of its own, the way another request or process would read the results."""
    session = Session(db.engine)
    try:
        yield session
    finally:
        session.close()


def figures(campaign_id: int) -> dict:
    """What a fresh session says about a campaign and its people."""
    with fresh() as session:
        campaign = session.get(Campaign, campaign_id)
        statuses = dict(session.execute(select(Delivery.status, func.count())
                                        .where(Delivery.campaign_id == campaign_id)
                                        .group_by(Delivery.status)).all())
        events = dict(session.execute(select(BounceEvent.kind, func.count())
                                      .where(BounceEvent.campaign_id == campaign_id)
                                      .group_by(BounceEvent.kind)).all())
        return {"status": str(campaign.status), "reason": campaign.status_reason,
                "sent": campaign.sent_count, "bounces": campaign.bounce_count,
                "complaints": campaign.complaint_count,
                "deliveries": {str(k): v for k, v in statuses.items()},
                "events": {str(k): v for k, v in events.items()},
                "suppressions": session.scalar(select(func.count(Suppression.id))) or 0}


def suppression_reason(email: str) -> str | None:
    with fresh() as session:
        return session.scalar(select(Suppression.reason).where(Suppression.email_hash == email_hash(email)))


def subscription_statuses(email: str) -> list[str]:
    with fresh() as session:
        return sorted(str(s) for s in session.scalars(
            select(Subscription.status).join(Subscriber).where(Subscriber.email == email)))


def consent_actions(email: str) -> list[tuple[str, str]]:
    with fresh() as session:
        return [(a, s) for a, s in session.execute(
            select(ConsentRecord.action, ConsentRecord.source).join(Subscriber)
            .where(Subscriber.email == email).order_by(ConsentRecord.id)).all()]


def delivery_status(delivery_id: int) -> str:
    with fresh() as session:
        return str(session.get(Delivery, delivery_id).status)

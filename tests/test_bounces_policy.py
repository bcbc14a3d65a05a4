"""What a bounce or a complaint does, on a campaign really sent through the test SMTP server:
mapping (VERP, Message-ID, recipient), suppression, soft-bounce counting, complaints as a
withdrawal of consent, counters once per delivery, the campaign's self-pause, idempotence."""

from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import select, update

from mailer.bounces import handling
from mailer.models import BounceEvent, Campaign, CampaignStatus, Delivery, MailingList, Subscriber
from mailer.models.types import utcnow
from mailer.verp import Verp
from tests.helpers_bounces import (Sent, bounce_of, consent_actions, figures, forge, fresh, message_id_of,
                                   send_campaign,
                                   subscription_statuses, suppression_reason)
from tests.conftest import settle_worker
from tests.helpers_engine import launch_and_snapshot, make_campaign, run_all_batches


def receive(session, raw, **kwargs):
    outcome = handling.receive_mail(session, raw, source="smtp", **kwargs)
    session.commit()
    return outcome


def test_hard_bounce_suppresses_and_counts_once(app, session, smtp_server):
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    first = sent[0]
    raw = bounce_of(app, first, "postfix_user_unknown.eml")
    outcome = receive(session, raw)
    assert outcome.verdict == handling.RECORDED and outcome.kinds == ["hard"]
    assert receive(session, raw).verdict == handling.DUPLICATE  # the same report twice
    # another MTA's report about the same delivery is kept, but the campaign counts one bounce
    assert receive(session, bounce_of(app, first, "exim_user_unknown.eml")).verdict == handling.RECORDED
    got = figures(campaign_id)
    assert got["bounces"] == 1 and got["complaints"] == 0 and got["sent"] == 3
    assert got["events"] == {"hard": 2}
    assert got["deliveries"] == {"sent": 2, "bounced": 1}
    assert suppression_reason(first.email) == "bounced"
    assert suppression_reason(sent[1].email) is None
    with fresh() as other:
        event = other.scalar(select(BounceEvent).where(BounceEvent.delivery_id == first.delivery_id)
                             .order_by(BounceEvent.id))
        assert (event.status, event.matched_by, event.source) == ("5.1.1", "verp", "smtp")
        assert "User unknown" in event.diagnostic and event.raw_size == len(raw)
        assert "Undelivered Mail Returned to Sender" in event.raw_excerpt and len(event.raw_sha256) == 64


def test_policy_block_and_soft_bounce_do_not_suppress(app, session, smtp_server):
    campaign_id, sent = send_campaign(session, smtp_server, 2)
    assert receive(session, bounce_of(app, sent[0], "gmail_policy_block.eml")).kinds == ["block"]
    assert receive(session, bounce_of(app, sent[1], "postfix_mailbox_full.eml")).kinds == ["soft"]
    assert suppression_reason(sent[0].email) is None and suppression_reason(sent[1].email) is None
    assert figures(campaign_id)["bounces"] == 2


def test_soft_bounces_suppress_after_the_limit_within_the_window(app, session, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_SOFT_LIMIT", 3)
    _, sent = send_campaign(session, smtp_server, 1)
    messages = [sent[0], send_again(session, smtp_server, "Runda 1"), send_again(session, smtp_server, "Runda 2")]
    for n, item in enumerate(messages):
        assert receive(session, bounce_of(app, item, "postfix_expired_soft.eml")).kinds == ["soft"]
        assert suppression_reason(item.email) == (None if n < 2 else "soft_bounced")


def test_soft_bounces_outside_the_window_do_not_count(app, session, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_SOFT_LIMIT", 2)
    _, sent = send_campaign(session, smtp_server, 1)
    receive(session, bounce_of(app, sent[0], "postfix_mailbox_full.eml"))
    session.execute(update(BounceEvent).values(created_at=utcnow() - timedelta(days=45)))
    session.commit()
    again = send_again(session, smtp_server, "Runda 1")
    receive(session, bounce_of(app, again, "postfix_mailbox_full.eml"))
    assert suppression_reason(sent[0].email) is None


def send_again(session, smtp_server, subject: str) -> Sent:
    """Another campaign to the first list (one subscriber): what it sent."""
    smtp_server.reset()
    lists = list(session.scalars(select(MailingList).order_by(MailingList.id).limit(1)))
    campaign = make_campaign(session, lists, subject)
    session.commit()
    launch_and_snapshot(session, campaign.id)
    run_all_batches(session, campaign.id)
    [received] = smtp_server.wait_for(1)
    settle_worker(current_app._get_current_object())
    row = session.execute(select(Subscriber.email, Subscriber.id, Delivery.id)
                          .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                          .where(Delivery.campaign_id == campaign.id)).one()
    session.commit()
    return Sent(*row, message_id_of(received), received)


def test_complaint_unsubscribes_everywhere_records_and_suppresses(app, session, smtp_server):
    campaign_id, sent = send_campaign(session, smtp_server, 2)
    person = sent[0]
    outcome = receive(session, bounce_of(app, person, "yahoo_arf_complaint.eml"))
    assert outcome.kinds == ["complaint"]
    assert subscription_statuses(person.email) == ["unsubscribed"]
    assert suppression_reason(person.email) == "complaint"
    actions = consent_actions(person.email)
    assert ("complaint", "smtp") in actions and ("unsubscribe", "complaint") in actions
    got = figures(campaign_id)
    assert got["complaints"] == 1 and got["bounces"] == 0
    assert got["deliveries"] == {"sent": 2}  # it was delivered: a complaint is no bounce
    # a complaint after a bounce keeps the stronger reason
    receive(session, bounce_of(app, sent[1], "postfix_user_unknown.eml"))
    receive(session, bounce_of(app, sent[1], "aol_arf_redacted.eml"))
    assert suppression_reason(sent[1].email) == "complaint"
    assert figures(campaign_id)["complaints"] == 2 and figures(campaign_id)["bounces"] == 1


@pytest.mark.parametrize("name", ["vacation_rfc3834.eml", "exchange_out_of_office.eml",
                                  "helpdesk_x_autoreply.eml", "postfix_delayed.eml", "human_reply.eml",
                                  "arf_not_spam.eml"])
def test_what_is_not_a_bounce_changes_nothing(app, session, smtp_server, name):
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    before = figures(campaign_id)
    outcome = receive(session, bounce_of(app, sent[0], name))
    assert outcome.verdict in handling.IGNORED and not outcome.events
    assert figures(campaign_id) == before and suppression_reason(sent[0].email) is None


def test_forged_return_path_changes_nothing(app, session, smtp_server):
    campaign_id, sent = send_campaign(session, smtp_server, 1)
    verp = Verp(app.config)
    forged = forge(verp.return_path("d", sent[0].delivery_id))
    outcome = receive(session, bounce_of(app, sent[0], "postfix_user_unknown.eml", to=forged))
    assert outcome.verdict == handling.FORGED
    other = verp.return_path("d", sent[0].delivery_id + 1000).replace(verp.domain, "elsewhere.example")
    assert receive(session, bounce_of(app, sent[0], "qmail_no_mailbox.eml", to=other)).verdict \
        == handling.RECORDED  # another domain's address is no claim of ours: the Message-ID maps it
    got = figures(campaign_id)
    assert got["events"] == {"hard": 1} and got["bounces"] == 1


def test_fallbacks_message_id_then_recipient(app, session, smtp_server, monkeypatch):
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    plain = Verp(app.config).address  # bounces@domain: an MTA that dropped the VERP token
    by_id = receive(session, bounce_of(app, sent[0], "sendmail_user_unknown.eml", to=plain))
    raw = bounce_of(app, sent[1], "postfix_user_unknown.eml", to=plain).replace(
        sent[1].message_id.encode(), b"<unknown@elsewhere.example>")
    by_recipient = receive(session, raw)
    assert by_id.verdict == by_recipient.verdict == handling.RECORDED
    with fresh() as other:
        matched = dict(other.execute(select(BounceEvent.delivery_id, BounceEvent.matched_by)).all())
    assert matched == {sent[0].delivery_id: "message-id", sent[1].delivery_id: "recipient"}
    stranger = bounce_of(app, sent[2], "postfix_user_unknown.eml", to=plain).replace(
        sent[2].email.encode(), b"nobody@elsewhere.example").replace(
        sent[2].message_id.encode(), b"<unknown@elsewhere.example>")
    assert receive(session, stranger).verdict == handling.UNMATCHED
    monkeypatch.setitem(app.config, "BOUNCE_REQUIRE_VERP", True)
    assert receive(session, bounce_of(app, sent[2], "exim_user_unknown.eml", to=plain)).verdict \
        == handling.UNMATCHED
    assert figures(campaign_id)["bounces"] == 2


def test_bounce_of_a_notice_maps_to_the_subscriber(app, session, smtp_server):
    _, sent = send_campaign(session, smtp_server, 1)
    to = Verp(app.config).return_path("s", sent[0].subscriber_id)
    outcome = receive(session, bounce_of(app, sent[0], "gmail_does_not_exist.eml", to=to))
    assert outcome.kinds == ["hard"] and suppression_reason(sent[0].email) == "bounced"
    with fresh() as other:
        event = other.scalar(select(BounceEvent))
        assert event.delivery_id is None and event.subscriber_id == sent[0].subscriber_id


def test_rates_past_the_threshold_pause_a_sending_campaign_once(app, session, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_PAUSE_MIN_SENT", 5)
    monkeypatch.setitem(app.config, "BOUNCE_PAUSE_RATE", 0.25)
    monkeypatch.setitem(app.config, "COMPLAINT_PAUSE_RATE", 0.5)
    campaign_id, sent = send_campaign(session, smtp_server, 6)
    # the engine finished it; say it is still sending (a large campaign, bounces coming back early)
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=CampaignStatus.SENDING))
    session.commit()
    receive(session, bounce_of(app, sent[0], "postfix_user_unknown.eml"))
    assert figures(campaign_id)["status"] == "sending"  # 1 of 6 < 25 %
    receive(session, bounce_of(app, sent[1], "office365_recipient_not_found.eml"))
    got = figures(campaign_id)  # 2 of 6 > 25 %
    assert got["status"] == "paused" and got["reason"] == handling.BOUNCE_PAUSE_REASON
    # a paused (or finished) campaign is left alone by the conditional UPDATE
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=CampaignStatus.SENT,
                                                                              status_reason=""))
    session.commit()
    receive(session, bounce_of(app, sent[2], "qmail_no_mailbox.eml"))
    assert figures(campaign_id)["status"] == "sent"


def test_complaint_rate_pauses_too(app, session, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_PAUSE_MIN_SENT", 2)
    monkeypatch.setitem(app.config, "COMPLAINT_PAUSE_RATE", 0.3)
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=CampaignStatus.SENDING))
    session.commit()
    receive(session, bounce_of(app, sent[0], "yahoo_arf_complaint.eml"))
    got = figures(campaign_id)
    assert got["status"] == "paused" and got["reason"] == handling.COMPLAINT_PAUSE_REASON

"""Editing an event or a template that a campaign in progress uses says what the edit does:
a sending campaign keeps the content frozen at its launch, a scheduled one takes the edit."""

from datetime import datetime, timedelta, timezone

from mailer import campaign_mail, content_usage
from mailer.email_templates import ANNOUNCEMENT
from mailer.models import Campaign, CampaignStatus, Template
from tests.helpers_engine import make_audience, make_campaign
from tests.helpers_staff import login_as

FROZEN = "kampanie, które już wysyłają"
SCHEDULED = "zaplanowane kampanie"


def _two_campaigns(session):
    """One campaign sending (its content frozen; no sender queued, so it stays sending) and
    one scheduled, announcing the same event with the built-in announcement (no template chosen)."""
    lists = make_audience(session, 2)
    sending = make_campaign(session, lists, subject="Wysyłana")
    campaign_mail.freeze(session, sending)
    sending.status = CampaignStatus.SENDING
    session.commit()
    event_id = sending.campaign_events[0].event_id
    scheduled = make_campaign(session, lists, subject="Zaplanowana")
    scheduled.campaign_events[0].event_id = event_id
    scheduled.status = CampaignStatus.SCHEDULED
    scheduled.scheduled_at = datetime.now(timezone.utc) + timedelta(days=1)
    session.commit()
    return session.get(Campaign, sending.id), scheduled, event_id


def _page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_event_and_template_pages_name_the_campaigns_in_progress(app, client, session, smtp_server):
    sending, scheduled, event_id = _two_campaigns(session)
    login_as(client, session, "editor")

    announcement = session.query(Template).filter_by(name=ANNOUNCEMENT).one()
    for path in (f"/admin/events/{event_id}", f"/admin/templates/{announcement.id}",
                 f"/admin/templates/{announcement.layout_id}"):
        page = _page(client, path)
        assert FROZEN in page and SCHEDULED in page, path
        assert f"/admin/campaigns/{sending.id}\"" in page and f"/admin/campaigns/{scheduled.id}\"" in page

    usage = content_usage.of_event(session, event_id)
    assert [c.id for c in usage.frozen] == [sending.id] and [c.id for c in usage.scheduled] == [scheduled.id]

    # Once both are over, nothing is said.
    for campaign in (sending, scheduled):
        campaign.status = CampaignStatus.SENT
    session.commit()
    page = _page(client, f"/admin/events/{event_id}")
    assert FROZEN not in page and SCHEDULED not in page
    assert not content_usage.of_template(session, announcement.id)


def test_a_template_no_campaign_in_progress_uses_says_nothing(app, client, session, smtp_server):
    _two_campaigns(session)
    login_as(client, session, "editor")
    other = session.query(Template).filter(Template.name != ANNOUNCEMENT,
                                           Template.kind == "content").first()
    page = _page(client, f"/admin/templates/{other.id}")
    assert FROZEN not in page and SCHEDULED not in page

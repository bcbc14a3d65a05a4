"""Campaign pages for staff: a failed test send keeps what was typed and says why, duplicates,
and the list of a campaign's deliveries."""

import html

import pytest

from mailer import campaigns
from mailer.models import Campaign
from tests.helpers_content import log_in, make_event, make_staff, post


@pytest.fixture
def editor_client(client, session):
    log_in(client, make_staff(session))
    return client


def draft(session) -> Campaign:
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    session.commit()
    return campaign


def test_a_malformed_test_address_keeps_the_input_and_is_named(editor_client, session):
    campaign = draft(session)
    typed = "ok@example.org, zly@@adres.pl"
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/test", {"addresses": typed})
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert f'value="{typed}"' in page
    assert "„zly@@adres.pl” nie jest poprawnym adresem e-mail." in page
    session.expire_all()
    assert session.get(Campaign, campaign.id).test_report is None  # nothing queued


def test_a_refused_test_address_is_shown_with_the_servers_answer(editor_client, session, smtp_server):
    campaign = draft(session)
    smtp_server.handler.replies["nikt@example.org"] = "550 5.1.1 No such user"
    campaigns.send_test(session, campaign.id, ["redakcja@example.org", "nikt@example.org"])
    page = editor_client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    report = page.split('id="test-report"')[1].split("</div>")[0]
    assert "redakcja@example.org" in report and "przyjęty" in report
    assert "nikt@example.org" in report and "odrzucony przez serwer pocztowy" in report and "550" in report
    assert 'value="redakcja@example.org, nikt@example.org"' in page  # the addresses stay in the form


def test_a_queued_test_says_it_is_on_its_way(editor_client, session):
    campaign = draft(session)
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/test", {"addresses": "a@example.org"})
    assert response.status_code == 302
    page = editor_client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Ostatni test jest w drodze." in page

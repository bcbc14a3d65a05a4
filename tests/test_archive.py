"""Public pages: view in browser (/m/<token>), the opt-in archive, calendar files."""

import pytest

from mailer import campaign_mail, campaigns, links, tokens
from mailer.models import CampaignStatus
from tests.helpers_content import make_event, make_list, make_subscriber


@pytest.fixture
def sent_campaign(session):
    mailing_list = make_list(session)
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id],
                                         list_ids=[mailing_list.id])
    campaign_mail.freeze(session, campaign)  # as at launch
    campaign.status = CampaignStatus.SENT
    session.commit()
    return campaign


def test_view_in_browser_as_the_recipient(client, session, sent_campaign):
    subscriber = make_subscriber(session, "ola@example.org", sent_campaign.lists[0], name="Ola Żak")
    url = links.view_url(sent_campaign.id, subscriber.id)
    response = client.get(url.removeprefix("http://localhost"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Ola Żak" in page and "Koncert kolęd na Rynku" in page
    assert "/u/" in page  # the recipient's own unsubscribe link
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_view_in_browser_sample_recipient_shows_nothing(client, sent_campaign):
    """No link names the sample recipient any more (previews and test copies link nowhere);
    an old one shows nothing rather than the campaign to whoever holds it."""
    response = client.get(f"/m/{tokens.sign(tokens.VIEW, [sent_campaign.id, 0])}")
    assert response.status_code == 404


@pytest.mark.parametrize("token", [
    "forged", lambda c: tokens.sign(tokens.UNSUBSCRIBE, [c, 1]),
    lambda c: tokens.sign(tokens.VIEW, "nonsense"), lambda c: tokens.sign(tokens.VIEW, [c, True]),
])
def test_forged_or_foreign_tokens_get_a_generic_4xx(client, sent_campaign, token):
    token = token(sent_campaign.id) if callable(token) else token
    response = client.get(f"/m/{token}")
    assert response.status_code == 400
    assert "Ten link jest nieprawidłowy." in response.get_data(as_text=True)


def test_token_of_a_deleted_campaign_is_404(client):
    assert client.get(f"/m/{tokens.sign(tokens.VIEW, [999, 0])}").status_code == 404


def test_archive_shows_only_sent_and_archived(client, session, sent_campaign):
    draft = campaigns.create_campaign(session, event_ids=[make_event(session, "Szkic").id],
                                      list_ids=[])
    draft.subject, draft.archived = "Szkic kampanii", True
    session.commit()
    assert "Koncert kolęd" not in client.get("/archive").get_data(as_text=True)
    assert client.get(f"/archive/{sent_campaign.id}").status_code == 404
    sent_campaign.archived = True
    session.commit()
    listing = client.get("/archive").get_data(as_text=True)
    assert "Koncert kolęd na Rynku" in listing and "Szkic kampanii" not in listing
    assert client.get(f"/archive/{sent_campaign.id}").status_code == 200
    mail = client.get(f"/archive/{sent_campaign.id}/mail").get_data(as_text=True)
    assert "Koncert kolęd na Rynku" in mail and "Anna Kowalska" not in mail
    assert client.get(f"/archive/{draft.id}").status_code == 404
    assert client.get(f"/archive/{draft.id}/mail").status_code == 404


def test_view_copy_of_an_erased_subscriber_shows_no_personal_data(client, session, sent_campaign):
    response = client.get(f"/m/{tokens.sign(tokens.VIEW, [sent_campaign.id, 4242])}")
    assert response.status_code == 200
    assert "Anna Kowalska" not in response.get_data(as_text=True)


def test_the_archive_copy_speaks_to_nobody(client, session, sent_campaign):
    """No "you receive this because you are subscribed", no unsubscribe or view link: the
    layout's footer is dropped from the public copy; the content stays."""
    sent_campaign.archived = True
    session.commit()
    mail = client.get(f"/archive/{sent_campaign.id}/mail").get_data(as_text=True)
    assert "Koncert kolęd na Rynku" in mail and mail.lower().startswith("<!doctype html>")
    for personal in ("Otrzymujesz tę wiadomość", "Wypisz się", "Otwórz w przeglądarce", "/u/", "#archive-copy",
                     'class="footer"'):
        assert personal not in mail, personal
    subscriber = make_subscriber(session, "ola@example.org", sent_campaign.lists[0], name="Ola Żak")
    own = client.get(links.view_url(sent_campaign.id, subscriber.id).removeprefix("http://localhost"))
    assert "Wypisz się" in own.get_data(as_text=True)  # the recipient's own copy keeps its footer


def test_the_home_page_links_the_archive_once_it_has_entries(client, session, sent_campaign):
    assert "/archive" not in client.get("/").get_data(as_text=True)
    sent_campaign.archived = True
    session.commit()
    home = client.get("/").get_data(as_text=True)
    assert 'href="/archive"' in home and "Przeczytaj wysłane przez nas newslettery" in home


def test_the_archive_checkbox_is_worded_by_state(client, session, sent_campaign):
    from tests.helpers_content import log_in, make_staff, post

    log_in(client, make_staff(session))
    page = client.get(f"/admin/campaigns/{sent_campaign.id}").get_data(as_text=True)
    assert "Pokaż w publicznym archiwum<" in page and "po wysłaniu" not in page
    response = post(client, f"/admin/campaigns/{sent_campaign.id}/archive", {"archived": "1"},
                    follow_redirects=True)
    assert "Widoczna w publicznym archiwum." in response.get_data(as_text=True)
    sent_campaign.status = CampaignStatus.CANCELLED
    session.commit()
    page = client.get(f"/admin/campaigns/{sent_campaign.id}").get_data(as_text=True)
    assert "Anulowana kampania nie pojawia się w publicznym archiwum." in page and 'name="archived"' not in page

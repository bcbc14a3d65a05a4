"""A staff preview never contains a link that acts on a real subscriber (STANDARDS 39), and a
draft is never readable through a "view in browser" link, nor are later edits of a sent one."""

import re

import pytest
from sqlalchemy import select

from mailer import campaign_mail, campaigns, links, sending, tokens
from mailer.models import Campaign, Role, Subscription, SubscriptionStatus, Template
from tests.helpers_content import make_event, make_list, make_subscriber
from tests.helpers_staff import login_as, post

LINK = re.compile(r"http://localhost(/(?:u|m|confirm)/[A-Za-z0-9._-]+)")


def acting_links(*parts: str) -> list[str]:
    return [path for part in parts for path in LINK.findall(part)]


@pytest.fixture
def campaign(session):
    mailing_list = make_list(session)
    for n in range(3):
        make_subscriber(session, f"osoba{n}@example.org", mailing_list, name=f"Osoba {n}")
    item = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[mailing_list.id])
    session.commit()
    return item


@pytest.mark.parametrize("role", [Role.EDITOR, Role.ADMIN])
def test_preview_as_any_subscriber_holds_no_acting_link(client, session, campaign, role):
    login_as(client, session, role)
    people = [str(s.subscriber_id) for s in session.scalars(select(Subscription))]
    emails = [f"osoba{n}@example.org" for n in range(3)]
    for who in ["", *people, *emails, "OSOBA1@EXAMPLE.ORG"]:
        for part in ("html", "text"):
            response = client.get(f"/admin/campaigns/{campaign.id}/preview", query_string={"as": who, "part": part})
            assert response.status_code == 200
            assert not acting_links(response.get_data(as_text=True)), (who, part)


def test_preview_links_are_inert_for_the_domain_call_too(session, campaign):
    for who in (None, "osoba0@example.org"):
        rendered = campaigns.preview(session, campaign.id, who)
        assert not acting_links(rendered.html, rendered.text)
        assert "#unsubscribe-preview" in rendered.html


def test_a_recipients_own_copy_keeps_its_links(client, session, campaign):
    campaign_mail.freeze(session, campaign)
    campaign.status = "sent"
    session.commit()
    sid = session.scalars(select(Subscription.subscriber_id)).first()
    page = client.get(links.view_url(campaign.id, sid).removeprefix("http://localhost")).get_data(as_text=True)
    assert any(path.startswith("/u/") for path in acting_links(page))


def test_test_copies_link_to_nobody(editor_client_factory, session, campaign, smtp_server, celery_worker):
    client = editor_client_factory()
    assert post(client, f"/admin/campaigns/{campaign.id}/test", {"addresses": "test@example.org"},
                f"/admin/campaigns/{campaign.id}").status_code == 302
    [received] = smtp_server.wait_for(1)
    body = received.message.get_body(("plain",)).get_content() + received.message.get_body(("html",)).get_content()
    found = acting_links(body) + acting_links(str(received.message["List-Unsubscribe"]))
    assert not any(path.startswith(("/m/", "/confirm/")) for path in found)
    for path in (p for p in found if p.startswith("/u/")):
        assert tokens.read_unsubscribe_token(path[3:])[0] == 0  # names no subscriber
    assert f"http://localhost/admin/campaigns/{campaign.id}" in body  # "view in browser": the staff page


def test_a_drafts_view_link_shows_nothing(client, session, campaign):
    sid = session.scalars(select(Subscription.subscriber_id)).first()
    for subscriber_id in (0, sid):
        url = links.view_url(campaign.id, subscriber_id).removeprefix("http://localhost")
        assert client.get(url).status_code == 404


def test_a_sent_copy_does_not_show_later_edits(client, session, campaign, celery_worker):
    sending.launch(session, campaign.id)
    session.commit()
    sid = session.scalars(select(Subscription.subscriber_id)).first()
    url = links.view_url(campaign.id, sid).removeprefix("http://localhost")
    before = client.get(url).get_data(as_text=True)
    template = session.get(Template, session.get(Campaign, campaign.id).template_id)
    template.html = "<p>ZMIENIONE PÓŹNIEJ</p>"
    session.commit()
    after = client.get(url).get_data(as_text=True)
    assert "ZMIENIONE" not in after and before == after


@pytest.fixture
def editor_client_factory(app, session):
    def make():
        client = app.test_client()
        login_as(client, session, Role.EDITOR)
        return client
    return make


def test_subscriber_status_is_untouched_by_previews(client, session, campaign, fresh):
    login_as(client, session, Role.EDITOR)
    for sub in session.scalars(select(Subscription)).all():
        client.get(f"/admin/campaigns/{campaign.id}/preview", query_string={"as": str(sub.subscriber_id)})
    with fresh() as reader:
        assert {s.status for s in reader.scalars(select(Subscription))} == {SubscriptionStatus.CONFIRMED}

"""Campaign pages for staff: a failed test send keeps what was typed and says why, duplicates,
and the list of a campaign's deliveries."""

import csv
import html
import re

import pytest

from mailer import campaigns
from mailer.models import Campaign
from tests.helpers_api import admin_token  # noqa: F401
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


@pytest.mark.parametrize("english", [False, True], ids=["one language", "two languages"])
def test_a_refused_test_address_is_shown_with_the_servers_answer(editor_client, session, smtp_server, english):
    """With an English version each address gets two copies: its line is still one answer."""
    campaign = draft(session)
    if english:
        campaign.subject_en = "Carol concert"
        session.commit()
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
    report = page.split('id="test-report"')[1].split("</div>")[0]
    # queued, or (a worker left running by another test was quick) answered already
    assert "Ostatni test jest w drodze" in report or ("a@example.org" in report and "przyjęty" in report)


# --- duplicates -----------------------------------------------------------------------------

def test_duplicate_is_a_new_draft_without_deliveries_or_schedule(editor_client, session, fresh):
    from sqlalchemy import func, select

    from mailer import lists
    from mailer.models import CampaignStatus, Delivery
    from tests.helpers_engine import launch_and_snapshot, make_audience
    from tests.helpers_engine import make_campaign as engine_campaign

    audience = make_audience(session, 3, lists=2)
    original = engine_campaign(session, audience, subject="Jarmark świąteczny")
    original.preheader = "Na Rynku"
    session.commit()
    launch_and_snapshot(session, original.id)
    session.commit()
    lists.set_archived(session, audience[1].id, True)
    session.commit()
    response = post(editor_client, f"/admin/campaigns/{original.id}/duplicate", {})
    assert response.status_code == 302
    copy_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    check = fresh()
    copy = check.get(Campaign, copy_id)
    assert copy.id != original.id and copy.status == CampaignStatus.DRAFT
    assert copy.subject == "Kopia: Jarmark świąteczny" and copy.preheader == "Na Rynku"
    assert [item.id for item in copy.lists] == [audience[0].id]  # the archived list left out
    assert [e.event_id for e in copy.campaign_events] == [e.event_id for e in check.get(Campaign, original.id).campaign_events]
    assert copy.scheduled_at is None and copy.started_at is None and copy.sent_count == 0 and copy.test_report is None
    assert check.scalar(select(func.count(Delivery.id)).where(Delivery.campaign_id == copy_id)) == 0
    assert check.scalar(select(func.count(Delivery.id)).where(Delivery.campaign_id == original.id)) == 3
    page = editor_client.get(f"/admin/campaigns/{copy_id}").get_data(as_text=True)
    assert "To nowy szkic skopiowany z kampanii." in page


def test_clone_a_template_even_a_built_in_one(editor_client, session, fresh):
    from sqlalchemy import select

    from mailer.models import Template

    builtin = session.scalar(select(Template).where(Template.builtin.is_(True)).limit(1))
    first = post(editor_client, f"/admin/templates/{builtin.id}/clone", {})
    second = post(editor_client, f"/admin/templates/{builtin.id}/clone", {})
    assert first.status_code == second.status_code == 302
    check = fresh()
    copies = check.scalars(select(Template).where(Template.name.like("Kopia: %")).order_by(Template.id)).all()
    assert [c.name for c in copies] == [f"Kopia: {builtin.name}", f"Kopia: {builtin.name} (2)"]
    assert all(not c.builtin and c.html == builtin.html and c.kind == builtin.kind for c in copies)
    page = editor_client.get(f"/admin/templates/{builtin.id}").get_data(as_text=True)
    assert "Utwórz kopię" in page


# --- deliveries -----------------------------------------------------------------------------

def sent_campaign(session):
    from mailer.models import Delivery, DeliveryStatus
    from tests.helpers_engine import launch_and_snapshot, make_audience
    from tests.helpers_engine import make_campaign as engine_campaign

    audience = make_audience(session, 5)
    campaign = engine_campaign(session, audience, subject="Koncert")
    session.commit()
    launch_and_snapshot(session, campaign.id)
    rows = session.query(Delivery).filter_by(campaign_id=campaign.id).order_by(Delivery.id).all()
    rows[0].status, rows[1].status = DeliveryStatus.SENT, DeliveryStatus.SENT
    rows[2].status, rows[2].last_error = DeliveryStatus.FAILED, "550 5.1.1 No such user"
    rows[3].status = DeliveryStatus.BOUNCED
    session.commit()
    return campaign, rows


def test_deliveries_page_with_reasons_filter_and_pages(editor_client, session, monkeypatch):
    from mailer import campaign_deliveries

    campaign, rows = sent_campaign(session)
    monkeypatch.setattr(campaign_deliveries, "PAGE", 2)
    page = editor_client.get(f"/admin/campaigns/{campaign.id}/deliveries")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert text.count("<tr>") == 3  # header and two rows
    following = re.search(r'href="([^"]+after=\d+[^"]*)"', text).group(1).replace("&amp;", "&")
    text = editor_client.get(following).get_data(as_text=True)
    assert "550 5.1.1 No such user" in text and "nieudana" in text
    failed = editor_client.get(f"/admin/campaigns/{campaign.id}/deliveries?status=failed").get_data(as_text=True)
    table = failed.split('id="deliveries"')[1]
    assert table.count("<tr>") == 2 and "550 5.1.1" in table
    assert editor_client.get(f"/admin/campaigns/{campaign.id}/deliveries?status=nope").status_code == 400
    assert editor_client.get(f"/admin/campaigns/{campaign.id}/deliveries?after=x").status_code == 400
    assert editor_client.get("/admin/campaigns/424242/deliveries").status_code == 404
    assert "Pobierz CSV" not in failed  # editors: no CSV of addresses
    assert post(editor_client, f"/admin/campaigns/{campaign.id}/deliveries.csv", {}).status_code == 403


def test_deliveries_csv_for_admins(client, session):
    from tests.helpers_staff import login_as
    from tests.helpers_staff import post as staff_post

    campaign, rows = sent_campaign(session)
    login_as(client, session)
    response = staff_post(client, f"/admin/campaigns/{campaign.id}/deliveries.csv", {"status": "failed"},
                          f"/admin/campaigns/{campaign.id}/deliveries")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "email,name,status,attempts,sent_at,error,message_id"
    assert len(lines) == 2 and "failed" in lines[1] and "550 5.1.1 No such user" in lines[1]
    assert lines[1].endswith(",")  # it never went out: no Message-ID


def test_the_deliveries_csv_gives_the_message_id_each_copy_went_out_with(client, session):
    """Not stored, made as the engine made it: a bounce quoting it finds the delivery."""
    from mailer.bounces.handling import delivery_by_message_id
    from mailer.models.types import utcnow
    from tests.helpers_staff import login_as
    from tests.helpers_staff import post as staff_post

    campaign, rows = sent_campaign(session)
    rows[0].sent_at = utcnow()
    session.commit()
    login_as(client, session)
    response = staff_post(client, f"/admin/campaigns/{campaign.id}/deliveries.csv", {"status": "sent"},
                          f"/admin/campaigns/{campaign.id}/deliveries")
    first = next(csv.DictReader(response.get_data(as_text=True).lstrip("\ufeff").splitlines()))
    stamp = int(campaign.started_at.timestamp())
    assert first["message_id"] == f"<{campaign.id}.{rows[0].id}.{stamp}@{client.application.config['MAIL_DOMAIN']}>"
    assert delivery_by_message_id(session, first["message_id"]).id == rows[0].id


def test_anonymous_cannot_see_deliveries(client, session):
    campaign, _rows = sent_campaign(session)
    assert client.get(f"/admin/campaigns/{campaign.id}/deliveries").status_code == 302


def test_the_api_duplicates_and_lists_deliveries(client, session, admin_token):  # noqa: F811
    from tests.helpers_api import Api, assert_error

    campaign, rows = sent_campaign(session)
    api = Api(client, admin_token)
    copy = api.post(f"/campaigns/{campaign.id}/duplicate")
    assert copy.status_code == 201 and copy.get_json()["status"] == "draft"
    assert copy.get_json()["subject"] == "Kopia: Koncert"
    first = api.get(f"/campaigns/{campaign.id}/deliveries").get_json()
    assert len(first["items"]) == 5 and first["next_after"] is None
    failed = api.get(f"/campaigns/{campaign.id}/deliveries?status=failed").get_json()["items"]
    assert [(d["status"], d["error"]) for d in failed] == [("failed", "550 5.1.1 No such user")]
    assert_error(api.get(f"/campaigns/{campaign.id}/deliveries?status=nope"), 400)
    assert_error(api.get("/campaigns/424242/deliveries"), 404)

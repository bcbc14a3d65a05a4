"""Campaigns: compose with prefilled subject, edit, schedule, preview, test sends and sending
through the staff pages with a real worker and SMTP server."""

import html
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from mailer import campaigns
from mailer.errors import Conflict, InvalidInput
from mailer.models import Campaign, CampaignStatus, Subscriber, Subscription, SubscriptionStatus, Template
from mailer.recipients import NoRecipients
from tests.helpers_content import log_in, make_event, make_list, make_staff, make_subscriber, post


@pytest.fixture
def editor(session):
    return make_staff(session)


@pytest.fixture
def editor_client(client, editor):
    log_in(client, editor)
    return client


def wait_for_status(session, campaign_id: int, status: str, timeout: float = 60) -> Campaign:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        campaign = session.get(Campaign, campaign_id)
        if campaign.status == status:
            return campaign
        time.sleep(0.1)
    raise AssertionError(f"campaign {campaign_id} is {campaign.status}, not {status}")


def test_one_event_prefills_subject_preheader_and_announcement(session):
    event = make_event(session, title="Koncert kolęd", place="Rynek Główny")
    campaign = campaigns.create_campaign(session, event_ids=[event.id], list_ids=[])
    assert campaign.subject == "Koncert kolęd"
    assert campaign.preheader.endswith(" · Rynek Główny")
    assert str(event.starts_at.year) in campaign.preheader
    assert campaign.template.name == "Zapowiedź wydarzenia"
    assert campaign.status == CampaignStatus.DRAFT


def test_several_events_make_a_digest(session):
    first, second = make_event(session, "Koncert"), make_event(session, "Wystawa", days=12)
    campaign = campaigns.create_campaign(session, event_ids=[first.id, second.id], list_ids=[],
                                         locale="en")
    assert campaign.subject == "Upcoming events"
    assert campaign.preheader == "Koncert · Wystawa"
    assert campaign.template.name == "Przegląd wydarzeń"
    assert [ce.event_id for ce in campaign.campaign_events] == [first.id, second.id]


@pytest.mark.parametrize("kwargs, field", [
    ({"event_ids": []}, "event_ids"),
    ({"event_ids": [999]}, "event_ids"),
    ({"event_ids": ["x"]}, "event_ids"),
    ({"list_ids": [999]}, "list_ids"),
    ({"subject": "Temat\r\nBcc: x@example.org"}, "subject"),
    ({"subject": "x" * 201}, "subject"),
    ({"subject": "  "}, "subject"),
    ({"locale": "de"}, "locale"),
])
def test_bad_compose_input(session, kwargs, field):
    event = make_event(session)
    values = {"event_ids": [event.id], "list_ids": [], **kwargs}
    with pytest.raises(InvalidInput) as caught:
        campaigns.create_campaign(session, **values)
    assert caught.value.field == field
    session.rollback()
    assert session.query(Campaign).count() == 0


def test_a_layout_is_not_a_content_template(session):
    event = make_event(session)
    layout = session.query(Template).filter_by(name="Układ podstawowy").one()
    with pytest.raises(InvalidInput):
        campaigns.create_campaign(session, event_ids=[event.id], list_ids=[], template_id=layout.id)


def test_update_and_conflict_once_sent(session):
    event, mailing_list = make_event(session), make_list(session)
    campaign = campaigns.create_campaign(session, event_ids=[event.id], list_ids=[])
    campaigns.update_campaign(session, campaign.id, {"subject": "Nowy temat",
                                                     "list_ids": [mailing_list.id]})
    assert campaign.subject == "Nowy temat" and campaign.lists == [mailing_list]
    campaign.status = CampaignStatus.SENT
    with pytest.raises(Conflict):
        campaigns.update_campaign(session, campaign.id, {"subject": "Za późno"})
    campaigns.update_campaign(session, campaign.id, {"archived": True})
    assert campaign.archived


def test_schedule_and_unschedule(session):
    event, mailing_list = make_event(session), make_list(session)
    make_subscriber(session, "odbiorca@example.org", mailing_list)
    campaign = campaigns.create_campaign(session, event_ids=[event.id], list_ids=[mailing_list.id])
    with pytest.raises(InvalidInput):
        campaigns.schedule(session, campaign.id, "2020-01-01T10:00")
    with pytest.raises(InvalidInput):
        campaigns.schedule(session, campaign.id, "kiedyś")
    campaigns.schedule(session, campaign.id, "2030-06-01T10:00")  # Warsaw summer time
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.scheduled_at == datetime(2030, 6, 1, 8, 0, tzinfo=timezone.utc)
    campaigns.unschedule(session, campaign.id)
    assert campaign.status == CampaignStatus.DRAFT and campaign.scheduled_at is None
    with pytest.raises(Conflict):
        campaigns.unschedule(session, campaign.id)


def test_without_lists_it_cannot_be_scheduled(session):
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    with pytest.raises(InvalidInput):
        campaigns.schedule(session, campaign.id, datetime.now(timezone.utc) + timedelta(days=1))


@pytest.mark.parametrize("addresses", ["", "nie-adres", "a@example.org\r\nBcc: b@example.org",
                                       ",".join(f"t{i}@example.org" for i in range(11)), 42])
def test_bad_test_addresses(session, addresses):
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    with pytest.raises(InvalidInput):
        campaigns.request_test(session, campaign.id, addresses)


def test_preview_as_a_subscriber(session):
    mailing_list = make_list(session)
    make_subscriber(session, "jan@example.org", mailing_list, name="Jan Łęcki")
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id],
                                         list_ids=[mailing_list.id])
    sample = campaigns.preview(session, campaign.id)
    assert "Anna Kowalska" in sample.text
    as_jan = campaigns.preview(session, campaign.id, "jan@example.org")
    assert "Jan Łęcki" in as_jan.text
    # A preview never holds a working link of the subscriber it shows (STANDARDS 39).
    assert "/u/" not in as_jan.html + as_jan.text and "/m/" not in as_jan.html + as_jan.text
    with pytest.raises(InvalidInput):
        campaigns.preview(session, campaign.id, "nikt@example.org")


def test_pages_compose_preview_and_bad_input(editor_client, session):
    event, mailing_list = make_event(session, title="Koncert kolęd"), make_list(session)
    assert editor_client.get("/admin/campaigns").status_code == 200
    form = editor_client.get(f"/admin/campaigns/new?event_ids={event.id}").get_data(as_text=True)
    assert f'value="{event.id}" checked' in form
    response = post(editor_client, "/admin/campaigns/new", {"event_ids": [], "list_ids": []})
    assert response.status_code == 400
    assert "Wybierz co najmniej jedno wydarzenie." in response.get_data(as_text=True)
    response = post(editor_client, "/admin/campaigns/new",
                    {"event_ids": [event.id], "list_ids": [mailing_list.id], "locale": "pl"})
    assert response.status_code == 302
    campaign = session.query(Campaign).one()
    detail = editor_client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'value="Koncert kolęd"' in detail
    html = editor_client.get(f"/admin/campaigns/{campaign.id}/preview")
    assert html.status_code == 200 and "Koncert kolęd" in html.get_data(as_text=True)
    text = editor_client.get(f"/admin/campaigns/{campaign.id}/preview?part=text")
    assert "Koncert kolęd" in text.get_data(as_text=True)
    assert editor_client.get(f"/admin/campaigns/{campaign.id}/preview?as=nikt@x.pl").status_code == 400
    response = post(editor_client, f"/admin/campaigns/{campaign.id}",
                    {"subject": "Zły\nnagłówek", "event_ids": [event.id], "list_ids": [],
                     "locale": "pl"})
    assert response.status_code == 400
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/test", {"addresses": "zły adres"})
    assert response.status_code == 400
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/schedule", {"scheduled_at": "2001-01-01T10:00"})
    assert response.status_code == 400
    session.expire_all()
    assert session.get(Campaign, campaign.id).subject == "Koncert kolęd"
    assert session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT
    assert editor_client.get("/admin/campaigns/999").status_code == 404


def test_send_test_through_the_worker(editor_client, session, smtp_server, celery_worker):
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    session.commit()
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/test",
                    {"addresses": "test1@example.org, Test2@Example.org"})
    assert response.status_code == 302
    received = smtp_server.wait_for(2)
    assert sorted(r.recipients[0] for r in received) == ["test1@example.org", "test2@example.org"]
    message = received[0].message
    assert message["subject"] == "[TEST] Koncert kolęd na Rynku"
    assert message["List-Unsubscribe"].startswith("<http://localhost/u/")
    assert "Zażółć gęślą jaźń" in message.get_body(("plain",)).get_content()


def test_send_now_and_progress(editor_client, session, smtp_server, celery_worker):
    mailing_list = make_list(session)
    for i in range(3):
        make_subscriber(session, f"odbiorca{i}@example.org", mailing_list)
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id],
                                         list_ids=[mailing_list.id])
    session.commit()
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/send", {})
    assert response.status_code == 302
    smtp_server.wait_for(3)
    wait_for_status(session, campaign.id, "sent")
    progress = editor_client.get(f"/admin/campaigns/{campaign.id}/progress").get_json()
    assert progress["status"] == "sent" and progress["sent"] == 3 and progress["queued"] == 0
    page = editor_client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert "100 %" in page
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/pause", {})
    assert response.status_code == 302  # a flash explains the conflict; nothing changes
    assert wait_for_status(session, campaign.id, "sent")


@pytest.mark.parametrize("method, path", [
    ("get", "/admin/campaigns"), ("get", "/admin/campaigns/new"), ("post", "/admin/campaigns/new"),
    ("get", "/admin/campaigns/1"), ("post", "/admin/campaigns/1"),
    ("get", "/admin/campaigns/1/preview"), ("get", "/admin/campaigns/1/progress"),
    ("post", "/admin/campaigns/1/test"), ("post", "/admin/campaigns/1/schedule"),
    ("post", "/admin/campaigns/1/send"), ("post", "/admin/campaigns/1/cancel"),
    ("post", "/admin/campaigns/1/archive"), ("get", "/admin/templates"),
    ("get", "/admin/templates/new"), ("post", "/admin/templates/1/restore"),
    ("post", "/admin/templates/preview"), ("post", "/admin/events/1/delete"),
])
def test_anonymous_staff_requests_are_refused(client, session, smtp_server, method, path):
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    session.commit()
    response = getattr(client, method)(path.replace("/1", f"/{campaign.id}", 1))
    assert response.status_code in (302, 400, 401)  # to the login page, or no CSRF token
    assert "/admin/login" in response.headers.get("Location", "/admin/login")
    session.expire_all()
    assert session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT
    assert not smtp_server.messages


def test_send_test_reports_temporary_failures_for_a_retry(session, smtp_server):
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    smtp_server.handler.replies["busy@example.org"] = "451 4.3.0 Try again later"
    smtp_server.handler.replies["gone@example.org"] = "550 5.1.1 No such user"
    with pytest.raises(OSError):
        campaigns.send_test(session, campaign.id, ["busy@example.org", "ok@example.org"])
    campaigns.send_test(session, campaign.id, ["gone@example.org"])  # permanent: not retried
    assert [m.recipients for m in smtp_server.messages] == [["ok@example.org"]]


def test_campaign_page_in_both_languages(editor_client, session):
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    session.commit()
    polish = editor_client.get(f"/admin/campaigns/{campaign.id}?lang=pl").get_data(as_text=True)
    assert "Wyślij test" in polish and "Wyślij teraz" in polish and "Podgląd" in polish
    english = editor_client.get(f"/admin/campaigns/{campaign.id}?lang=en").get_data(as_text=True)
    assert "Send test" in english and "Send now" in english and "Wyślij" not in english


def test_schedule_and_unschedule_through_the_page(editor_client, session):
    mailing_list = make_list(session)
    make_subscriber(session, "odbiorca@example.org", mailing_list)
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id],
                                         list_ids=[mailing_list.id])
    session.commit()
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/schedule",
                    {"scheduled_at": "2031-01-15T09:30"}, follow_redirects=True)
    assert "Kampania została zaplanowana." in response.get_data(as_text=True)
    session.expire_all()
    scheduled = session.get(Campaign, campaign.id)
    assert scheduled.status == CampaignStatus.SCHEDULED
    assert scheduled.scheduled_at == datetime(2031, 1, 15, 8, 30, tzinfo=timezone.utc)
    response = post(editor_client, f"/admin/campaigns/{campaign.id}/unschedule", {})
    assert response.status_code == 302
    session.expire_all()
    assert session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT


def test_sending_or_scheduling_to_nobody_is_refused_on_the_page(editor_client, session, smtp_server):
    mailing_list = make_list(session)
    make_subscriber(session, "czeka@example.org", mailing_list, status=SubscriptionStatus.PENDING)
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id],
                                         list_ids=[mailing_list.id])
    session.commit()
    page = editor_client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'id="nobody"' in page and 'data-action="send"' not in page  # said before anyone clicks
    for path, data in (("send", {}), ("schedule", {"scheduled_at": "2031-01-15T09:30"})):
        response = post(editor_client, f"/admin/campaigns/{campaign.id}/{path}", data)
        assert response.status_code == 400, path
        page = response.get_data(as_text=True)
        assert "Nikt nie otrzymałby tej kampanii" in page and "Pozostaje szkicem." in page
        session.expire_all()
        assert session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT
    with pytest.raises(NoRecipients):
        campaigns.schedule(session, campaign.id, "2031-01-15T09:30")
    assert not smtp_server.messages


def test_send_confirmation_says_how_many_people(editor_client, session):
    """The data-confirm question names the count, formatted and in the right plural form."""
    mailing_list = make_list(session)
    make_subscriber(session, "jedna@example.org", mailing_list)
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id],
                                         list_ids=[mailing_list.id])
    session.commit()

    def question(lang):
        page = editor_client.get(f"/admin/campaigns/{campaign.id}?lang={lang}").get_data(as_text=True)
        form = re.search(r'<form[^>]*/send"[^>]*data-confirm="([^"]*)"', page)
        assert form, page
        return html.unescape(form.group(1))

    assert question("pl") == "Wysłać teraz kampanię do 1 osoby?"
    assert question("en") == "Send this campaign to 1 person now?"
    session.execute(insert(Subscriber), [{"email": f"o{n}@example.org", "email_hash": f"h{n}", "name": "",
                                          "search_text": f"o{n}@example.org "} for n in range(2002)])
    ids = session.scalars(select(Subscriber.id).where(Subscriber.email.like("o%@example.org"))).all()
    session.execute(insert(Subscription), [{"subscriber_id": sid, "list_id": mailing_list.id,
                                            "status": SubscriptionStatus.CONFIRMED} for sid in ids])
    session.commit()
    assert question("pl") == "Wysłać teraz kampanię do 2\xa0003 osób?"
    assert question("en") == "Send this campaign to 2,003 people now?"


def test_a_cancelled_campaign_shows_what_was_sent_not_a_full_bar(editor_client, session):
    """Cancelled after 3 of 10: the bar is 30 % in the cancelled style, the 7 never sent are
    counted as such, and the progress JSON says the same."""
    from sqlalchemy import update

    from mailer import sending
    from mailer.models import Delivery, DeliveryStatus
    from tests.helpers_engine import make_audience, prepare_without_fan_out
    from tests.helpers_engine import make_campaign as engine_campaign

    campaign = engine_campaign(session, make_audience(session, 10))
    session.commit()
    prepare_without_fan_out(session, campaign.id)
    first = session.scalars(select(Delivery.id).where(Delivery.campaign_id == campaign.id)
                            .order_by(Delivery.id).limit(3)).all()
    session.execute(update(Delivery).where(Delivery.id.in_(first)).values(status=DeliveryStatus.SENT))
    session.execute(update(Campaign).where(Campaign.id == campaign.id).values(sent_count=3))
    session.commit()
    sending.cancel(session, campaign.id)
    session.commit()
    progress = editor_client.get(f"/admin/campaigns/{campaign.id}/progress").get_json()
    assert (progress["status"], progress["percent"], progress["sent"], progress["skipped"]) == ("cancelled", 30, 3, 7)
    page = editor_client.get(f"/admin/campaigns/{campaign.id}?lang=pl").get_data(as_text=True)
    assert "100 %" not in page
    assert 'class="progress cancelled"' in page and 'aria-valuenow="30"' in page
    assert "30 %</strong> wysłano przed anulowaniem" in page
    assert re.search(r"Niewysłane \(anulowano\): <strong id=\"progress-skipped\">7</strong>", page)


def test_events_are_listed_by_date_in_the_digest_the_picker_and_the_api(editor_client, session):
    """Created (and chosen) out of order, the events of a digest come in the order they
    happen: in the mail, the preheader, the campaign's event ids, and the editor's picker
    (upcoming soonest first, then past ones)."""
    from datetime import datetime, timedelta, timezone

    from mailer.models import Event

    late = make_event(session, "Późny koncert", days=20)
    soon = make_event(session, "Bliska wystawa", days=3)
    middle = make_event(session, "Środkowy spektakl", days=10)
    past = make_event(session, "Miniony festyn", days=-5)
    campaign = campaigns.create_campaign(session, event_ids=[late.id, middle.id, soon.id], list_ids=[])
    session.commit()
    assert [ce.event_id for ce in campaign.campaign_events] == [soon.id, middle.id, late.id]
    assert campaign.preheader == "Bliska wystawa · Środkowy spektakl · Późny koncert"
    html = editor_client.get(f"/admin/campaigns/{campaign.id}/preview?part=text").get_data(as_text=True)
    assert html.index("Bliska wystawa") < html.index("Środkowy spektakl") < html.index("Późny koncert")
    # moved later after composing: the digest follows the new date
    event = session.get(Event, soon.id)
    event.starts_at = datetime.now(timezone.utc) + timedelta(days=30)
    session.commit()
    html = editor_client.get(f"/admin/campaigns/{campaign.id}/preview?part=text").get_data(as_text=True)
    assert html.index("Środkowy spektakl") < html.index("Późny koncert") < html.index("Bliska wystawa")
    picker = editor_client.get("/admin/campaigns/new").get_data(as_text=True)
    order = [picker.index(title) for title in ("Środkowy spektakl", "Późny koncert", "Bliska wystawa",
                                               "Miniony festyn")]
    assert order == sorted(order) and past.title == "Miniony festyn"

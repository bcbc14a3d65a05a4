"""Events: domain validation, the staff pages, Markdown sanitizing and the .ics file."""

from datetime import datetime, timezone

import icalendar
import pytest

from mailer import events
from mailer.errors import InvalidInput, NotFound
from mailer.lookups import get_or_404
from mailer.models import Event
from tests.helpers_content import log_in, make_event, make_staff, post

VALID = {"title": "Wystawa „Miasto nocą”", "starts_at": "2026-12-05T18:00",
         "ends_at": "2026-12-05T20:30", "place": "Galeria Miejska", "summary": "Zdjęcia nocnego miasta.",
         "body_md": "Wstęp **wolny**.", "image_url": "", "link": "https://example.org/wystawa"}


@pytest.fixture
def editor_client(client, session):
    log_in(client, make_staff(session))
    return client


def test_naive_times_are_warsaw_and_stored_utc(session):
    event = events.create_event(session, VALID)
    session.commit()
    assert event.starts_at == datetime(2026, 12, 5, 17, 0, tzinfo=timezone.utc)  # CET = UTC+1
    summer = events.create_event(session, {**VALID, "starts_at": "2026-07-01T18:00", "ends_at": ""})
    assert summer.starts_at == datetime(2026, 7, 1, 16, 0, tzinfo=timezone.utc)  # CEST = UTC+2
    aware = events.create_event(session, {**VALID, "starts_at": "2026-12-05T18:00:00+00:00",
                                          "ends_at": None})
    assert aware.starts_at.hour == 18


@pytest.mark.parametrize("change, field", [
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "Zły\r\nBcc: x@example.org"}, "title"),
    ({"starts_at": ""}, "starts_at"),
    ({"starts_at": "jutro"}, "starts_at"),
    ({"starts_at": 12}, "starts_at"),
    ({"starts_at": "0001-01-01T00:00:00+00:01"}, "starts_at"),  # would overflow in UTC
    ({"starts_at": "9999-12-31T23:59:59-01:00"}, "starts_at"),
    ({"ends_at": "2026-12-05T17:00"}, "ends_at"),
    ({"ends_at": "2026-12-05T18:00"}, "ends_at"),
    ({"place": "p" * 201}, "place"),
    ({"summary": "s" * 501}, "summary"),
    ({"link": "javascript:alert(1)"}, "link"),
    ({"link": "ftp://example.org/x"}, "link"),
    ({"image_url": "data:image/png;base64,AAAA"}, "image_url"),
    ({"title": ["a list"]}, "title"),
])
def test_invalid_values_are_refused_and_nothing_is_written(session, change, field):
    with pytest.raises(InvalidInput) as caught:
        events.create_event(session, {**VALID, **change})
    assert caught.value.field == field
    session.rollback()
    assert session.query(Event).count() == 0


def test_update_and_delete(session):
    event = make_event(session)
    events.update_event(session, event.id, {**VALID, "title": "Nowy tytuł"})
    session.commit()
    assert get_or_404(session, Event, event.id).title == "Nowy tytuł"
    events.delete_event(session, event.id)
    session.commit()
    with pytest.raises(NotFound, match="This event does not exist."):
        get_or_404(session, Event, event.id)


def test_markdown_is_sanitized():
    html = events.markdown_to_html(
        "**Hej** <script>alert(1)</script> <a href=\"javascript:alert(1)\">x</a> "
        "<img src=x onerror=alert(1)> [ok](https://example.org)")
    assert "<strong>Hej</strong>" in html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert 'href="https://example.org"' in html


def test_pages_need_login(client, session):
    event = make_event(session)
    for path in ("/admin/events", "/admin/events/new", f"/admin/events/{event.id}"):
        assert client.get(path).status_code in (302, 401)


def test_create_edit_delete_through_the_pages(editor_client, session):
    response = post(editor_client, "/admin/events/new", VALID)
    assert response.status_code == 302
    event = session.query(Event).one()
    assert event.title == "Wystawa „Miasto nocą”"
    page = editor_client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert 'value="2026-12-05T18:00"' in page  # shown back in Warsaw time
    listing = editor_client.get("/admin/events").get_data(as_text=True)
    assert "Miasto nocą" in listing and "grudnia 2026" in listing
    response = post(editor_client, f"/admin/events/{event.id}", {**VALID, "place": "Ratusz"})
    assert response.status_code == 302
    session.expire_all()
    assert session.get(Event, event.id).place == "Ratusz"
    response = post(editor_client, f"/admin/events/{event.id}/delete", {})
    assert response.status_code == 302
    assert session.query(Event).count() == 0


def test_bad_form_gets_400_with_a_clear_message(editor_client, session):
    response = post(editor_client, "/admin/events/new", {**VALID, "ends_at": "2026-12-05T10:00"})
    assert response.status_code == 400
    assert "Koniec musi być później niż początek." in response.get_data(as_text=True)
    response = post(editor_client, "/admin/events/new?lang=en", {**VALID, "title": "x" * 300})
    assert response.status_code == 400
    assert "This text is too long." in response.get_data(as_text=True)
    assert session.query(Event).count() == 0


def test_post_without_csrf_is_refused(editor_client, session):
    assert editor_client.post("/admin/events/new", data=VALID).status_code == 400
    assert session.query(Event).count() == 0


def test_missing_event_is_404(editor_client):
    assert editor_client.get("/admin/events/999").status_code == 404


def test_ics_file(client, session):
    event = make_event(session, title="Koncert kolęd")
    response = client.get(f"/events/{event.id}.ics")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    calendar = icalendar.Calendar.from_ical(response.data)
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["summary"]) == "Koncert kolęd"
    assert vevent.decoded("dtstart") == event.starts_at
    assert client.get("/events/999.ics").status_code == 404


def test_an_announced_event_cannot_be_deleted(editor_client, session):
    from mailer import campaigns
    from mailer.models import CampaignStatus

    event = make_event(session)
    campaign = campaigns.create_campaign(session, event_ids=[event.id], list_ids=[])
    campaign.status = CampaignStatus.SENT
    session.commit()
    response = post(editor_client, f"/admin/events/{event.id}/delete", {}, follow_redirects=True)
    assert "zostało zapowiedziane w kampanii" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Event, event.id) is not None


def test_ics_description_is_plain_text_as_in_the_mail(client, session):
    """No Markdown marks and none of the text of markup the sanitizer removes: the same plain
    text as the mail's text part (links as [text](url), as there)."""
    body = ("Wstęp **wolny**, _zapraszamy_!\n\n* bilety w [kasie](https://example.org/kasa)\n"
            "* parking obok\n\n<script>alert('x')</script><style>p{color:red}</style>## Program\n")
    event = make_event(session, title="Koncert kolęd", summary="Wspólne śpiewanie.", body_md=body)
    [vevent] = icalendar.Calendar.from_ical(client.get(f"/events/{event.id}.ics").data).walk("VEVENT")
    description = str(vevent["description"])
    assert description.startswith("Wspólne śpiewanie.\n\nWstęp wolny, zapraszamy!")
    assert "[kasie](https://example.org/kasa)" in description and "parking obok" in description
    for raw in ("**", "_zapraszamy_", "##", "alert", "color:red", "<"):
        assert raw not in description, raw
    from mailer.events import event_context
    assert event_context(event, "pl")["body_text"].strip() in description

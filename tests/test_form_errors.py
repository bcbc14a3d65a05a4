"""Forms report every mistake at once: the domain checks every field before it refuses
(``FieldErrors``), and each message is shown next to its field with aria-invalid and
aria-describedby (hand-written forms and WTForms alike)."""

import re

import pytest

from mailer import campaigns, email_templates, events
from mailer.errors import FieldErrors, InvalidInput
from mailer.models import Template
from tests.helpers_content import log_in, make_list, make_staff, post


def fields_of(exc: InvalidInput) -> list[str | None]:
    return [one.field for one in exc.errors]


def test_field_errors_raise_the_first_carrying_all():
    problems = FieldErrors()
    assert problems.check(int, "7") == 7
    problems.add(InvalidInput("This field is required.", "title"))
    problems.add(InvalidInput("Give a web address starting with http:// or https://.", "link"))
    with pytest.raises(InvalidInput) as caught:
        problems.raise_if_any()
    assert caught.value.field == "title" and fields_of(caught.value) == ["title", "link"]
    assert InvalidInput("alone", "x").errors[0].field == "x"


def test_event_validation_collects_every_mistake(app):
    with pytest.raises(InvalidInput) as caught:
        events.clean_event({"title": "", "starts_at": "jutro", "ends_at": "", "image_url": "ftp://x",
                            "link": "javascript:alert(1)"})
    assert fields_of(caught.value) == ["title", "starts_at", "image_url", "link"]
    with pytest.raises(InvalidInput) as caught:
        events.clean_event({"title": "Koncert", "starts_at": "2030-12-12T16:00", "ends_at": "2030-12-12T15:00",
                            "link": "nie-adres"})
    assert fields_of(caught.value) == ["link", "ends_at"]


def test_template_syntax_of_both_parts_and_the_name_at_once(session):
    layout = session.query(Template).filter_by(name="Układ podstawowy").one()
    with pytest.raises(InvalidInput) as caught:
        email_templates.save_template(session, None, {
            "name": " ", "kind": "content", "layout_id": str(layout.id),
            "html": "<h1>{{ subject </h1>", "text": "{% if %}"})
    assert fields_of(caught.value) == ["name", "html", "text"]
    assert "line 1" in caught.value.errors[2].message


def test_campaign_validation_collects_every_mistake(session):
    with pytest.raises(InvalidInput) as caught:
        campaigns.create_campaign(session, event_ids=[], list_ids=["999"], locale="xx")
    assert fields_of(caught.value) == ["locale", "event_ids", "list_ids"]


def test_subscribe_form_shows_every_mistake_next_to_its_field(client, session):
    make_list(session)
    page = client.get("/?lang=pl").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page)
    answer = client.post("/subscribe?lang=pl", data={"csrf_token": token.group(1), "email": "nie-adres",
                                                     "name": "Ala\nMa Kota"})
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    for field in ["email", "name", "consent"]:
        assert f'id="{field}-error"' in html, field
    assert re.search(r'<input[^>]*aria-describedby="email-error"[^>]*aria-invalid="true"|'
                     r'<input[^>]*aria-invalid="true"[^>]*aria-describedby="email-error"', html)
    assert re.search(r'name="consent" value="y" aria-invalid="true" aria-describedby="consent-error"', html)


def test_event_form_marks_every_field(client, session):
    log_in(client, make_staff(session))
    answer = post(client, "/admin/events/new?lang=pl", {"title": "", "starts_at": "", "link": "x"})
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    for field in ["title", "starts_at", "link"]:
        assert re.search(rf'id="{field}" name="{field}"  ?aria-invalid="true" aria-describedby="{field}-error"', html)
        assert f'<p class="field-error" id="{field}-error">' in html
    assert "Popraw 3 zaznaczone pola." in html


def test_wtforms_fields_are_marked_too(client, session):
    log_in(client, make_staff(session, role="admin"))
    answer = post(client, "/admin/users?lang=pl", {"email": "", "role": "editor", "password": ""},
                  token_from="/admin/users")
    html = answer.get_data(as_text=True)
    for field in ["email", "password"]:
        assert re.search(rf'<input[^>]*aria-describedby="{field}-error"[^>]*>', html), field
        assert f'<p class="field-error" id="{field}-error">' in html

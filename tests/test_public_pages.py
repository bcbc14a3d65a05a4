"""Public pages: the index with events and the subscribe box (Polish first, English on
choice), the embed page and its snippet, and the staff outbox page."""

import re
from datetime import timedelta

from mailer.mail.message import Skeleton, address
from mailer.mail.transport import OutboxTransport
from mailer.models import Event, utcnow
from tests.helpers_content import fixed
from tests.helpers_staff import login_as
from tests.helpers_visitor import make_list


def add_event(session, title, days, **extra):
    start = utcnow() + timedelta(days=days)
    event = Event(title=title, starts_at=start, ends_at=start + timedelta(hours=2), **extra)
    session.add(event)
    session.commit()
    return event


def test_index_lists_upcoming_events_in_polish(client, session):
    make_list(session)
    add_event(session, "Koncert kolęd na Rynku", 3, place="Rynek Główny", summary="Śpiewamy razem")
    add_event(session, "Wystawa fotografii", 10, place="Galeria Miejska", summary="Zdjęcia miasta")
    add_event(session, "Minione spotkanie", -5, place="Ratusz", summary="Już było")
    page = client.get("/").get_data(as_text=True)
    assert "<h1>Najbliższe wydarzenia</h1>" in page
    assert "Newsletter — bądź na bieżąco!" in page
    assert page.index("Koncert kolęd na Rynku") < page.index("Wystawa fotografii")
    assert "Rynek Główny" in page and "Śpiewamy razem" in page
    assert "Minione spotkanie" not in page
    assert re.search(r"(poniedziałek|wtorek|środa|czwartek|piątek|sobota|niedziela), \d+ \w+ \d{4}", page)


def test_subscribe_box_defences_are_rendered(client, session):
    make_list(session)
    page = client.get("/").get_data(as_text=True)
    consent = re.search(r'<input type="checkbox" name="consent"[^>]*>', page).group(0)
    assert "checked" not in consent
    assert "Urząd Miasta" in page.split('name="consent"')[1][:400]  # the organisation is named
    assert 'class="hp"' in page and 'name="website"' in page
    assert 'name="csrf_token"' in page
    assert 'name="lists"' not in page  # one public list: no choice to make


def test_index_in_english_on_choice(client, session):
    make_list(session)
    page = client.get("/?lang=en").get_data(as_text=True)
    assert "<h1>Upcoming events</h1>" in page and 'lang="en"' in page
    assert "Newsletter — stay up to date!" in page
    assert "Upcoming events" in client.get("/").get_data(as_text=True)  # the choice is remembered


def test_embed_page_documents_the_json_endpoint(client, session):
    make_list(session)
    make_list(session, name="Sport", slug="sport")
    page = client.get("/embed").get_data(as_text=True)
    assert "http://localhost/subscribe.json" in page
    assert "&lt;form class=&#34;newsletter-embed&#34;" in page or "&lt;form class=\"newsletter-embed\"" in page
    assert 'name="website"' in page and 'name="consent" value="1"' in page and 'name="lists"' in page
    snippet = re.search(r'<form class="newsletter-embed" method="post" action="([^"]+)"', page)
    assert snippet.group(1) == "http://localhost/subscribe.json"


def test_get_subscribe_leads_to_the_box(client):
    response = client.get("/subscribe")
    assert response.status_code == 302 and response.headers["Location"].endswith("/#newsletter")


def test_outbox_page(app, session, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_DIR", tmp_path)
    staff = app.test_client()
    login_as(staff, session)
    assert staff.get("/admin/outbox").status_code == 404  # SMTP_URL set: no outbox
    monkeypatch.setitem(app.config, "SMTP_URL", "")
    assert "Skrzynka nadawcza jest pusta." in staff.get("/admin/outbox").get_data(as_text=True)
    message = Skeleton(sender=address("Urząd Miasta", "a@example.org"), subject="Potwierdź zapis",
                       text=fixed("Tekst ąę"), html=fixed("<p>HTML <b>żółć</b></p>")).render(
        to_name="Óla", to_email="o@example.org", return_path="bounces+s1-abcdefgh@example.org",
        message_id="<1.2@example.org>")
    OutboxTransport(tmp_path).send([message])
    listing = staff.get("/admin/outbox").get_data(as_text=True)
    assert "Potwierdź zapis" in listing
    name = re.search(r'/admin/outbox/([^"]+\.eml)', listing).group(1)
    detail = staff.get(f"/admin/outbox/{name}").get_data(as_text=True)
    assert "Tekst ąę" in detail and 'sandbox=""' in detail and "żółć" in detail
    assert staff.get("/admin/outbox/..%2Fsecret.eml").status_code == 404
    assert staff.get("/admin/outbox/nope.eml").status_code == 404
    anonymous = app.test_client()
    assert anonymous.get("/admin/outbox").status_code == 302  # behind the staff login

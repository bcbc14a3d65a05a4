"""Every subscriber in their own language: English texts of events, templates and campaigns,
one send that gives each recipient their language's copy, pages opened from a mail in the
recipient's language, and the language chosen when subscribing."""

import re
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer import campaigns, email_templates, events, links, sending, tokens
from mailer.models import Campaign, CampaignStatus, Event, Subscriber, Template
from tests.helpers_api import assert_error, editor_api, editor_token, event_body  # noqa: F401
from tests.helpers_content import log_in, make_event, make_list, make_staff, make_subscriber
from tests.helpers_engine import campaign_status, wait_until, wait_worker_idle
from tests.helpers_visitor import csrf_token, subscribe, subscriber


def _english(event: Event, **values) -> Event:
    for key, value in {"title_en": "Carol concert in the Market Square", "place_en": "Main Market Square",
                       "summary_en": "Sing carols together with the city choir.",
                       "body_md_en": "Admission **free**.", **values}.items():
        setattr(event, key, value)
    return event


# --- 1. Events in Polish and English ----------------------------------------------------

def test_event_context_uses_english_and_falls_back_to_polish(app, session):
    event = _english(make_event(session), summary_en=None)
    english = events.event_context(event, "en")
    assert english["title"] == "Carol concert in the Market Square"
    assert english["place"] == "Main Market Square"
    assert "<strong>free</strong>" in english["body_html"]
    assert english["summary"] == event.summary  # not translated: the Polish text
    assert english["untranslated"] == ["summary"]
    polish = events.event_context(event, "pl")
    assert polish["title"] == "Koncert kolęd na Rynku" and polish["untranslated"] == []


def test_event_form_saves_english_and_marks_what_is_missing(client, session, fresh):
    log_in(client, make_staff(session))
    page = client.get("/admin/events/new").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "title": "Wystawa", "starts_at": "2031-05-01T18:00",
            "place": "Galeria", "summary": "Miasto sprzed stu lat.", "title_en": "Exhibition",
            "place_en": "", "summary_en": "", "body_md_en": ""}
    response = client.post("/admin/events/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    with fresh() as check:
        saved = check.scalars(select(Event)).one()
        assert (saved.title_en, saved.place_en, saved.summary_en) == ("Exhibition", None, None)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="Exhibition"' in page
    missing = set(re.findall(r'data-untranslated="(\w+)"', page))
    assert missing == {"place_en", "summary_en"}  # the description has no Polish text either


def test_api_events_accept_and_return_translations(editor_api):
    response = editor_api.post("/events", event_body(title_en="Concert", place_en="Square"))
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert (created["title_en"], created["place_en"], created["summary_en"]) == ("Concert", "Square", None)
    changed = editor_api.patch(f"/events/{created['id']}", {"summary_en": "An evening of music"}).get_json()
    assert changed["summary_en"] == "An evening of music" and changed["title_en"] == "Concert"
    assert_error(editor_api.post("/events", event_body(title_en="x" * 201)), 400, "title_en")


# --- 2. Templates and campaigns with an English version -----------------------------------

def test_builtin_templates_ship_in_polish_and_english(app, session):
    for template in session.scalars(select(Template).where(Template.builtin.is_(True))):
        assert template.html_en and template.text_en, template.name
        assert "locale ==" not in template.html  # each version in one language
    layout = session.scalar(select(Template).where(Template.name == "Układ podstawowy"))
    assert "Wypisz się" in layout.html and "Unsubscribe" in layout.html_en


def test_template_english_version_is_validated_and_previewed(app, session):
    layout = session.scalar(select(Template).where(Template.name == "Układ podstawowy"))
    values = {"name": "Krótka", "kind": "content", "layout_id": layout.id,
              "html": "<p>Dzień dobry {{ subscriber.name }}</p>", "text": "",
              "html_en": "<p>Hello {{ subscriber.name }}</p>"}
    template = email_templates.save_template(session, None, values)
    assert template.html_en == "<p>Hello {{ subscriber.name }}</p>"
    english = email_templates.preview(session, template.id, locale="en")
    assert "Hello Anna Kowalska" in english.html and "Unsubscribe" in english.html
    polish = email_templates.preview(session, template.id, locale="pl")
    assert "Dzień dobry Anna Kowalska" in polish.html and "Wypisz się" in polish.html
    with pytest.raises(Exception) as caught:
        email_templates.save_template(session, None, {**values, "name": "Zła", "html_en": "{% if %}"})
    assert getattr(caught.value, "field", None) == "html_en"  # the English part named


def test_migration_adds_english_builtins(app_instance, database_url, tmp_path):
    from flask_migrate import upgrade

    from mailer import create_app
    from mailer.extensions import db
    from tests.test_migrations import fresh_database

    url, drop = fresh_database(database_url, tmp_path)
    settings = {key: value for key, value in app_instance.config.items() if key.isupper()}
    app = create_app("test", {**settings, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            upgrade(revision="0010")
            upgrade()
            with db.engine.connect() as conn:
                rows = conn.execute(select(Template.name, Template.html_en).where(Template.builtin.is_(True))).all()
            assert len(rows) == 3 and all("Unsubscribe" in (html or "") or "Hello" in (html or "")
                                          for _name, html in rows), rows
            db.engine.dispose()
    finally:
        if drop:
            drop()


# --- 3. One campaign, one send, each recipient in their language --------------------------

def _audience(session):
    mailing_list = make_list(session)
    polish = make_subscriber(session, "ania@example.org", mailing_list, name="Ania")
    english = make_subscriber(session, "john@example.org", mailing_list, name="John")
    english.locale = "en"
    session.commit()
    return mailing_list, polish, english


def _campaign(session, mailing_list, event, **values) -> Campaign:
    campaign = campaigns.create_campaign(session, event_ids=[event.id], list_ids=[mailing_list.id],
                                         subject="Koncert kolęd", preheader="Już w sobotę", **values)
    session.commit()
    return campaign


def _parts(data: bytes):
    message = message_from_bytes(data, policy=policy.default)
    return (message, message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


def _send(session, smtp_server, celery_worker, campaign_id: int) -> dict:
    sending.launch(session, campaign_id)
    session.commit()  # the worker starts it and sends
    wait_until(lambda: campaign_status(campaign_id) == CampaignStatus.SENT)
    wait_worker_idle(celery_worker)
    received = smtp_server.wait_for(2)
    return {mail.recipients[0]: mail for mail in received}


def test_one_send_gives_each_recipient_their_language(app, session, smtp_server, celery_worker):
    mailing_list, _polish, _english_reader = _audience(session)
    event = _english(make_event(session))
    session.commit()
    campaign = _campaign(session, mailing_list, event, subject_en="Carol concert",
                         preheader_en="This Saturday")
    mails = _send(session, smtp_server, celery_worker, campaign.id)

    message, text, html = _parts(mails["ania@example.org"].data)
    assert message["Subject"] == "Koncert kolęd" and message["Content-Language"] == "pl"
    assert re.search(r'<html lang="pl"', html) and "Dzień dobry Ania" in html
    assert "Koncert kolęd na Rynku" in html and "Wypisz się" in html and "Już w sobotę" in html
    assert "Dzień dobry Ania" in text and "Kiedy:" in text and "Wypisz się:" in text

    message, text, html = _parts(mails["john@example.org"].data)
    assert message["Subject"] == "Carol concert" and message["Content-Language"] == "en"
    assert re.search(r'<html lang="en"', html) and "Hello John" in html
    assert "Carol concert in the Market Square" in html and "Main Market Square" in html
    assert "Unsubscribe" in html and "This Saturday" in html and "Wypisz" not in html
    assert "Hello John" in text and "When:" in text and "Unsubscribe:" in text
    assert "Carol concert in the Market Square" in text and "Dzień dobry" not in text
    # the English reader's "view in browser" page shows their copy, in English
    view = re.search(r"http://localhost(/m/[A-Za-z0-9._-]+)", text).group(1)
    page = app.test_client().get(view).get_data(as_text=True)
    assert '<html lang="en"' in page and "Hello John" in page
    # the sent campaign's page says how many got which language
    staff = app.test_client()
    log_in(staff, make_staff(session))
    page = staff.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert dict(re.findall(r'data-language="(\w+)">[^<]*: <strong>(\d+)</strong>', page)) == {"en": "1", "pl": "1"}
    polish_text = _parts(mails["ania@example.org"].data)[1]
    view = re.search(r"http://localhost(/m/[A-Za-z0-9._-]+)", polish_text).group(1)
    page = app.test_client().get(view).get_data(as_text=True)
    assert '<html lang="pl"' in page and "Dzień dobry Ania" in page


def test_without_an_english_version_english_readers_get_polish(app, session, smtp_server, celery_worker):
    mailing_list, _polish, _english_reader = _audience(session)
    event = make_event(session)  # no English texts either
    campaign = _campaign(session, mailing_list, event)  # no English subject: no English version
    mails = _send(session, smtp_server, celery_worker, campaign.id)
    message, text, html = _parts(mails["john@example.org"].data)
    assert message["Subject"] == "Koncert kolęd" and message["Content-Language"] == "pl"
    assert '<html lang="pl"' in html and "Dzień dobry John" in html and "Wypisz się:" in text


def test_english_version_falls_back_to_polish_event_texts(app, session, smtp_server, celery_worker):
    mailing_list, _polish, _english_reader = _audience(session)
    event = make_event(session)  # the event is not translated, the campaign is
    campaign = _campaign(session, mailing_list, event, subject_en="Carol concert")
    mails = _send(session, smtp_server, celery_worker, campaign.id)
    message, text, html = _parts(mails["john@example.org"].data)
    assert message["Subject"] == "Carol concert" and message["Content-Language"] == "en"
    assert '<html lang="en"' in html and "Hello John" in html
    assert "Koncert kolęd na Rynku" in html and "When:" in text  # Polish title, English frame


def test_campaign_page_counts_languages_and_previews_each(client, session):
    mailing_list, _polish, _english_reader = _audience(session)
    make_subscriber(session, "ola@example.org", mailing_list)
    event = make_event(session)
    campaign = _campaign(session, mailing_list, event, subject_en="Carol concert")
    log_in(client, make_staff(session))
    page = client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    counts = dict(re.findall(r'data-language="(\w+)">[^<]*: <strong>(\d+)</strong>', page))
    assert counts == {"en": "1", "pl": "2"}
    english = client.get(f"/admin/campaigns/{campaign.id}/preview?version=en").get_data(as_text=True)
    assert '<html lang="en"' in english and "Carol concert" in english and "Unsubscribe" in english
    polish = client.get(f"/admin/campaigns/{campaign.id}/preview?version=pl").get_data(as_text=True)
    assert '<html lang="pl"' in polish and "Wypisz się" in polish
    # as a subscriber: their language
    as_john = client.get(f"/admin/campaigns/{campaign.id}/preview?as=john@example.org").get_data(as_text=True)
    assert '<html lang="en"' in as_john and "Hello John" in as_john
    # the untranslated event is marked in the English preview
    marked = client.get(f"/admin/campaigns/{campaign.id}?version=en").get_data(as_text=True)
    assert 'id="preview-untranslated"' in marked and "Koncert kolęd na Rynku" in marked
    # the English subject is kept, and emptied it removes the English version
    campaigns.update_campaign(session, campaign.id, {"subject_en": ""})
    session.commit()
    assert session.get(Campaign, campaign.id).subject_en is None
    page = client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert re.search(r'data-language="en">[^\n]*?class="untranslated', page)


# --- 4. Pages opened from a mail in the recipient's language ------------------------------

def _pending(session, locale: str) -> Subscriber:
    from mailer.subscriptions import confirm_token

    mailing_list = make_list(session, slug=f"lista-{locale}")
    person = make_subscriber(session, f"{locale}@example.org", mailing_list, status="pending")
    person.locale = locale
    person.confirm_nonce = "n" * 32
    session.commit()
    person.token = confirm_token(person)  # type: ignore[attr-defined]
    return person


@pytest.mark.parametrize("locale, heading", [("en", "Confirm your subscription"),
                                             ("pl", "Potwierdź zapis")])
def test_confirm_page_in_subscribers_language(client, session, locale, heading):
    person = _pending(session, locale)
    page = client.get(f"/confirm/{person.token}").get_data(as_text=True)
    assert f'<html lang="{locale}"' in page and heading in page


def test_explicit_choice_wins_over_subscribers_language(client, session):
    person = _pending(session, "en")
    page = client.get(f"/confirm/{person.token}?lang=pl").get_data(as_text=True)
    assert '<html lang="pl"' in page


@pytest.mark.parametrize("locale, heading", [("en", "Leave the newsletter"),
                                             ("pl", "Rezygnacja z newslettera")])
def test_unsubscribe_page_in_subscribers_language(client, session, locale, heading):
    mailing_list = make_list(session, slug=f"u-{locale}")
    person = make_subscriber(session, f"u-{locale}@example.org", mailing_list)
    person.locale = locale
    session.commit()
    path = links.unsubscribe_url(person.id).removeprefix("http://localhost")
    page = client.get(path).get_data(as_text=True)
    assert f'<html lang="{locale}"' in page and heading in page
    one_click = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert one_click.get_data(as_text=True) == ("You have been unsubscribed." if locale == "en"
                                                else "Wypisano Cię z newslettera.")


@pytest.mark.parametrize("locale", ["en", "pl"])
def test_view_in_browser_error_page_in_subscribers_language(client, session, locale):
    mailing_list = make_list(session, slug=f"v-{locale}")
    person = make_subscriber(session, f"v-{locale}@example.org", mailing_list)
    person.locale = locale
    session.commit()
    draft = _campaign(session, mailing_list, make_event(session))  # a draft: nothing to show
    token = tokens.sign(tokens.VIEW, [draft.id, person.id])
    response = client.get(f"/m/{token}")
    assert response.status_code == 404
    assert f'<html lang="{locale}"' in response.get_data(as_text=True)


@pytest.mark.parametrize("language, message", [("en", "This event does not exist."),
                                               ("pl", "To wydarzenie nie istnieje."),
                                               ("en-GB,en;q=0.9", "This event does not exist."),
                                               ("de", "To wydarzenie nie istnieje.")])
def test_api_errors_follow_accept_language(editor_api, language, message):
    response = editor_api.client.get("/api/v1/events/999999",
                                     headers=editor_api.headers({"Accept-Language": language}))
    assert assert_error(response, 404)["error"] == message


# --- 5. The visitor chooses the language when subscribing ---------------------------------

def test_subscribe_form_offers_the_language_defaulting_to_the_page(client, session):
    page = client.get("/?lang=en").get_data(as_text=True)
    assert re.search(r'<option value="en" lang="en" selected', page)
    page = client.get("/?lang=pl").get_data(as_text=True)
    assert re.search(r'<option value="pl" lang="pl" selected', page)


@pytest.mark.parametrize("chosen, stored", [("en", "en"), ("pl", "pl"), ("xx", "pl"), (None, "pl")])
def test_subscribe_stores_the_chosen_language(client, session, chosen, stored):
    make_list(session)
    extra = {"locale": chosen} if chosen else {}
    assert subscribe(client, "nowy@example.org", extra=extra).status_code == 200
    assert subscriber(session, "nowy@example.org").locale == stored


def test_api_subscribe_defaults_to_accept_language(editor_api, session):
    make_list(session)
    body = {"email": "api-en@example.org", "consent": True}
    response = editor_api.post("/subscribers/subscribe", body, headers={"Accept-Language": "en"})
    assert response.status_code == 202, response.get_json()
    assert subscriber(session, "api-en@example.org").locale == "en"


def test_public_archive_shows_the_pages_language(client, session):
    from mailer.campaign_mail import freeze

    mailing_list = make_list(session)
    campaign = _campaign(session, mailing_list, _english(make_event(session)), subject_en="Carol concert")
    freeze(session, campaign)
    campaign.status, campaign.archived = CampaignStatus.SENT, True
    session.commit()
    english = client.get(f"/archive/{campaign.id}?lang=en").get_data(as_text=True)
    assert "<h1>Carol concert</h1>" in english
    mail = client.get(f"/archive/{campaign.id}/mail").get_data(as_text=True)  # the session remembers
    assert '<html lang="en"' in mail and "Carol concert in the Market Square" in mail
    polish = client.get(f"/archive/{campaign.id}/mail?lang=pl").get_data(as_text=True)
    assert '<html lang="pl"' in polish and "Koncert kolęd na Rynku" in polish


def test_a_test_send_goes_in_every_language(app, session, smtp_server):
    mailing_list = make_list(session)
    campaign = _campaign(session, mailing_list, _english(make_event(session)), subject_en="Carol concert")
    campaigns.send_test(session, campaign.id, ["redakcja@example.org"])
    subjects = {m.message["Subject"]: m.message["Content-Language"] for m in smtp_server.messages}
    assert subjects == {"[TEST] Koncert kolęd": "pl", "[TEST] Carol concert": "en"}


def test_home_page_lists_events_in_the_pages_language(client, session):
    _english(make_event(session))
    session.commit()
    assert "Carol concert in the Market Square" in client.get("/?lang=en").get_data(as_text=True)
    polish = client.get("/?lang=pl").get_data(as_text=True)
    assert "Koncert kolęd na Rynku" in polish and "Carol concert" not in polish


def test_template_preview_has_a_language_switch(client, session):
    log_in(client, make_staff(session))
    layout = session.scalar(select(Template).where(Template.name == "Układ podstawowy"))
    assert "Wypisz się" in client.get(f"/admin/templates/preview?id={layout.id}").get_data(as_text=True)
    english = client.get(f"/admin/templates/preview?id={layout.id}&preview_lang=en").get_data(as_text=True)
    assert "Unsubscribe" in english and '<html lang="en"' in english
    page = client.get(f"/admin/templates/{layout.id}").get_data(as_text=True)
    assert "preview_lang=en" in page and 'name="html_en"' in page


def test_event_list_marks_untranslated_events(client, session):
    translated = _english(make_event(session, title="Przetłumaczone"))
    plain = make_event(session, title="Tylko po polsku")
    session.commit()
    log_in(client, make_staff(session))
    page = client.get("/admin/events?lang=pl").get_data(as_text=True)
    assert set(re.findall(r'data-untranslated="(\d+)"', page)) == {str(plain.id)}
    assert "bez angielskiego" in page and translated.id != plain.id


def test_api_campaign_english_subject_and_recipients_by_language(editor_api, session):
    mailing_list, _polish, _english_reader = _audience(session)
    event = editor_api.post("/events", event_body(title_en="Concert")).get_json()
    response = editor_api.post("/campaigns", {"event_ids": [event["id"]], "list_ids": [mailing_list.id],
                                              "subject_en": "Concert", "preheader_en": "Saturday"})
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert (created["subject_en"], created["preheader_en"]) == ("Concert", "Saturday")
    shown = editor_api.get(f"/campaigns/{created['id']}").get_json()
    assert shown["recipients"] == 2 and shown["recipient_languages"] == {"en": 1, "pl": 1}
    changed = editor_api.patch(f"/campaigns/{created['id']}", {"subject_en": None}).get_json()
    assert changed["subject_en"] is None
    assert_error(editor_api.patch(f"/campaigns/{created['id']}", {"subject_en": "a\nb"}), 400, "subject_en")


def test_english_subject_is_suggested_from_translated_events(app, session):
    mailing_list = make_list(session)
    translated = _english(make_event(session))
    session.commit()
    campaign = campaigns.create_campaign(session, event_ids=[translated.id], list_ids=[mailing_list.id])
    assert campaign.subject == "Koncert kolęd na Rynku"
    assert campaign.subject_en == "Carol concert in the Market Square"
    assert campaign.preheader_en.endswith(" · Main Market Square") and "day, " in campaign.preheader_en
    plain = make_event(session, title="Tylko po polsku")
    both = campaigns.create_campaign(session, event_ids=[translated.id, plain.id], list_ids=[mailing_list.id])
    assert both.subject == "Najbliższe wydarzenia" and both.subject_en is None  # not all translated


def test_template_list_marks_templates_without_english(client, session):
    layout = session.scalar(select(Template).where(Template.name == "Układ podstawowy"))
    mine = email_templates.save_template(session, None, {
        "name": "Tylko polska", "kind": "content", "layout_id": layout.id, "html": "<p>Cześć</p>"})
    session.commit()
    log_in(client, make_staff(session))
    page = client.get("/admin/templates").get_data(as_text=True)
    assert set(re.findall(r'data-untranslated="(\d+)"', page)) == {str(mine.id)}


def test_welcome_mail_links_the_home_page_in_the_subscribers_language(client, session, smtp_server, celery_worker):
    from tests.helpers_visitor import confirm_path, text_part

    make_list(session)
    client.get("/?lang=en")
    assert subscribe(client, "welcome-en@example.org").status_code == 200
    [confirmation] = smtp_server.wait_for(1)
    assert confirmation.message["Content-Language"] == "en"
    page = client.get(confirm_path(confirmation))
    client.post(confirm_path(confirmation), data={"csrf_token": csrf_token(page.data)})
    welcome = smtp_server.wait_for(2)[-1]
    assert welcome.message["Content-Language"] == "en"
    home = re.search(r"http://localhost(/\?lang=\w+)", text_part(welcome)).group(1)
    assert home == "/?lang=en"
    assert '<html lang="en"' in client.get(home).get_data(as_text=True)

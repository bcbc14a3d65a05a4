"""The preference centre: the link in every mail and on request (no enumeration), the page in
the subscriber's language, each action recorded, the export, erasure by a mailed link,
expired and forged links."""

import json
import re

import pytest
from sqlalchemy import select

from mailer import campaign_mail, campaigns, preferences, tokens
from mailer.models import AuditEntry, Category, Subscriber, Suppression, subscriber_interests
from tests.helpers_engine import launch_and_snapshot, make_campaign, run_all_batches
from tests.helpers_staff import make_subscriber
from tests.helpers_visitor import BASE, consents, csrf_token, drain, html_part, make_list, statuses, text_part


@pytest.fixture
def newsletter(request, session, smtp_server, celery_worker):
    yield make_list(session)
    drain(request, session, smtp_server)


def manage_path(received) -> str:
    match = re.search(re.escape(BASE) + r"(/p/[A-Za-z0-9._-]+)", text_part(received))
    assert match, "no preference-centre link in the mail"
    return match.group(1)


def audit(session, action):
    session.rollback()
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_every_campaign_mail_links_to_its_recipients_page_and_previews_keep_it_inert(
        app, session, newsletter, smtp_server):
    sub = make_subscriber(session, "ewa@example.org", lists=[newsletter])
    campaign = make_campaign(session, [newsletter])
    session.commit()
    launch_and_snapshot(session, campaign.id)
    run_all_batches(session, campaign.id)
    mail = next(m for m in smtp_server.wait_for(1) if "ewa@example.org" in m.recipients)
    assert "Zarządzaj subskrypcją" in html_part(mail) and "Zarządzaj subskrypcją:" in text_part(mail)
    path = manage_path(mail)
    assert f"{BASE}{path}" in html_part(mail)
    assert tokens.read_manage_token(path[3:], 1) == sub.id
    # a staff preview and the public archive link to nobody's page
    session.expire_all()
    preview = campaigns.render_as(session, session.get(type(campaign), campaign.id), sub.id, live_links=False)
    assert "#manage-preview" in preview.html and "/p/" not in preview.html
    public = campaigns.render_as(session, session.get(type(campaign), campaign.id), public=True)
    assert "/p/" not in public.html and "/p/" not in public.text  # nobody's copy: no footer at all
    assert "@@mlr" not in campaign_mail.compiled(session, campaign).personalize().html


def test_page_in_the_subscribers_language_get_changes_nothing(client, session, newsletter):
    sub = make_subscriber(session, "john@example.org", lists=[newsletter])
    sub.locale = "en"
    session.commit()
    path = f"/p/{tokens.manage_token(sub.id)}"
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<html lang="en">' in text and "Manage your subscription" in text and "john@example.org" in text
    assert "Zarządzaj" not in text
    polish = client.get(path + "?lang=pl").get_data(as_text=True)
    assert "Zarządzaj subskrypcją" in polish and "Pobierz moje dane (JSON)" in polish
    assert client.post(path).status_code == 400  # no CSRF token
    assert statuses(session, "john@example.org") == {newsletter.id: "confirmed"}


def test_joining_leaving_name_and_language_are_recorded(client, session, newsletter):
    sport = make_list(session, name="Sport i rekreacja", slug="sport")
    hidden = make_list(session, name="Tylko dla radnych", slug="radni", public=False)
    sub = make_subscriber(session, "ala@example.org", name="Ala", lists=[newsletter])
    path = f"/p/{tokens.manage_token(sub.id)}"
    page = client.get(path)
    assert "Tylko dla radnych" not in page.get_data(as_text=True)
    token = csrf_token(page.data)
    # a private list cannot be joined here: 400, nothing written
    refused = client.post(path, data={"csrf_token": token, "name": "Ala", "locale": "pl",
                                      "lists": [str(newsletter.id), str(hidden.id)]})
    assert refused.status_code == 400 and "Wybierz newslettery z listy." in refused.get_data(as_text=True)
    saved = client.post(path, data={"csrf_token": token, "name": "Alicja Nowak", "locale": "en",
                                    "lists": [str(sport.id)]}, headers={"User-Agent": "Telefon/1"})
    assert saved.status_code == 302
    assert statuses(session, "ala@example.org") == {newsletter.id: "unsubscribed", sport.id: "confirmed"}
    records = [(c.action, c.source, c.list_id) for c in consents(session, "ala@example.org")][1:]
    assert records == [("unsubscribe", "preferences", newsletter.id), ("subscribe", "preferences", sport.id),
                       ("confirm", "preferences", sport.id)]
    joined = consents(session, "ala@example.org")[2]
    assert (joined.consent_version, joined.ip, joined.user_agent) == ("2026-11", "127.0.0.1", "Telefon/1")
    stored = session.get(Subscriber, sub.id)
    assert (stored.name, stored.locale) == ("Alicja Nowak", "en")
    [entry] = audit(session, "subscriber.preferences")
    assert (entry.target, entry.detail, entry.actor_id) == (f"subscriber:{sub.id}", {"name": True, "locale": "en"}, None)
    assert "Alicja" not in json.dumps(entry.detail) and "ala@" not in entry.actor
    after = client.get(path).get_data(as_text=True)  # now in English, the flash too
    assert "Your choices are saved." in after


def test_leave_everything_in_one_click(client, session, newsletter):
    sport = make_list(session, name="Sport", slug="sport")
    sub = make_subscriber(session, "out@example.org", lists=[newsletter, sport])
    path = f"/p/{tokens.manage_token(sub.id)}"
    token = csrf_token(client.get(path).data)
    assert client.post(f"{path}/leave", data={"csrf_token": token}).status_code == 302
    assert set(statuses(session, "out@example.org").values()) == {"unsubscribed"}
    left = [(c.action, c.source) for c in consents(session, "out@example.org") if c.action == "unsubscribe"]
    assert left == [("unsubscribe", "preferences")] * 2


def test_download_my_data(client, session, newsletter):
    sub = make_subscriber(session, "dane@example.org", name="Zażółć", lists=[newsletter])
    path = f"/p/{tokens.manage_token(sub.id)}"
    token = csrf_token(client.get(path).data)
    got = client.post(f"{path}/export", data={"csrf_token": token})
    assert got.status_code == 200 and got.mimetype == "application/json"
    assert "attachment" in got.headers["Content-Disposition"]
    data = json.loads(got.data)
    assert (data["email"], data["name"]) == ("dane@example.org", "Zażółć")
    assert data["consent_history"][0]["ip"] == "203.0.113.5"
    [entry] = audit(session, "subscriber.export")
    assert entry.target == f"subscriber:{sub.id}" and entry.detail["by"] == "self"


def test_erasure_asked_on_the_page_done_from_the_mailed_link(client, session, newsletter, smtp_server):
    sub = make_subscriber(session, "znikam@example.org", lists=[newsletter])
    sub_id = sub.id
    concerts = Category(slug="koncerty", name_pl="Koncerty", name_en="Concerts")
    session.add(concerts)
    session.flush()
    session.execute(subscriber_interests.insert().values(subscriber_id=sub_id, category_id=concerts.id))
    session.commit()
    path = f"/p/{tokens.manage_token(sub_id)}"
    token = csrf_token(client.get(path).data)
    asked = client.post(f"{path}/erase", data={"csrf_token": token})
    assert asked.status_code == 200 and "Sprawdź skrzynkę" in asked.get_data(as_text=True)
    assert statuses(session, "znikam@example.org") == {newsletter.id: "confirmed"}  # nothing erased yet
    mail = next(m for m in smtp_server.wait_for(1) if "znikam@example.org" in m.recipients)
    assert mail.message["Subject"] == "Potwierdź usunięcie swoich danych"
    assert "List-Unsubscribe" not in mail.message
    erase_path = re.search(re.escape(BASE) + r"(/p/erase/[A-Za-z0-9._-]+)", text_part(mail)).group(1)
    confirm_page = client.get(erase_path)
    assert confirm_page.status_code == 200 and "znikam@example.org" in confirm_page.get_data(as_text=True)
    assert client.post(erase_path).status_code == 400  # CSRF
    done = client.post(erase_path, data={"csrf_token": csrf_token(confirm_page.data)})
    assert done.status_code == 200 and "Twoje dane są usunięte" in done.get_data(as_text=True)
    session.rollback()
    assert session.scalar(select(Subscriber).where(Subscriber.email == "znikam@example.org")) is None
    assert session.scalar(select(Suppression.reason)) == "erased"
    assert session.scalars(select(subscriber_interests.c.category_id)).all() == []  # interests gone too
    [entry] = audit(session, "subscriber.erase")
    assert entry.target == f"subscriber:{sub_id}" and entry.detail["by"] == "self"
    # the links are dead now: a plain page offering a new link, never a 500
    for dead in (path, erase_path):
        answer = client.get(dead)
        assert answer.status_code == 400 and "Wyślij mi link" in answer.get_data(as_text=True)


def test_asking_for_a_link_answers_the_same_for_any_address(client, session, newsletter, smtp_server):
    make_subscriber(session, "znany@example.org", lists=[newsletter])

    def ask(email):
        form = client.get("/manage")
        return client.post("/manage", data={"csrf_token": csrf_token(form.data), "email": email, "website": ""})

    known, unknown = ask("znany@example.org"), ask("nieznany@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.data == unknown.data or re.sub(rb'value="[^"]+"', b"", known.data) == re.sub(
        rb'value="[^"]+"', b"", unknown.data)
    mail = next(m for m in smtp_server.wait_for(1) if "znany@example.org" in m.recipients)
    assert mail.message["Subject"] == "Zarządzaj subskrypcją"
    assert client.get(manage_path(mail)).status_code == 200
    drained = [m for m in smtp_server.messages if "nieznany@example.org" in m.recipients]
    assert drained == []
    bad = ask("to nie adres")
    assert bad.status_code == 400 and "Ten adres e-mail jest nieprawidłowy." in bad.get_data(as_text=True)
    for _ in range(3):  # the sign-up's per-address budget: 3 an hour
        ask("znany@example.org")
    assert ask("znany@example.org").status_code == 429


def test_expired_link_offers_a_new_one_forged_link_a_form(client, app, session, newsletter, smtp_server,
                                                          monkeypatch):
    sub = make_subscriber(session, "stary@example.org", lists=[newsletter])
    old = tokens.sign(tokens.MANAGE, [sub.id, tokens.day_number() - app.config["PREFERENCES_LINK_DAYS"] - 1])
    expired = client.get(f"/p/{old}")
    assert expired.status_code == 410 and "Wyślij mi nowy link" in expired.get_data(as_text=True)
    token = csrf_token(expired.data)
    assert client.post(f"/p/{old}", data={"csrf_token": token, "name": "X", "locale": "pl"}).status_code == 410
    renewed = client.post(f"/p/{old}/renew", data={"csrf_token": token})
    assert renewed.status_code == 200
    mail = next(m for m in smtp_server.wait_for(1) if "stary@example.org" in m.recipients)
    assert client.get(manage_path(mail)).status_code == 200
    for forged in ("abc", tokens.unsubscribe_token(sub.id), old[:-2] + "xx"):
        answer = client.get(f"/p/{forged}")
        assert answer.status_code == 400 and "Wyślij mi link" in answer.get_data(as_text=True)


def test_welcome_mail_links_to_the_page(app, session, newsletter, smtp_server):
    sub = make_subscriber(session, "witaj@example.org", lists=[newsletter])
    from mailer import notices
    from mailer.models import NoticeKind

    notices.queue(session, sub.id, NoticeKind.WELCOME)
    session.commit()
    mail = next(m for m in smtp_server.wait_for(1) if "witaj@example.org" in m.recipients)
    assert preferences.subscriber_for(session, manage_path(mail)[3:]).id == sub.id


def test_an_archived_list_cannot_be_joined_but_can_be_left(client, session, newsletter):
    """Archived lists are offered to nobody (MailingList.joinable), here as on the sign-up form;
    someone still on one may leave it."""
    from mailer.models import utcnow

    old = make_list(session, name="Lato w mieście 2025", slug="lato-2025")
    kept = make_list(session, name="Zima w mieście 2025", slug="zima-2025")
    sub = make_subscriber(session, "jula@example.org", lists=[newsletter, kept])
    old.archived_at = kept.archived_at = utcnow()
    session.commit()
    path = f"/p/{tokens.manage_token(sub.id)}"
    page = client.get(path).get_data(as_text=True)
    assert "Lato w mieście 2025" not in page and "Zima w mieście 2025" in page
    token = csrf_token(page.encode())
    refused = client.post(path, data={"csrf_token": token, "name": "", "locale": "pl",
                                      "lists": [str(newsletter.id), str(kept.id), str(old.id)]})
    assert refused.status_code == 400
    left = client.post(path, data={"csrf_token": token, "name": "", "locale": "pl", "lists": [str(newsletter.id)]})
    assert left.status_code == 302
    assert statuses(session, "jula@example.org") == {newsletter.id: "confirmed", kept.id: "unsubscribed"}

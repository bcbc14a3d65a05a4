"""Confirming a subscription: GET changes nothing, POST confirms once, expired links offer a
new one, forged and used-up links fail, key rotation."""

import pytest
from itsdangerous import URLSafeTimedSerializer

from mailer import subscriptions, tokens
from tests.helpers_visitor import (
    barrier,
    confirm_path,
    consents,
    csrf_token,
    drain,
    make_list,
    statuses,
    subscribe,
    subscriber,
    unsubscribe_path,
)


@pytest.fixture
def newsletter(request, session, smtp_server, celery_worker):
    yield make_list(session)
    drain(request, session, smtp_server)


def confirmation_for(client, smtp_server, email):
    assert subscribe(client, email, name="Zażółć Gęślą").status_code == 200
    mail = next(m for m in smtp_server.wait_for(1) if email in m.recipients)
    return confirm_path(mail)


def test_visitor_path_get_changes_nothing_post_confirms(client, session, newsletter, smtp_server):
    path = confirmation_for(client, smtp_server, "ola@example.org")
    page = client.get(path)
    assert page.status_code == 200
    assert "Potwierdzam zapis" in page.get_data(as_text=True)
    assert statuses(session, "ola@example.org") == {newsletter.id: "pending"}
    assert [c.action for c in consents(session, "ola@example.org")] == ["subscribe"]

    done = client.post(path, data={"csrf_token": csrf_token(page.data)},
                       headers={"User-Agent": "Przeglądarka/2"})
    assert done.status_code == 200
    assert "Zapis potwierdzony" in done.get_data(as_text=True)
    assert statuses(session, "ola@example.org") == {newsletter.id: "confirmed"}
    confirm_record = consents(session, "ola@example.org")[-1]
    assert (confirm_record.action, confirm_record.list_id, confirm_record.ip) == ("confirm", newsletter.id, "127.0.0.1")
    assert confirm_record.user_agent == "Przeglądarka/2"
    welcome = next(m for m in smtp_server.wait_for(2) if m.message["Subject"].startswith("Witamy"))
    assert welcome.recipients == ["ola@example.org"]
    assert welcome.message["Subject"] == "Witamy w newsletterze: Wydarzenia w mieście"
    assert unsubscribe_path(welcome).startswith("/u/")


def test_confirming_twice_is_harmless(client, session, newsletter, smtp_server):
    path = confirmation_for(client, smtp_server, "twice@example.org")
    token = csrf_token(client.get(path).data)
    assert client.post(path, data={"csrf_token": token}).status_code == 200
    again = client.post(path, data={"csrf_token": token})
    assert again.status_code == 200
    assert "już potwierdzony" in again.get_data(as_text=True)
    assert "już potwierdzony" in client.get(path).get_data(as_text=True)
    assert [c.action for c in consents(session, "twice@example.org")] == ["subscribe", "confirm"]
    mails = barrier(session, smtp_server)
    assert [m.message["Subject"][:6] for m in mails] == ["Potwie", "Witamy"]  # one welcome


def test_post_needs_csrf(client, session, newsletter, smtp_server):
    path = confirmation_for(client, smtp_server, "csrf@example.org")
    assert client.post(path).status_code == 400
    assert statuses(session, "csrf@example.org") == {newsletter.id: "pending"}


def test_expired_link_offers_a_new_one(client, app, session, newsletter, smtp_server, monkeypatch):
    path = confirmation_for(client, smtp_server, "late@example.org")
    monkeypatch.setitem(app.config, "CONFIRM_MAX_AGE", -1)
    page = client.get(path)
    assert page.status_code == 410
    assert "Wyślij mi nowy link" in page.get_data(as_text=True)
    post = client.post(path, data={"csrf_token": csrf_token(page.data)})
    assert post.status_code == 410
    assert statuses(session, "late@example.org") == {newsletter.id: "pending"}
    # inside the cool-down the offer sends nothing; after it, a new link comes
    resend = client.post(path + "/resend", data={"csrf_token": csrf_token(page.data)})
    assert resend.status_code == 200
    assert len(barrier(session, smtp_server)) == 1
    monkeypatch.setitem(app.config, "CONFIRM_COOLDOWN", 0)
    client.post(path + "/resend", data={"csrf_token": csrf_token(page.data)})
    mails = [m for m in barrier(session, smtp_server) if "late@example.org" in m.recipients]
    assert len(mails) == 2
    monkeypatch.setitem(app.config, "CONFIRM_MAX_AGE", 3600)
    new_path = confirm_path(mails[1])
    client.post(new_path, data={"csrf_token": csrf_token(client.get(new_path).data)})
    assert statuses(session, "late@example.org") == {newsletter.id: "confirmed"}


@pytest.mark.parametrize("token", [
    "garbage",
    "WzEsImFiYyJd.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbb",
])
def test_forged_token_gets_a_plain_error_page(client, session, newsletter, token):
    response = client.get(f"/confirm/{token}")
    assert response.status_code == 400
    assert "Ten link jest nieprawidłowy." in response.get_data(as_text=True)


def test_wrong_purpose_and_tampered_tokens_fail(client, app, session, newsletter, smtp_server):
    path = confirmation_for(client, smtp_server, "tamper@example.org")
    sub = subscriber(session, "tamper@example.org")
    unsubscribe_token = tokens.unsubscribe_token(sub.id)
    assert client.get(f"/confirm/{unsubscribe_token}").status_code == 400
    tampered = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    assert client.get(tampered).status_code == 400
    other_key = URLSafeTimedSerializer("not-our-key", salt="mailer.confirm").dumps([sub.id, sub.confirm_nonce])
    assert client.get(f"/confirm/{other_key}").status_code == 400
    assert statuses(session, "tamper@example.org") == {newsletter.id: "pending"}


def test_old_link_cannot_resubscribe_someone_who_left(client, session, newsletter, smtp_server):
    path = confirmation_for(client, smtp_server, "left@example.org")
    sub = subscriber(session, "left@example.org")
    subscriptions.unsubscribe(session, sub.id, source="form")
    session.commit()
    page = client.get(path)
    assert page.status_code == 400
    token = csrf_token(client.get("/").data)
    assert client.post(path, data={"csrf_token": token}).status_code == 400
    assert statuses(session, "left@example.org") == {newsletter.id: "unsubscribed"}


def test_key_rotation_old_secret_still_verifies(client, app, session, newsletter, smtp_server, monkeypatch):
    path = confirmation_for(client, smtp_server, "rot@example.org")
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [app.config["SECRET_KEY"]])
    monkeypatch.setitem(app.config, "SECRET_KEY", "a-brand-new-secret-key-0123456789")
    fresh = tokens.sign_timed(tokens.CONFIRM, [1, "x"])
    with_new_only = URLSafeTimedSerializer("a-brand-new-secret-key-0123456789", salt="mailer.confirm")
    assert with_new_only.loads(fresh) == [1, "x"]  # the new key signs
    page = client.get(path)  # the old key still verifies
    assert page.status_code == 200 and "Potwierdzam zapis" in page.get_data(as_text=True)
    subscriptions.confirm(session, path.rsplit("/", 1)[1])  # (Flask-WTF's CSRF has no fallbacks)
    session.commit()
    assert statuses(session, "rot@example.org") == {newsletter.id: "confirmed"}

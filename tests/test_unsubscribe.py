"""Leaving: GET changes nothing, the page's POST needs CSRF, RFC 8058 one-click works without
cookies or token, idempotent, per-list choices, campaign tokens."""

import pytest
from sqlalchemy import func, select

from mailer import subscriptions, tokens
from mailer.models import Campaign, ConsentRecord, SubscriptionStatus
from tests.helpers_visitor import barrier, consents, csrf_token, drain, make_list, statuses, subscriber


@pytest.fixture
def newsletter(request, session, smtp_server, celery_worker):
    yield make_list(session)
    drain(request, session, smtp_server)


def confirmed(session, email, lists):
    subscriptions.subscribe(session, email=email, consent=True, source="admin",
                            list_ids=[item.id for item in lists])
    session.commit()
    sub = subscriber(session, email)
    for item in sub.subscriptions:
        item.status = SubscriptionStatus.CONFIRMED
    session.commit()
    return sub


def test_get_changes_nothing_and_page_post_needs_csrf(client, session, newsletter):
    sub = confirmed(session, "ela@example.org", [newsletter])
    path = f"/u/{tokens.unsubscribe_token(sub.id)}"
    page = client.get(path)
    assert page.status_code == 200
    assert "Czy chcesz przestać otrzymywać nasz newsletter na adres ela@example.org?" in page.get_data(as_text=True)
    assert statuses(session, "ela@example.org") == {newsletter.id: "confirmed"}
    assert client.post(path).status_code == 400  # no CSRF token, not one-click
    assert statuses(session, "ela@example.org") == {newsletter.id: "confirmed"}
    done = client.post(path, data={"csrf_token": csrf_token(page.data)})
    assert done.status_code == 200
    assert "Wypisano Cię z newslettera." in done.get_data(as_text=True)
    assert statuses(session, "ela@example.org") == {newsletter.id: "unsubscribed"}
    record = consents(session, "ela@example.org")[-1]
    assert (record.action, record.source, record.list_id) == ("unsubscribe", "form", newsletter.id)


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_without_cookie_or_token(app, session, newsletter, smtp_server, multipart):
    sub = confirmed(session, "one@example.org", [newsletter])
    client = app.test_client(use_cookies=False)
    path = f"/u/{tokens.unsubscribe_token(sub.id, None)}"
    kwargs = ({"data": {"List-Unsubscribe": "One-Click"}, "content_type": "multipart/form-data"}
              if multipart else {"data": "List-Unsubscribe=One-Click",
                                 "content_type": "application/x-www-form-urlencoded"})
    for _ in range(2):  # idempotent
        response = client.post(path, **kwargs)
        assert response.status_code == 200
        assert "Location" not in response.headers
    assert statuses(session, "one@example.org") == {newsletter.id: "unsubscribed"}
    records = [c for c in consents(session, "one@example.org") if c.action == "unsubscribe"]
    assert [(c.source, c.list_id) for c in records] == [("one-click", newsletter.id)]
    # a campaign's mail to the address now finds nobody; the welcome task sends nothing
    app.extensions["celery"].send_task("mailer.send_welcome", args=[sub.id])
    mails = [m for m in barrier(session, smtp_server) if "one@example.org" in m.recipients]
    assert not [m for m in mails if m.message["Subject"].startswith("Witamy")]


def test_per_list_choices(client, session, newsletter):
    sport = make_list(session, name="Sport i rekreacja", slug="sport")
    sub = confirmed(session, "multi@example.org", [newsletter, sport])
    path = f"/u/{tokens.unsubscribe_token(sub.id)}"
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert "Wydarzenia w mieście" in text and "Sport i rekreacja" in text
    client.post(path, data={"csrf_token": csrf_token(page.data), "choose_lists": "1",
                            "lists": [str(sport.id)]})
    assert statuses(session, "multi@example.org") == {newsletter.id: "confirmed", sport.id: "unsubscribed"}
    nothing = client.post(path, data={"csrf_token": csrf_token(page.data), "choose_lists": "1"})
    assert nothing.status_code == 400
    assert statuses(session, "multi@example.org")[newsletter.id] == "confirmed"


def test_campaign_token_leaves_only_the_campaigns_lists(client, session, newsletter):
    sport = make_list(session, name="Sport", slug="sport")
    sub = confirmed(session, "camp@example.org", [newsletter, sport])
    campaign = Campaign(subject="Zapowiedź", lists=[sport])
    session.add(campaign)
    session.commit()
    path = f"/u/{tokens.unsubscribe_token(sub.id, campaign.id)}"
    page = client.get(path).get_data(as_text=True)
    assert f'value="{sport.id}" checked' in page and f'value="{newsletter.id}" >' in page
    client.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert statuses(session, "camp@example.org") == {newsletter.id: "confirmed", sport.id: "unsubscribed"}


@pytest.mark.parametrize("make_token", [
    lambda sid: "forged",
    lambda sid: tokens.sign(tokens.VIEW, [1, sid]),
    lambda sid: tokens.sign_timed(tokens.CONFIRM, [sid, "x"]),
    lambda sid: tokens.unsubscribe_token(sid)[:-2] + "xx",
    lambda sid: tokens.sign(tokens.UNSUBSCRIBE, "not-an-id"),
])
def test_forged_or_wrong_purpose_tokens(client, session, newsletter, make_token):
    sub = confirmed(session, "safe@example.org", [newsletter])
    path = f"/u/{make_token(sub.id)}"
    response = client.get(path)
    assert response.status_code == 400
    assert "Ten link jest nieprawidłowy." in response.get_data(as_text=True)
    one_click = client.post(path, data="List-Unsubscribe=One-Click",
                            content_type="application/x-www-form-urlencoded")
    assert one_click.status_code == 400
    assert statuses(session, "safe@example.org") == {newsletter.id: "confirmed"}


def test_token_never_expires_and_survives_key_rotation(client, app, session, newsletter, monkeypatch):
    sub = confirmed(session, "old@example.org", [newsletter])
    token = tokens.unsubscribe_token(sub.id)
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [app.config["SECRET_KEY"]])
    monkeypatch.setitem(app.config, "SECRET_KEY", "rotated-secret-0123456789abcdef")
    assert tokens.unsubscribe_token(sub.id) != token
    response = client.post(f"/u/{token}", data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert statuses(session, "old@example.org") == {newsletter.id: "unsubscribed"}


def test_unknown_subscriber_gets_a_calm_page(client, session, newsletter):
    path = f"/u/{tokens.unsubscribe_token(987654)}"
    assert client.get(path).status_code == 200
    response = client.post(path, data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert session.scalar(select(func.count(ConsentRecord.id))) == 0

"""Interests: categories staff keep (audited), events carry (form and API), subscribers choose
in the preference centre; a digest shows each recipient the events of their interests, and a
campaign whose events all have categories goes only to those interested."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mailer import sending, tokens
from mailer.mail.render import SECTION_END, Personalizer, section_start
from mailer.models import (
    AuditEntry,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Category,
    Event,
    Role,
    subscriber_interests,
)
from tests.helpers_api import Api, token_for
from tests.helpers_content import log_in, make_staff
from tests.helpers_engine import campaign_status, wait_until
from tests.helpers_staff import make_subscriber
from tests.helpers_visitor import csrf_token, drain, html_part, make_list, text_part


@pytest.fixture
def newsletter(request, session, smtp_server, celery_worker):
    yield make_list(session)
    drain(request, session, smtp_server)


def category(session, slug, pl, en):
    item = Category(slug=slug, name_pl=pl, name_en=en)
    session.add(item)
    session.commit()
    return item


def event(session, title, categories=(), days=7):
    item = Event(title=title, starts_at=datetime.now(timezone.utc) + timedelta(days=days), place="Rynek",
                 summary=f"O wydarzeniu {title}")
    item.categories = list(categories)
    session.add(item)
    session.commit()
    return item


def interested(session, subscriber, *categories):
    for item in categories:
        session.execute(subscriber_interests.insert().values(subscriber_id=subscriber.id, category_id=item.id))
    session.commit()


def test_sections_left_out_per_recipient():
    html = (f"<p>Hi @@mlr:name@@,</p>{section_start(1)}<div>one</div>{SECTION_END}"
            f"{section_start(2)}<div>two @@mlr:email@@</div>{SECTION_END}<a href='@@mlr:unsubscribe_url@@'>x</a>")
    part = Personalizer(html, True)
    values = {"name": "Ola", "email": "o@example.org", "unsubscribe_url": "u"}
    assert part(values) == "<p>Hi Ola,</p><div>one</div><div>two o@example.org</div><a href='u'>x</a>"
    assert part(values, frozenset({2})) == "<p>Hi Ola,</p><div>two o@example.org</div><a href='u'>x</a>"
    assert part(values, frozenset({1})) == "<p>Hi Ola,</p><div>one</div><a href='u'>x</a>"
    assert part(values, frozenset()) == "<p>Hi Ola,</p><a href='u'>x</a>"


def test_staff_keep_categories_each_change_audited(client, session):
    editor = make_staff(session, role=Role.EDITOR)
    log_in(client, editor)
    page = client.get("/admin/categories")
    assert page.status_code == 200 and "Kategorie" in page.get_data(as_text=True)
    token = csrf_token(page.data)
    bad = client.post("/admin/categories", data={"csrf_token": token, "name_pl": "Koncerty", "name_en": "Concerts",
                                                 "slug": "Koncerty i!"})
    assert bad.status_code == 400 and "Użyj małych liter, cyfr i łączników" in bad.get_data(as_text=True)
    made = client.post("/admin/categories", data={"csrf_token": token, "name_pl": "Koncerty",
                                                  "name_en": "Concerts", "slug": "koncerty"})
    assert made.status_code == 302
    session.rollback()
    item = session.scalar(select(Category))
    assert (item.slug, item.name_pl, item.name_en) == ("koncerty", "Koncerty", "Concerts")
    item_id = item.id
    taken = client.post("/admin/categories", data={"csrf_token": token, "name_pl": "Inne", "name_en": "Other",
                                                   "slug": "koncerty"})
    assert taken.status_code == 400
    assert client.post(f"/admin/categories/{item_id}", data={
        "csrf_token": token, "name_pl": "Muzyka", "name_en": "Music", "slug": "muzyka"}).status_code == 302
    assert client.post(f"/admin/categories/{item_id}/delete", data={"csrf_token": token}).status_code == 302
    session.rollback()
    assert session.scalar(select(Category)) is None
    entries = session.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.actor)
                              .where(AuditEntry.action.like("category.%")).order_by(AuditEntry.id)).all()
    assert [tuple(e) for e in entries] == [("category.create", str(item_id), editor.email),
                                           ("category.update", str(item_id), editor.email),
                                           ("category.delete", str(item_id), editor.email)]


def test_events_carry_categories_in_the_form_and_the_api(client, session):
    concerts = category(session, "koncerty", "Koncerty", "Concerts")
    sport = category(session, "sport", "Sport", "Sport")
    editor = make_staff(session, role=Role.EDITOR)
    log_in(client, editor)
    form = client.get("/admin/events/new")
    assert "Koncerty" in form.get_data(as_text=True)
    saved = client.post("/admin/events/new", data={
        "csrf_token": csrf_token(form.data), "title": "Jazz nad rzeką", "starts_at": "2030-06-01T19:00",
        "category_ids": [str(concerts.id), str(sport.id)]})
    assert saved.status_code == 302
    session.rollback()
    made = session.scalar(select(Event).where(Event.title == "Jazz nad rzeką"))
    assert {c.slug for c in made.categories} == {"koncerty", "sport"}
    unknown = client.post(f"/admin/events/{made.id}", data={
        "csrf_token": csrf_token(form.data), "title": "Jazz", "starts_at": "2030-06-01T19:00",
        "category_ids": ["999999"]})
    assert unknown.status_code == 400 and "Wybierz kategorie z listy." in unknown.get_data(as_text=True)

    api = Api(client.application.test_client(), token_for(Role.EDITOR, "api@miasto.example.pl"))
    created = api.post("/events", {"title": "Bieg", "starts_at": "2030-07-01T09:00", "category_ids": [sport.id]})
    assert created.status_code == 201 and created.json["category_ids"] == [sport.id]
    changed = api.patch(f"/events/{created.json['id']}", {"category_ids": [concerts.id]})
    assert changed.status_code == 200 and changed.json["category_ids"] == [concerts.id]
    kept = api.patch(f"/events/{created.json['id']}", {"title": "Bieg nocny"})
    assert kept.json["category_ids"] == [concerts.id]
    assert api.post("/events", {"title": "X", "starts_at": "2030-07-01T09:00",
                                "category_ids": [424242]}).status_code == 400
    listed = api.get("/categories")
    assert listed.status_code == 200 and [c["slug"] for c in listed.json["items"]] == ["koncerty", "sport"]


def test_subscribers_choose_interests_in_the_preference_centre(client, session, newsletter):
    concerts = category(session, "koncerty", "Koncerty", "Concerts")
    sport = category(session, "sport", "Sport", "Sports")
    sub = make_subscriber(session, "fan@example.org", lists=[newsletter])
    sub.locale = "en"
    session.commit()
    path = f"/p/{tokens.manage_token(sub.id)}"
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert "Your interests" in text and "Concerts" in text and "Sports" in text
    data = {"csrf_token": csrf_token(page.data), "name": "", "locale": "en", "lists": [str(newsletter.id)],
            "interests_shown": "1", "interests": [str(sport.id)]}
    assert client.post(path, data=data).status_code == 302
    assert client.post(path, data={**data, "interests": ["nope"]}).status_code == 400
    session.rollback()
    chosen = session.scalars(select(subscriber_interests.c.category_id)
                             .where(subscriber_interests.c.subscriber_id == sub.id)).all()
    assert chosen == [sport.id]
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "subscriber.preferences")).all()
    assert entry.detail == {"interests": ["sport"]}
    assert concerts.id not in chosen


def test_one_digest_two_subscribers_different_interests(app, session, newsletter, smtp_server):
    concerts = category(session, "koncerty", "Koncerty", "Concerts")
    sport = category(session, "sport", "Sport", "Sport")
    theatre = category(session, "teatr", "Teatr", "Theatre")
    jazz = event(session, "Jazz na Rynku", [concerts])
    run = event(session, "Bieg Niepodległości", [sport], days=8)
    fair = event(session, "Jarmark świąteczny", [], days=9)
    melomane = make_subscriber(session, "meloman@example.org", lists=[newsletter])
    runner = make_subscriber(session, "biegacz@example.org", lists=[newsletter])
    anyone = make_subscriber(session, "wszystko@example.org", lists=[newsletter])
    actor = make_subscriber(session, "aktor@example.org", lists=[newsletter])
    interested(session, melomane, concerts)
    interested(session, runner, sport)
    interested(session, actor, theatre)

    digest = Campaign(subject="Najbliższe wydarzenia", name="Przegląd", locale="pl")
    digest.lists = [newsletter]
    digest.campaign_events = [CampaignEvent(event_id=item.id, position=n) for n, item in enumerate([jazz, run, fair])]
    session.add(digest)
    session.commit()
    sending.launch(session, digest.id)
    session.commit()
    wait_until(lambda: campaign_status(digest.id) == CampaignStatus.SENT)
    received = {m.recipients[0]: m for m in smtp_server.wait_for(4)}
    assert set(received) == {"meloman@example.org", "biegacz@example.org", "wszystko@example.org",
                             "aktor@example.org"}

    def titles(mail):
        raw = html_part(mail) + text_part(mail)
        assert "@@mlr" not in raw and b"@@mlr" not in mail.data
        return {title for title in ("Jazz na Rynku", "Bieg Niepodległości", "Jarmark świąteczny")
                if title in html_part(mail) and title in text_part(mail)}

    assert titles(received["meloman@example.org"]) == {"Jazz na Rynku", "Jarmark świąteczny"}
    assert titles(received["biegacz@example.org"]) == {"Bieg Niepodległości", "Jarmark świąteczny"}
    assert titles(received["wszystko@example.org"]) == {"Jazz na Rynku", "Bieg Niepodległości", "Jarmark świąteczny"}
    assert titles(received["aktor@example.org"]) == {"Jarmark świąteczny"}  # uncategorised: for everyone
    assert "Bieg" not in text_part(received["meloman@example.org"])

    # A campaign whose events all have categories reaches only those interested (or with none chosen)
    smtp_server.reset()
    concert_news = Campaign(subject="Jazz!", name="Jazz", locale="pl")
    concert_news.lists = [newsletter]
    concert_news.campaign_events = [CampaignEvent(event_id=jazz.id, position=0)]
    session.add(concert_news)
    session.commit()
    sending.launch(session, concert_news.id)
    session.commit()
    wait_until(lambda: campaign_status(concert_news.id) == CampaignStatus.SENT)
    smtp_server.wait_for(2)
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "meloman@example.org", "wszystko@example.org"]

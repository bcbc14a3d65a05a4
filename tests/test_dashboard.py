"""The dashboard: figures by status and list, the sign-up chart, recent campaigns."""

from datetime import timedelta

from mailer import stats
from mailer.models import Campaign, CampaignStatus, Role, SubscriptionStatus, utcnow
from tests.helpers_staff import login_as, make_list, make_subscriber


def test_figures(session):
    koncerty, wystawy = make_list(session, "Koncerty"), make_list(session, "Wystawy", public=False)
    make_subscriber(session, "a@example.org", lists=[koncerty, wystawy])
    make_subscriber(session, "b@example.org", lists=[koncerty], status=SubscriptionStatus.PENDING)
    old = make_subscriber(session, "c@example.org", lists=[wystawy], status=SubscriptionStatus.UNSUBSCRIBED)
    old.created_at = utcnow() - timedelta(days=5)
    ancient = make_subscriber(session, "d@example.org")
    ancient.created_at = utcnow() - timedelta(days=200)
    session.commit()
    data = stats.dashboard(session)
    assert data["subscribers"] == 4
    assert data["by_status"] == {"pending": 1, "confirmed": 2, "unsubscribed": 1}
    per_list = {row["list"].name: row for row in data["by_list"]}
    assert (per_list["Koncerty"]["confirmed"], per_list["Koncerty"]["pending"]) == (1, 1)
    assert (per_list["Wystawy"]["confirmed"], per_list["Wystawy"]["unsubscribed"]) == (1, 1)
    series = stats.signups_per_day(session)
    assert len(series) == 90 and series[-1] == (utcnow().date(), 2)
    assert dict(series)[(utcnow() - timedelta(days=5)).date()] == 1
    assert sum(count for _, count in series) == 3  # the 200-day-old one is outside


def test_chart_geometry():
    today = utcnow().date()
    chart = stats.chart([(today - timedelta(days=2), 0), (today - timedelta(days=1), 4), (today, 2)])
    heights = [bar["h"] for bar in chart["bars"]]
    assert heights[0] == 0 and heights[1] == 2 * heights[2] > 0
    assert chart["max"] == 4 and chart["total"] == 6
    assert stats.chart([])["bars"] == []


def test_dashboard_page(client, session):
    lst = make_list(session, "Koncerty")
    make_subscriber(session, "a@example.org", lists=[lst])
    session.add(Campaign(subject="Koncert kolęd", status=CampaignStatus.SENDING, total_count=10, sent_count=4))
    session.commit()
    login_as(client, session, Role.EDITOR)
    page = client.get("/admin/?lang=en")
    text = page.data.decode()
    assert page.status_code == 200
    assert "<svg" in text and text.count("<rect") == 90
    assert "Koncert kolęd" in text and 'badge sending' in text and "4 / 10" in text
    assert "<script" not in text.split("<main")[1].split("</main>")[0]  # the chart needs no JS
    assert "Pulpit" in client.get("/admin/?lang=pl").data.decode()


def test_people_and_list_sign_ups_are_labelled_apart(client, session):
    """Two people, one of them on two lists: 2 people beside 3 confirmed sign-ups, each
    figure saying what it counts, in Polish and English."""
    koncerty, wystawy = make_list(session, "Koncerty"), make_list(session, "Wystawy")
    make_subscriber(session, "a@example.org", lists=[koncerty, wystawy])
    make_subscriber(session, "b@example.org", lists=[koncerty])
    login_as(client, session, Role.EDITOR)
    polish = client.get("/admin/?lang=pl").data.decode()
    assert '<p class="stat-big" id="people-count">2</p>' in polish
    assert "osoby (każdy adres raz, niezależnie od list)" in polish
    assert "Zapisy na listy (osoba zapisana na dwie listy liczy się dwa razy):" in polish
    assert "potwierdzone: 3" in polish
    english = client.get("/admin/?lang=en").data.decode()
    assert "people (each address once, whatever the lists)" in english
    assert "Sign-ups to lists (a person on two lists counts twice):" in english and "confirmed: 3" in english

"""Lists: unique names, subscriber counts, archiving and deleting (pages, domain, API)."""

import pytest
from sqlalchemy import func, select

from mailer import campaigns, lists, stats, subscriptions
from mailer.errors import Conflict, InvalidInput
from mailer.models import (
    AuditEntry,
    CampaignStatus,
    ConsentRecord,
    MailingList,
    Role,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tests.helpers_api import Api, admin_token, assert_error  # noqa: F401
from tests.helpers_engine import make_campaign
from tests.helpers_staff import login_as, make_subscriber, post


@pytest.mark.parametrize("other", ["koncerty", "  KONCERTY ", "Koncerty  ", "koNcErTy"])
def test_list_names_are_unique_whatever_case_and_spaces(session, other):
    lists.create_list(session, name="Koncerty")
    with pytest.raises(Conflict) as caught:
        lists.create_list(session, name=other)
    assert caught.value.field == "name"


def test_polish_capitals_fold_and_renaming_keeps_own_name(session):
    first = lists.create_list(session, name="Żółć")
    second = lists.create_list(session, name="Łąka")
    with pytest.raises(Conflict):
        lists.create_list(session, name="ŻÓŁĆ")
    lists.update_list(session, first.id, name="żółć", description="", public=True)  # its own name
    with pytest.raises(Conflict):
        lists.update_list(session, second.id, name="żółć ", description="", public=True)


def test_the_form_says_the_name_is_taken(client, session):
    lists.create_list(session, name="Wystawy")
    session.commit()
    login_as(client, session, Role.ADMIN)
    response = post(client, "/admin/lists", {"name": " wystawy ", "public": "y"}, "/admin/lists")
    assert response.status_code == 400
    assert "Lista o nazwie „Wystawy” już istnieje.".encode() in response.data
    assert session.scalar(select(func.count(MailingList.id))) == 1


def test_the_api_answers_409_for_a_taken_name(client, session, admin_token):  # noqa: F811
    api = Api(client, admin_token)
    assert api.post("/lists", {"name": "Koncerty"}).status_code == 201
    assert_error(api.post("/lists", {"name": "KONCERTY"}), 409, "name")
    other = api.post("/lists", {"name": "Teatr"}).get_json()
    assert_error(api.patch(f"/lists/{other['id']}", {"name": "koncerty"}), 409, "name")


def test_the_lists_page_counts_subscribers_by_status(client, session):
    item = lists.create_list(session, name="Koncerty")
    empty = lists.create_list(session, name="Pusta")
    session.commit()
    for n in range(3):
        make_subscriber(session, f"c{n}@example.org", lists=[item])
    make_subscriber(session, "p@example.org", lists=[item], status=SubscriptionStatus.PENDING)
    make_subscriber(session, "u@example.org", lists=[item], status=SubscriptionStatus.UNSUBSCRIBED)
    rows = dict((row.id, counts) for row, counts in lists.overview(session))
    assert rows[item.id] == lists.ListCounts(confirmed=3, pending=1, unsubscribed=1)
    assert rows[empty.id] == lists.ListCounts()
    login_as(client, session, Role.EDITOR)
    page = client.get("/admin/lists").get_data(as_text=True)
    section = page.split(f'id="list-{item.id}"')[1].split("</tr>")[0]
    assert "potwierdzone: 3" in section and "oczekujące: 1" in section and "wypisane: 1" in section


def test_with_a_large_audience_the_lists_are_counted_by_the_background_summary(client, session, admin_token,  # noqa: F811
                                                                                monkeypatch):
    """Counting every subscription for the lists page took 230 ms at a million: with a large
    audience the page and the API read the summary beat keeps (and say when it was made)."""
    item = lists.create_list(session, name="Koncerty")
    session.commit()
    make_subscriber(session, "c0@example.org", lists=[item])
    monkeypatch.setattr(stats, "audience_is_small", lambda _session: False)
    stats.refresh_summary(session)
    make_subscriber(session, "c1@example.org", lists=[item])  # after the summary: not in it yet
    login_as(client, session, Role.EDITOR)
    page = client.get("/admin/lists").get_data(as_text=True)
    section = page.split(f'id="list-{item.id}"')[1].split("</tr>")[0]
    assert "potwierdzone: 1" in section and "Policzono" in page
    listed = Api(client, admin_token).get("/lists").get_json()
    assert listed["counted_at"] and [x["counts"]["confirmed"] for x in listed["items"] if x["id"] == item.id] == [1]
    stats.refresh_summary(session)
    assert "potwierdzone: 2" in client.get("/admin/lists").get_data(as_text=True)
    monkeypatch.undo()
    page = client.get("/admin/lists").get_data(as_text=True)  # a small audience: counted now
    assert "Policzono" not in page and Api(client, admin_token).get("/lists").get_json()["counted_at"] is None


def test_archived_list_is_hidden_from_sign_up_and_new_campaigns(client, session):
    kept = lists.create_list(session, name="Koncerty")
    old = lists.create_list(session, name="Lato 2025")
    session.commit()
    login_as(client, session, Role.ADMIN)
    response = post(client, f"/admin/lists/{old.id}/archive", {"archived": "1"}, "/admin/lists", follow_redirects=True)
    assert "Lista „Lato 2025” została zarchiwizowana." in response.get_data(as_text=True)
    session.expire_all()
    assert [m.id for m in lists.public_lists(session)] == [kept.id]
    with pytest.raises(InvalidInput):
        subscriptions.subscribe(session, email="ktos@example.org", list_ids=[old.id], consent=True,
                                source="form")
    assert "Lato 2025" not in client.get("/").get_data(as_text=True)
    assert "Lato 2025" not in client.get("/admin/campaigns/new").get_data(as_text=True)
    assert "Lato 2025" in client.get("/admin/lists").get_data(as_text=True)  # still listed, archived
    with pytest.raises(InvalidInput):
        campaigns.create_campaign(session, event_ids=[], list_ids=[old.id])
    # and back
    assert post(client, f"/admin/lists/{old.id}/archive", {"archived": "0"}, "/admin/lists").status_code == 302
    session.expire_all()
    assert {m.id for m in lists.public_lists(session)} == {kept.id, old.id}


def test_a_campaign_keeps_its_archived_list(session):
    old = lists.create_list(session, name="Lato 2025")
    campaign = make_campaign(session, [old])
    lists.set_archived(session, old.id, True)
    options = campaigns.compose_options(session, campaign)
    assert old.id in [m.id for m in options["lists"]]
    assert old.id not in [m.id for m in campaigns.compose_options(session)["lists"]]
    campaigns.update_campaign(session, campaign.id, {"list_ids": [old.id]})  # not refused: already there


def test_delete_asks_naming_the_subscriptions_then_deletes(client, session, fresh):
    item = lists.create_list(session, name="Koncerty")
    other = lists.create_list(session, name="Teatr")
    session.commit()
    person = make_subscriber(session, "a@example.org", lists=[item, other])
    make_subscriber(session, "b@example.org", lists=[item])
    login_as(client, session, Role.ADMIN)
    page = client.get("/admin/lists").get_data(as_text=True)
    assert "Usunąć listę „Koncerty”? Usunięte zostaną też jej zapisy (2)" in page
    assert post(client, f"/admin/lists/{item.id}/delete", {}, "/admin/lists").status_code == 302
    check = fresh()
    assert check.get(MailingList, item.id) is None
    assert check.scalar(select(func.count()).select_from(Subscription).where(Subscription.list_id == item.id)) == 0
    assert check.get(Subscriber, person.id) is not None  # people stay, with their consent records
    assert check.scalar(select(func.count(ConsentRecord.id)).where(ConsentRecord.subscriber_id == person.id)) == 2
    assert check.get(Subscription, (person.id, other.id)) is not None
    entry = check.scalar(select(AuditEntry).where(AuditEntry.action == "list.delete"))
    assert entry.target == str(item.id) and entry.detail["subscriptions"] == 2


def test_a_list_of_a_sending_or_scheduled_campaign_is_not_deleted(client, session, fresh, admin_token):  # noqa: F811
    item = lists.create_list(session, name="Koncerty")
    campaign = make_campaign(session, [item], subject="Jarmark")
    campaign.status = CampaignStatus.SCHEDULED
    session.commit()
    with pytest.raises(Conflict):
        lists.delete_list(session, item.id)
    session.rollback()
    login_as(client, session, Role.ADMIN)
    response = post(client, f"/admin/lists/{item.id}/delete", {}, "/admin/lists", follow_redirects=True)
    assert response.status_code == 200
    assert "Nie można usunąć tej listy: kampania „Jarmark”" in response.get_data(as_text=True)
    assert fresh().get(MailingList, item.id) is not None
    api = Api(client, admin_token)
    assert_error(api.delete(f"/lists/{item.id}"), 409)


def test_api_archives_deletes_and_counts(client, session, admin_token):  # noqa: F811
    api = Api(client, admin_token)
    created = api.post("/lists", {"name": "Koncerty"}).get_json()
    assert created["archived"] is False
    changed = api.patch(f"/lists/{created['id']}", {"archived": True})
    assert changed.status_code == 200 and changed.get_json()["archived"] is True
    listing = api.get("/lists").get_json()["items"]
    assert listing[0]["counts"] == {"confirmed": 0, "pending": 0, "unsubscribed": 0}
    assert api.delete(f"/lists/{created['id']}").status_code == 204
    assert_error(api.delete(f"/lists/{created['id']}"), 404)


def test_editor_cannot_archive_or_delete(client, session):
    item = lists.create_list(session, name="Koncerty")
    session.commit()
    login_as(client, session, Role.EDITOR)
    assert post(client, f"/admin/lists/{item.id}/archive", {"archived": "1"}).status_code == 403
    assert post(client, f"/admin/lists/{item.id}/delete", {}).status_code == 403

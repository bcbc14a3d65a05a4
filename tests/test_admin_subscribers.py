"""Subscribers: search, a subscriber's page, manual unsubscribe, JSON export, erasure, CSV export."""

import csv
import io
import json

import pytest
from sqlalchemy import func, select

from mailer import audience, subscriptions, suppression
from mailer.errors import InvalidInput, NotFound
from mailer.models import (
    Campaign,
    ConsentRecord,
    Delivery,
    DeliveryStatus,
    Role,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    utcnow,
)
from tests.helpers_staff import login_as, make_list, make_subscriber, post


@pytest.fixture
def people(session):
    koncerty, wystawy = make_list(session, "Koncerty"), make_list(session, "Wystawy")
    anna = make_subscriber(session, "anna.kowalska@example.org", "Anna Kowalska", [koncerty])
    jan = make_subscriber(session, "jan@example.org", "Jan Wiśniewski", [koncerty, wystawy],
                          status=SubscriptionStatus.PENDING)
    ola = make_subscriber(session, "ola@example.net", "=HYPERLINK(\"http://evil\")", [wystawy])
    return {"koncerty": koncerty, "wystawy": wystawy, "anna": anna, "jan": jan, "ola": ola}


def emails(rows):
    return sorted(row.email for row in rows)


def test_search_by_text_list_and_status(session, people):
    assert audience.search(session).total == 3
    assert emails(audience.search(session, query="KOWAL").rows) == ["anna.kowalska@example.org"]
    assert emails(audience.search(session, query="wiśniewski").rows) == ["jan@example.org"]
    assert emails(audience.search(session, list_id=people["wystawy"].id).rows) == ["jan@example.org",
                                                                                   "ola@example.net"]
    assert emails(audience.search(session, status="pending").rows) == ["jan@example.org"]
    assert audience.search(session, list_id=people["wystawy"].id, status="confirmed").total == 1
    assert audience.search(session, query="%").total == 0  # wildcards are literal
    found = audience.search(session, page=2, per_page=2)
    assert found.total == 3 and len(found.rows) == 1
    with pytest.raises(InvalidInput):
        audience.search(session, status="vip")
    with pytest.raises(InvalidInput):
        audience.search(session, query="x" * 300)


def test_search_ignores_case_and_polish_diacritics(session):
    """SQLite's lower() folds only A-Z: the folded search text finds Polish names on both databases."""
    lukasz = make_subscriber(session, "l.zolkiewski@example.org", "Łukasz Żółkiewski")
    zolc = make_subscriber(session, "kolor@example.org", "żółć")
    make_subscriber(session, "inny@example.org", "Anna Nowak")
    for query in ("Łukasz", "łukasz", "LUKASZ", "lukasz", "Żółkiewski", "ZOLKIEWSKI", "żółk"):
        assert emails(audience.search(session, query=query).rows) == [lukasz.email], query
    assert emails(audience.search(session, query="ŻÓŁĆ").rows) == [zolc.email]
    assert emails(audience.search(session, query="zolc").rows) == [zolc.email]
    subscriber = session.get(Subscriber, lukasz.id)
    subscriber.name = "Bartłomiej Wójcik"  # renamed: the search text follows
    session.commit()
    assert emails(audience.search(session, query="wojcik").rows) == [lukasz.email]
    assert audience.search(session, query="lukasz").total == 0


def test_keyset_pages_walk_the_whole_selection(session, people):
    for n in range(7):
        make_subscriber(session, f"p{n}@example.org", f"Strona {n}")
    seen, after = [], None
    while True:
        found = audience.search(session, per_page=3, after=after)
        seen += [row.email for row in found.rows]
        if found.next_after is None:
            break
        after = found.next_after
    assert len(seen) == len(set(seen)) == 10
    second = audience.search(session, per_page=3, after=audience.search(session, per_page=3).next_after)
    back = audience.search(session, per_page=3, before=second.prev_before)
    assert [row.email for row in back.rows] == seen[:3] and back.prev_before is None


def test_subscribers_page_filters_and_paginates(client, session, people):
    login_as(client, session, Role.EDITOR)
    page = client.get("/admin/subscribers?q=example.org")
    assert page.status_code == 200
    assert b"anna.kowalska@example.org" in page.data and b"ola@example.net" not in page.data
    page = client.get(f"/admin/subscribers?list_id={people['wystawy'].id}&status=confirmed")
    assert b"ola@example.net" in page.data and b"jan@example.org" not in page.data
    assert client.get("/admin/subscribers?status=vip").status_code == 400
    assert client.get("/admin/subscribers?list_id=abc").status_code == 400
    assert client.get("/admin/subscribers?after=x").status_code == 400


def test_subscriber_page_shows_subscriptions_consent_and_mail(client, session, people):
    campaign = Campaign(subject="Koncert kolęd na Rynku", status="sent")
    session.add(campaign)
    session.flush()
    session.add(Delivery(campaign_id=campaign.id, subscriber_id=people["anna"].id,
                         status=DeliveryStatus.SENT, sent_at=utcnow()))
    session.commit()
    login_as(client, session, Role.EDITOR)
    page = client.get(f"/admin/subscribers/{people['anna'].id}")
    assert page.status_code == 200
    text = page.data.decode()
    assert "Koncerty" in text and "Koncert kolęd na Rynku" in text
    assert "export.json" not in text and "/erase" not in text  # editors only read
    # Where a consent came from is for admins (as in the API: tests/test_security_access.py)
    assert "203.0.113.5" not in text
    admin = client.application.test_client()
    login_as(admin, session, Role.ADMIN)
    assert "203.0.113.5" in admin.get(f"/admin/subscribers/{people['anna'].id}").get_data(as_text=True)
    assert client.get("/admin/subscribers/999999").status_code == 404


def test_json_export_has_consent_history(client, session, people):
    login_as(client, session, Role.ADMIN)
    response = post(client, f"/admin/subscribers/{people['jan'].id}/export.json")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.data)
    assert data["email"] == "jan@example.org" and data["name"] == "Jan Wiśniewski"
    assert {s["list"] for s in data["subscriptions"]} == {"Koncerty", "Wystawy"}
    assert len(data["consent_history"]) == 2 and data["consent_history"][0]["ip"] == "203.0.113.5"
    with pytest.raises(NotFound):
        audience.export_subscriber(session, 999_999)


def test_manual_unsubscribe_from_one_list_and_from_all(client, session, people):
    login_as(client, session, Role.ADMIN)
    jan = people["jan"]
    url = f"/admin/subscribers/{jan.id}/unsubscribe"
    assert post(client, url, {"list_id": str(people["koncerty"].id)}).status_code == 302
    statuses = dict(session.execute(select(Subscription.list_id, Subscription.status)
                                    .where(Subscription.subscriber_id == jan.id)).all())
    assert statuses == {people["koncerty"].id: SubscriptionStatus.UNSUBSCRIBED,
                        people["wystawy"].id: SubscriptionStatus.PENDING}
    assert post(client, url).status_code == 302
    session.expire_all()
    assert {s.status for s in session.get(Subscriber, jan.id).subscriptions} == {SubscriptionStatus.UNSUBSCRIBED}
    sources = session.scalars(select(ConsentRecord.source).where(
        ConsentRecord.subscriber_id == jan.id, ConsentRecord.action == "unsubscribe")).all()
    assert sources == ["admin", "admin"]
    assert post(client, url, {"list_id": "abc"}).status_code == 400


def test_erasure_needs_confirmation_then_leaves_only_a_hash(client, session, people):
    anna = people["anna"]
    campaign = Campaign(subject="Wystawa", status="sent")
    session.add(campaign)
    session.flush()
    session.add(Delivery(campaign_id=campaign.id, subscriber_id=anna.id, status=DeliveryStatus.SENT))
    session.commit()
    anna_id = anna.id
    login_as(client, session, Role.ADMIN)
    url = f"/admin/subscribers/{anna_id}/erase"
    assert b"anna.kowalska@example.org" in client.get(url).data
    assert post(client, url, page=url).status_code == 400  # box not ticked
    assert session.get(Subscriber, anna_id) is not None
    assert post(client, url, {"confirm": "yes"}, page=url).status_code == 302
    session.expire_all()
    assert session.get(Subscriber, anna_id) is None
    for model in (Subscription, ConsentRecord, Delivery):
        assert session.scalar(select(func.count()).select_from(model).where(model.subscriber_id == anna_id)) == 0
    assert suppression.is_suppressed(session, "anna.kowalska@example.org")
    assert session.scalar(select(Suppression.reason)) == "erased"
    # a later sign-up of that address only waits for its owner's confirmation (issue 11)
    subscriptions.subscribe(session, email="Anna.Kowalska@example.org", consent=True, source="admin",
                            list_ids=[people["koncerty"].id])
    session.commit()
    again = session.scalar(select(Subscriber).where(Subscriber.email == "anna.kowalska@example.org"))
    assert again.id != anna_id and {str(s.status) for s in again.subscriptions} == {"pending"}
    assert suppression.is_suppressed(session, "anna.kowalska@example.org")
    assert client.get(url).status_code == 404


def test_csv_export_is_filtered_streamed_and_escaped(client, session, people):
    login_as(client, session, Role.ADMIN)
    response = post(client, "/admin/subscribers/export.csv", {"list_id": people["wystawy"].id})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    text = response.data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["email", "name", "locale"]
    assert sorted(r[0] for r in rows[1:]) == ["jan@example.org", "ola@example.net"]
    ola = next(r for r in rows if r[0] == "ola@example.net")
    assert ola[1] == "'=HYPERLINK(\"http://evil\")"
    assert post(client, "/admin/subscribers/export.csv", {"status": "vip"}).status_code == 400


@pytest.mark.parametrize("cell,expected", [("=1+1", "'=1+1"), ("+48 600", "'+48 600"), ("-5", "'-5"),
                                           ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
                                           ("Zażółć", "Zażółć"), ("a=b", "a=b"), (None, "")])
def test_escape_cell(cell, expected):
    from mailer.csv_export import escape_cell
    assert escape_cell(cell) == expected


def test_editor_cannot_change_or_export(client, session, people):
    login_as(client, session, Role.EDITOR)
    sid = people["anna"].id
    assert post(client, f"/admin/subscribers/{sid}/export.json").status_code == 403
    assert post(client, "/admin/subscribers/export.csv").status_code == 403
    assert post(client, f"/admin/subscribers/{sid}/erase", {"confirm": "yes"}).status_code == 403
    assert post(client, f"/admin/subscribers/{sid}/unsubscribe").status_code == 403
    assert session.get(Subscriber, sid) is not None


def test_subscribers_page_finds_polish_names_whatever_the_case(client, session):
    """The staff search page (not only the domain call) folds case and Polish letters on both
    databases: a sign-up stored through the one-statement insert and an ORM-made subscriber alike."""
    subscriptions.subscribe(session, email="lukasz.zolkiewski@example.org", name="Łukasz Żółkiewski",
                            list_ids=[make_list(session).id], consent=True, source="admin")
    make_subscriber(session, "kolor@example.org", "żółć")
    make_subscriber(session, "inny@example.org", "Anna Nowak")
    session.commit()
    login_as(client, session, Role.EDITOR)
    for query in ("Łukasz", "łukasz", "LUKASZ", "Żółkiewski", "ŻÓŁKIEWSKI"):
        page = client.get("/admin/subscribers", query_string={"q": query})
        assert page.status_code == 200
        assert b"lukasz.zolkiewski@example.org" in page.data, query
        assert b"kolor@example.org" not in page.data and b"inny@example.org" not in page.data
    page = client.get("/admin/subscribers", query_string={"q": "ŻÓŁĆ"})
    assert b"kolor@example.org" in page.data and b"lukasz.zolkiewski" not in page.data


def test_addresses_are_shown_with_polish_letters(client, session):
    """An IDN domain is stored (and sent) as its A-label, shown as its U-label; a staff form
    that takes addresses (the test send) accepts Polish letters before the @ too."""
    from mailer import campaigns
    from mailer.subscribers import normalize_email, shown_email

    stored = normalize_email("Jan.Żółw@Łódź.pl")
    assert stored == "jan.żółw@xn--d-uga0v4h.pl" and shown_email(stored) == "jan.żółw@łódź.pl"
    assert shown_email("a@xn--zzz-broken.pl") == "a@xn--zzz-broken.pl"  # not decodable: as stored
    subscriber = make_subscriber(session, stored, "Jan Żółw")
    login_as(client, session, Role.EDITOR)
    for url in ("/admin/subscribers", f"/admin/subscribers/{subscriber.id}"):
        page = client.get(url).get_data(as_text=True)
        assert "jan.żółw@łódź.pl" in page and "xn--" not in page, url
    assert campaigns.test_addresses("Małgorzata.Wiśniewska@example.pl, jan@żółw.pl") == [
        "małgorzata.wiśniewska@example.pl", "jan@xn--w-uga1v8h.pl"]


def test_an_address_typed_to_find_someone_is_normalized_as_stored(session):
    """A staff member types the address as people write it (U-label domain, capitals, a
    decomposed letter): the preview, the suppression list and sign-in find the stored one."""
    from mailer import campaigns, users
    from tests.helpers_content import make_event

    stored = "jan.żółw@xn--d-uga0v4h.pl"
    person = make_subscriber(session, stored, "Jan Żółw")
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[])
    session.commit()
    assert "Jan Żółw" in campaigns.preview(session, campaign.id, "JAN.ŻÓŁW@ŁÓDŹ.PL").html
    suppression.suppress(session, stored, "bounced")
    session.commit()
    found = suppression.search(session, query="Jan.Z\u0307o\u0301łw@Łódź.pl")
    assert found.total == 1 and found.rows[0]["subscriber_id"] == person.id
    users.create_user(session, "Małgorzata@Łódź.pl", "correct horse battery", Role.EDITOR)
    session.commit()
    assert users.authenticate(session, "MAŁGORZATA@łódź.pl", "correct horse battery") is not None

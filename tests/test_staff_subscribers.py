"""A subscriber added by hand (with a confirmation mail, or confirmed on a basis staff give),
suppressed addresses refused, and a subscriber's name and language edited."""

import html

from sqlalchemy import func, select

from mailer import lists, suppression
from mailer.models import (
    AuditEntry,
    ConsentRecord,
    Notice,
    NoticeKind,
    Role,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tests.helpers_api import Api, admin_token, assert_error  # noqa: F401
from tests.helpers_staff import login_as, make_list, make_subscriber, post


def test_added_with_a_confirmation_mail_waits_for_the_person(client, session, fresh):
    newsletter = make_list(session, "Wydarzenia")
    private = make_list(session, "Rada", public=False)
    admin = login_as(client, session, Role.ADMIN)
    assert "Wyślij e-mail z prośbą o potwierdzenie" in client.get("/admin/subscribers/new").get_data(as_text=True)
    response = post(client, "/admin/subscribers/new",
                    {"email": "Nowa@Example.org", "name": "Anna Nowak", "locale": "pl",
                     "list_ids": [str(newsletter.id), str(private.id)], "confirmation_mail": "1"}, "/admin/subscribers/new")
    assert response.status_code == 302
    check = fresh()
    person = check.scalar(select(Subscriber).where(Subscriber.email == "nowa@example.org"))
    assert person.name == "Anna Nowak" and person.confirm_nonce
    statuses = check.scalars(select(Subscription.status).where(Subscription.subscriber_id == person.id)).all()
    assert statuses == [SubscriptionStatus.PENDING] * 2
    assert check.scalar(select(Notice.kind).where(Notice.subscriber_id == person.id)) == NoticeKind.CONFIRM
    records = check.scalars(select(ConsentRecord).where(ConsentRecord.subscriber_id == person.id)).all()
    assert {r.action for r in records} == {"subscribe"} and {r.source for r in records} == {"admin"}
    assert all(admin.email in r.user_agent for r in records)
    entry = check.scalar(select(AuditEntry).where(AuditEntry.action == "subscriber.create"))
    assert entry.target == str(person.id) and entry.actor == admin.email


def test_added_without_mail_needs_a_basis_and_the_staff_members_word(client, session, fresh):
    newsletter = make_list(session, "Wydarzenia")
    admin = login_as(client, session, Role.ADMIN)
    data = {"email": "papier@example.org", "locale": "en", "list_ids": [str(newsletter.id)]}
    response = post(client, "/admin/subscribers/new", data, "/admin/subscribers/new")
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert "podaj, gdzie zapisano zgodę tej osoby" in page
    assert 'value="papier@example.org"' in page  # what was typed stays
    response = post(client, "/admin/subscribers/new", {**data, "basis": "formularz papierowy, 12 maja"},
                    "/admin/subscribers/new")
    assert response.status_code == 400
    assert "potwierdź, że ta osoba zgodziła się" in response.get_data(as_text=True)
    response = post(client, "/admin/subscribers/new", {**data, "basis": "formularz papierowy, 12 maja",
                                                       "consent_confirmed": "1"}, "/admin/subscribers/new")
    assert response.status_code == 302
    check = fresh()
    person = check.scalar(select(Subscriber).where(Subscriber.email == "papier@example.org"))
    assert person.locale == "en"
    sub = check.get(Subscription, (person.id, newsletter.id))
    assert sub.status == SubscriptionStatus.CONFIRMED and sub.confirmed_at is not None
    record = check.scalar(select(ConsentRecord).where(ConsentRecord.subscriber_id == person.id))
    assert record.action == "staff-added" and "formularz papierowy, 12 maja" in record.user_agent
    assert admin.email in record.user_agent
    assert check.scalar(select(func.count(Notice.id)).where(Notice.subscriber_id == person.id)) == 0
    page = client.get(f"/admin/subscribers/{person.id}").get_data(as_text=True)
    assert "dodany przez pracownika, który potwierdził zgodę" in page


def test_suppressed_existing_and_archived_are_refused_clearly(client, session, fresh):
    newsletter = make_list(session, "Wydarzenia")
    old = make_list(session, "Lato")
    lists.set_archived(session, old.id, True)
    make_subscriber(session, "jest@example.org", lists=[newsletter])
    suppression.suppress(session, "zwrot@example.org", "bounced")
    session.commit()
    login_as(client, session, Role.ADMIN)
    base = {"list_ids": [str(newsletter.id)], "confirmation_mail": "1", "locale": "pl"}
    response = post(client, "/admin/subscribers/new", {**base, "email": "zwrot@example.org"}, "/admin/subscribers/new")
    assert response.status_code == 409
    assert "Ten adres jest na liście blokad" in response.get_data(as_text=True)
    response = post(client, "/admin/subscribers/new", {**base, "email": "jest@example.org"}, "/admin/subscribers/new")
    assert response.status_code == 409 and "Adres jest@example.org jest już zapisany" in response.get_data(as_text=True)
    response = post(client, "/admin/subscribers/new", {**base, "email": "x@example.org", "list_ids": [str(old.id)]},
                    "/admin/subscribers/new")
    assert response.status_code == 400
    response = post(client, "/admin/subscribers/new", {**base, "email": "nie adres"}, "/admin/subscribers/new")
    assert response.status_code == 400
    assert fresh().scalar(select(func.count(Subscriber.id))) == 1


def test_edit_name_and_language(client, session, fresh):
    person = make_subscriber(session, "osoba@example.org", name="Jan")
    login_as(client, session, Role.ADMIN)
    assert client.get(f"/admin/subscribers/{person.id}/edit").status_code == 200
    response = post(client, f"/admin/subscribers/{person.id}/edit", {"name": "Jan Kowalski", "locale": "en"},
                    f"/admin/subscribers/{person.id}/edit")
    assert response.status_code == 302
    changed = fresh().get(Subscriber, person.id)
    assert changed.name == "Jan Kowalski" and changed.locale == "en"
    response = post(client, f"/admin/subscribers/{person.id}/edit", {"name": "a\r\nb", "locale": "en"},
                    f"/admin/subscribers/{person.id}/edit")
    assert response.status_code == 400
    assert post(client, f"/admin/subscribers/{person.id}/edit", {"name": "x", "locale": "de"},
                f"/admin/subscribers/{person.id}/edit").status_code == 400
    assert client.get("/admin/subscribers/424242/edit").status_code == 404


def test_editors_cannot_add_or_edit(client, session):
    person = make_subscriber(session, "osoba@example.org")
    login_as(client, session, Role.EDITOR)
    assert client.get("/admin/subscribers/new").status_code == 403
    assert post(client, f"/admin/subscribers/{person.id}/edit", {"name": "x", "locale": "pl"}).status_code == 403


def test_the_api_adds_and_edits_subscribers(client, session, admin_token, fresh):  # noqa: F811
    newsletter = make_list(session, "Wydarzenia")
    suppression.suppress(session, "zwrot@example.org", "bounced")
    session.commit()
    api = Api(client, admin_token)
    created = api.post("/subscribers", {"email": "api@example.org", "name": "Ola", "list_ids": [newsletter.id],
                                        "confirmation_mail": False, "basis": "umowa", "consent_confirmed": True})
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["subscriptions"][0]["status"] == "confirmed"
    assert_error(api.post("/subscribers", {"email": "api@example.org", "list_ids": [newsletter.id]}), 409, "email")
    assert_error(api.post("/subscribers", {"email": "zwrot@example.org", "list_ids": [newsletter.id]}), 409, "email")
    assert_error(api.post("/subscribers", {"email": "x@example.org", "list_ids": [newsletter.id],
                                           "confirmation_mail": False}), 400, "basis")
    changed = api.patch(f"/subscribers/{body['id']}", {"name": "Aleksandra", "locale": "en"})
    assert changed.status_code == 200 and changed.get_json()["name"] == "Aleksandra"
    assert fresh().get(Subscriber, body["id"]).locale == "en"
    assert_error(api.patch(f"/subscribers/{body['id']}", {"name": "a\nb"}), 400, "name")


def test_edit_adds_lists_and_a_left_list_needs_the_persons_confirmation(client, session, fresh):
    kept = make_list(session, "Wydarzenia")
    left = make_list(session, "Teatr")
    new = make_list(session, "Sport")
    person = make_subscriber(session, "osoba@example.org", lists=[kept])
    session.add(Subscription(subscriber_id=person.id, list_id=left.id, status=SubscriptionStatus.UNSUBSCRIBED))
    session.commit()
    login_as(client, session, Role.ADMIN)
    page = client.get(f"/admin/subscribers/{person.id}/edit").get_data(as_text=True)
    form = page.split('id="add-lists"')[1]
    assert "Sport" in form and "Teatr" in form and "Wydarzenia" not in form  # only lists they are not on
    url = f"/admin/subscribers/{person.id}/lists"
    response = post(client, url, {"list_ids": [str(left.id)], "basis": "telefon", "consent_confirmed": "1"},
                    f"/admin/subscribers/{person.id}/edit")
    assert response.status_code == 409
    assert "przywrócić go może tylko potwierdzenie właściciela" in html.unescape(response.get_data(as_text=True))
    response = post(client, url, {"list_ids": [str(new.id)], "basis": "telefon", "consent_confirmed": "1"},
                    f"/admin/subscribers/{person.id}/edit")
    assert response.status_code == 302
    assert fresh().get(Subscription, (person.id, new.id)).status == SubscriptionStatus.CONFIRMED
    response = post(client, url, {"list_ids": [str(left.id)], "confirmation_mail": "1"}, f"/admin/subscribers/{person.id}/edit")
    assert response.status_code == 302
    check = fresh()
    assert check.get(Subscription, (person.id, left.id)).status == SubscriptionStatus.PENDING
    assert check.scalar(select(Notice.kind).where(Notice.subscriber_id == person.id)) == NoticeKind.CONFIRM

"""/api/v1/subscribers: search, read, double opt-in sign-up with the form's defences, erasure."""

import pytest

from mailer import subscriptions
from mailer.extensions import db
from mailer.models import ConsentRecord, Subscriber, Subscription, SubscriptionStatus, Suppression
from mailer.suppression import email_hash
from tests.helpers_api import admin_token, anonymous, api, assert_error, editor_api, editor_token, make_list, settle  # noqa: F401

VISITOR = "Zofia.Wojcik@Example.org"


@pytest.fixture(autouse=True)
def settled_worker(app, celery_worker):
    """Every sign-up here queues a confirmation mail: let the worker settle after each test."""
    yield
    settle(celery_worker)


def sign_up(api, **changes):
    body = {"email": "zofia@example.org", "name": "Zofia Wójcik", "consent": True} | changes
    return api.post("/subscribers/subscribe", body)


def test_subscribe_is_double_opt_in_and_records_consent(api, celery_worker, smtp_server):
    news = make_list("Wydarzenia")
    response = sign_up(api, email=VISITOR, ip="203.0.113.7", user_agent="CMS relay/1.0",
                       list_ids=[news.id], locale="en")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "accepted"
    subscriber = db.session.query(Subscriber).one()
    assert subscriber.email == "zofia.wojcik@example.org"
    assert subscriber.name == "Zofia Wójcik" and subscriber.locale == "en"
    assert [s.status for s in subscriber.subscriptions] == [SubscriptionStatus.PENDING]
    record = db.session.query(ConsentRecord).one()
    assert (record.source, record.ip, record.user_agent) == ("api", "203.0.113.7", "CMS relay/1.0")
    smtp_server.wait_for(1)
    assert smtp_server.to("zofia.wojcik@example.org")


def test_subscribe_answers_the_same_for_every_state(api):
    make_list("Wydarzenia")
    first = sign_up(api)
    again = sign_up(api)
    subscriber = db.session.query(Subscriber).one()
    subscriptions.unsubscribe(db.session, subscriber.id, source="admin")
    db.session.commit()
    after_leaving = sign_up(api)
    db.session.add(Suppression(email_hash=email_hash("blocked@example.org"), reason="erased"))
    db.session.commit()
    suppressed = sign_up(api, email="blocked@example.org")
    answers = {(r.status_code, r.get_data()) for r in (first, again, after_leaving, suppressed)}
    assert len(answers) == 1 and answers.pop()[0] == 202
    # suppressed, it waits for its owner's confirmation, still suppressed (tests/test_bounces_comeback.py)
    blocked = db.session.query(Subscriber).filter_by(email="blocked@example.org").one()
    assert {str(s.status) for s in blocked.subscriptions} == {"pending"}
    assert db.session.query(Suppression).count() == 1


@pytest.mark.parametrize("changes, field", [
    ({"consent": False}, "consent"),
    ({"consent": "yes"}, "consent"),
    ({"consent": None}, "consent"),
    ({"consent": ...}, "consent"),
    ({"email": ...}, "email"),
    ({"email": "not an address"}, "email"),
    ({"email": "a\r\nBcc: x@example.org"}, "email"),
    ({"email": "x" * 250 + "@example.org"}, "email"),
    ({"email": 12}, "email"),
    ({"name": "Zofia\r\nBcc: x@example.org"}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"list_ids": "1"}, "list_ids"),
    ({"list_ids": [True]}, "list_ids"),
    ({"list_ids": [2**40]}, "list_ids"),
    ({"list_ids": [987654]}, "lists"),
    ({"locale": "de"}, "locale"),
    ({"ip": "999.1.1.1"}, "ip"),
    ({"source": "form"}, "source"),
])
def test_subscribe_refuses_bad_input_and_writes_nothing(api, changes, field):
    make_list("Wydarzenia")
    body = {"email": "zofia@example.org", "consent": True} | changes
    body = {key: value for key, value in body.items() if value is not ...}
    assert_error(api.post("/subscribers/subscribe", body), 400, field)
    assert db.session.query(Subscriber).count() == 0
    assert db.session.query(ConsentRecord).count() == 0


def test_subscribe_refuses_private_lists(api):
    private = make_list("Rada miasta", public=False)
    make_list("Wydarzenia")
    assert_error(sign_up(api, list_ids=[private.id]), 400, "lists")
    assert db.session.query(Subscription).count() == 0


def test_subscribe_rate_limit_per_address(app, api):
    make_list("Wydarzenia")
    original, app.config["SUBSCRIBE_ADDRESS_RATE_LIMIT"] = app.config["SUBSCRIBE_ADDRESS_RATE_LIMIT"], "2 per hour"
    try:
        assert sign_up(api, email="zofia@example.org").status_code == 202
        assert sign_up(api, email="ZOFIA@example.org ").status_code == 202
        assert_error(sign_up(api, email="zofia@example.org"), 429)
        assert sign_up(api, email="jan@example.org").status_code == 202
    finally:
        app.config["SUBSCRIBE_ADDRESS_RATE_LIMIT"] = original


def test_subscribe_rate_limit_per_visitor_ip(app, api):
    make_list("Wydarzenia")
    original, app.config["SUBSCRIBE_RATE_LIMIT"] = app.config["SUBSCRIBE_RATE_LIMIT"], "2 per minute"
    try:
        assert sign_up(api, email="a@example.org", ip="198.51.100.1").status_code == 202
        assert sign_up(api, email="b@example.org", ip="198.51.100.1").status_code == 202
        assert_error(sign_up(api, email="c@example.org", ip="198.51.100.1"), 429)
        assert sign_up(api, email="d@example.org", ip="198.51.100.2").status_code == 202
    finally:
        app.config["SUBSCRIBE_RATE_LIMIT"] = original
    assert db.session.query(Subscriber).filter_by(email="c@example.org").count() == 0


def test_subscribe_needs_a_token(anonymous):
    make_list("Wydarzenia")
    assert_error(sign_up(anonymous), 401)
    assert db.session.query(Subscriber).count() == 0


# --- Reading -------------------------------------------------------------------------------

def seed_audience():
    news, sport = make_list("Wydarzenia"), make_list("Sport")
    for email, name in [("anna@example.org", "Anna Łęcka"), ("jan@example.org", "Jan Kowalski"),
                        ("ewa@example.org", "Ewa Nowak")]:
        subscriptions.subscribe(db.session, email=email, name=name, list_ids=[news.id], consent=True,
                                source="admin")
    subscriptions.subscribe(db.session, email="jan@example.org", list_ids=[sport.id], consent=True,
                            source="admin")
    db.session.commit()
    return news, sport


def test_search_filters_and_paginates(editor_api):
    news, sport = seed_audience()
    body = editor_api.get("/subscribers").get_json()
    assert body["total"] == 3 and len(body["items"]) == 3
    body = editor_api.get("/subscribers", query_string={"query": "KOWAL"}).get_json()
    assert [item["email"] for item in body["items"]] == ["jan@example.org"]
    body = editor_api.get("/subscribers", query_string={"list_id": sport.id}).get_json()
    assert [item["email"] for item in body["items"]] == ["jan@example.org"]
    assert {s["list_id"] for s in body["items"][0]["subscriptions"]} == {news.id, sport.id}
    body = editor_api.get("/subscribers", query_string={"status": "confirmed"}).get_json()
    assert body["total"] == 0
    body = editor_api.get("/subscribers", query_string={"per_page": 2, "page": 2}).get_json()
    assert (body["total"], len(body["items"]), body["page"], body["per_page"]) == (3, 1, 2, 2)


@pytest.mark.parametrize("params, field", [
    ({"page": "0"}, "page"), ({"page": "x"}, "page"), ({"page": "-1"}, "page"),
    ({"per_page": "1000"}, "per_page"), ({"list_id": "99999999999"}, "list_id"),
    ({"status": "gone"}, "status"), ({"query": "x" * 201}, "query"), ({"page": "١"}, "page"),
])
def test_search_refuses_bad_parameters(editor_api, params, field):
    assert_error(editor_api.get("/subscribers", query_string=params), 400, field)


def test_get_one_subscriber_with_consent_history(editor_api):
    seed_audience()
    jan = db.session.query(Subscriber).filter_by(email="jan@example.org").one()
    body = editor_api.get(f"/subscribers/{jan.id}").get_json()
    assert body["id"] == jan.id and body["email"] == "jan@example.org"
    assert len(body["subscriptions"]) == 2
    assert [c["action"] for c in body["consent_history"]] == ["subscribe", "subscribe"]
    assert_error(editor_api.get("/subscribers/424242"), 404)


def test_subscriber_detail_is_what_its_schema_says(app, api, editor_api):
    """The detail is documented field by field (no open object), matches what is sent, and
    names each subscription's list by id as the search answer does."""
    from mailer.web.api import schemas

    news, sport = seed_audience()
    jan = db.session.query(Subscriber).filter_by(email="jan@example.org").one()
    for client in (editor_api, api):  # without and with where each consent came from
        body = client.get(f"/subscribers/{jan.id}").get_json()
        schemas.SubscriberExport.model_validate(body)  # extra="forbid": nothing undocumented
        assert {s["list_id"] for s in body["subscriptions"]} == {news.id, sport.id}
        assert {c["list_id"] for c in body["consent_history"]} == {news.id, sport.id}
    found = editor_api.get("/subscribers", query_string={"query": "jan@"}).get_json()["items"][0]
    assert sorted((s["list_id"], s["status"]) for s in found["subscriptions"]) == \
        sorted((s["list_id"], s["status"]) for s in body["subscriptions"])
    document = editor_api.get("/openapi.json").get_json()
    components = document["components"]["schemas"]
    detail = components[next(key for key in components if key.split(".")[0] == "SubscriberExport"
                             and key.count(".") == 1)]
    assert detail.get("additionalProperties") is False
    assert {"subscriptions", "consent_history", "messages", "returned_mail"} <= set(detail["required"])
    subscription = components[next(key for key in components if key.split(".")[-1] == "ExportedSubscription")]
    assert "list_id" in subscription["required"]


# --- Erasure -------------------------------------------------------------------------------

def test_erasure_is_admin_only_and_suppresses(api, editor_api):
    seed_audience()
    anna_id = db.session.query(Subscriber).filter_by(email="anna@example.org").one().id
    assert_error(editor_api.delete(f"/subscribers/{anna_id}"), 403)
    response = api.delete(f"/subscribers/{anna_id}")
    assert response.status_code == 204
    db.session.expire_all()
    assert db.session.query(Subscriber).filter_by(email="anna@example.org").count() == 0
    assert db.session.query(Suppression).filter_by(email_hash=email_hash("anna@example.org")).count() == 1
    assert_error(api.delete(f"/subscribers/{anna_id}"), 404)


def test_oversized_sign_up_is_413(app, api):
    make_list("Wydarzenia")
    body = {"email": "zofia@example.org", "consent": True, "name": "x" * (app.config["API_MAX_BODY"] + 1)}
    assert_error(api.post("/subscribers/subscribe", body), 413)
    assert db.session.query(Subscriber).count() == 0


def test_search_folds_case_and_polish_letters(editor_api):
    """The API's search finds Polish names whatever their case or diacritics, on both databases."""
    news = make_list("Wydarzenia")
    for email, name in [("lukasz@example.org", "Łukasz Żółkiewski"), ("kolor@example.org", "żółć"),
                        ("ewa@example.org", "Ewa Nowak")]:
        subscriptions.subscribe(db.session, email=email, name=name, list_ids=[news.id], consent=True,
                                source="admin")
    db.session.commit()
    for query in ("Łukasz", "łukasz", "LUKASZ", "Żółkiewski", "żółkiewski"):
        body = editor_api.get("/subscribers", query_string={"query": query}).get_json()
        assert [item["email"] for item in body["items"]] == ["lukasz@example.org"], query
    body = editor_api.get("/subscribers", query_string={"query": "ŻÓŁĆ"}).get_json()
    assert [item["email"] for item in body["items"]] == ["kolor@example.org"]


def test_polish_letters_in_an_address_are_accepted_as_by_the_form(api):
    news = make_list("Wydarzenia")
    response = sign_up(api, email="Małgorzata.Wiśniewska@żółw.pl", list_ids=[news.id])
    assert response.status_code == 202, response.get_json()
    assert db.session.query(Subscriber).one().email == "małgorzata.wiśniewska@xn--w-uga1v8h.pl"

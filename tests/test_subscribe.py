"""Subscribing through HTTP: the form and the JSON endpoint, their defences, the consent
record, the confirmation mail at the SMTP server, cool-down and caps."""

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer import create_app, notices, subscriptions
from mailer.extensions import db
from mailer.models import ConsentRecord, ConsentText, Event, Notice, NoticeStatus, Subscriber, Suppression, utcnow
from mailer.suppression import is_suppressed, suppress
from tests.conftest import service_config
from tests.helpers_engine import wait_worker_idle
from tests.helpers_visitor import (
    barrier,
    confirm_path,
    consents,
    csrf_token,
    drain,
    make_list,
    statuses,
    strip_csrf,
    subscribe,
    subscriber,
    text_part,
)


@pytest.fixture
def newsletter(request, session, smtp_server, celery_worker):
    yield make_list(session)
    drain(request, session, smtp_server)


@pytest.fixture(autouse=True)
def same_origin(client):
    """Requests come from this site's own pages, as a browser says (Origin); the embed
    endpoint refuses others (tests/test_security_subscribe.py)."""
    client.environ_base["HTTP_ORIGIN"] = "http://localhost"


def test_subscribe_sends_confirmation_from_the_worker(client, session, newsletter, smtp_server, celery_worker):
    response = subscribe(client, "Ala.Kowalska@Example.PL", name="Ala Kowalska",
                         headers={"User-Agent": "TestBrowser/1.0"})
    assert response.status_code == 200
    assert "Sprawdź skrzynkę pocztową" in response.get_data(as_text=True)
    assert statuses(session, "ala.kowalska@example.pl") == {newsletter.id: "pending"}
    [record] = consents(session, "ala.kowalska@example.pl")
    assert (record.action, record.source, record.list_id) == ("subscribe", "form", newsletter.id)
    assert record.consent_version == client.application.config["CONSENT_TEXT_VERSION"]
    assert record.ip == "127.0.0.1" and record.user_agent == "TestBrowser/1.0"
    [mail] = smtp_server.wait_for(1)
    assert mail.recipients == ["ala.kowalska@example.pl"]
    assert mail.message["Subject"] == "Potwierdź zapis na newsletter"
    assert confirm_path(mail).startswith("/confirm/")


def test_confirmation_holds_no_announcement(client, session, newsletter, smtp_server, celery_worker):
    start = utcnow().replace(year=utcnow().year + 1)
    session.add(Event(title="Koncert kolęd na Rynku", starts_at=start, place="Rynek Główny",
                      summary="Chór miejski zaprasza", body_md="Wstęp wolny"))
    session.commit()
    subscribe(client, "jan@example.org")
    [mail] = smtp_server.wait_for(1)
    body = text_part(mail) + mail.message.get_body(("html",)).get_content()
    for promo in ("Koncert", "Rynek", "Chór", "wydarzenia/"):
        assert promo not in body
    assert "List-Unsubscribe" not in mail.message


def test_same_answer_for_every_state(client, session, newsletter, smtp_server, celery_worker):
    def answer(email):
        response = subscribe(client, email)
        return response.status_code, strip_csrf(response.data)

    new = answer("new@example.org")
    subscribe(client, "pending@example.org")
    pending = answer("pending@example.org")
    subscriptions.subscribe(session, email="done@example.org", consent=True, source="admin")
    session.commit()
    subscriber(session, "done@example.org").subscriptions[0].status = subscriptions.CONFIRMED
    session.commit()
    confirmed = answer("done@example.org")
    subscriptions.subscribe(session, email="left@example.org", consent=True, source="admin")
    session.commit()
    subscriptions.unsubscribe(session, subscriber(session, "left@example.org").id, source="admin")
    session.commit()
    left = answer("left@example.org")
    suppress(session, "gone@example.org", "erased")
    session.commit()
    suppressed = answer("gone@example.org")
    assert new[0] == 200
    assert new == pending == confirmed == left == suppressed
    # a suppressed address waits for its owner's confirmation (tests/test_bounces_comeback.py)
    assert set(statuses(session, "gone@example.org").values()) == {"pending"}
    assert is_suppressed(session, "gone@example.org")


def test_honeypot_gets_the_normal_answer_and_nothing_happens(client, session, newsletter, smtp_server,
                                                             celery_worker):
    normal = subscribe(client, "real@example.org")
    trapped = subscribe(client, "bot@example.org", extra={"website": "http://spam.example"})
    assert trapped.status_code == normal.status_code == 200
    assert strip_csrf(trapped.data) == strip_csrf(normal.data)
    assert subscriber(session, "bot@example.org") is None
    others = barrier(session, smtp_server)
    assert [m.recipients for m in others] == [["real@example.org"]]


@pytest.mark.parametrize("email, name, field_message", [
    ("not-an-address", "", "Ten adres e-mail jest nieprawidłowy."),
    ("a" * 250 + "@example.org", "", "Ten adres e-mail jest za długi."),
    ("x@example.org\r\nBcc: victim@example.org", "", "Ten adres e-mail jest nieprawidłowy."),
    ("x@example.org", "Jan\r\nBcc: victim@example.org", "Znaki nowego wiersza są tu niedozwolone."),
    ("x@example.org", "J" * 201, "Imię jest za długie."),
    ("", "", "Podaj adres e-mail."),
])
def test_bad_input_is_refused_and_nothing_stored(client, session, newsletter, smtp_server, celery_worker,
                                                 email, name, field_message):
    response = subscribe(client, email, name=name)
    assert response.status_code == 400
    assert field_message in response.get_data(as_text=True)
    assert session.scalar(select(func.count(Subscriber.id))) == 0
    assert session.scalar(select(func.count(ConsentRecord.id))) == 0
    assert barrier(session, smtp_server) == []


def test_missing_consent_is_refused(client, session, newsletter, smtp_server):
    page = client.get("/").get_data(as_text=True)
    assert 'name="consent" value="y">' in page  # rendered unticked
    response = subscribe(client, "x@example.org", consent=False)
    assert response.status_code == 400
    assert "Aby się zapisać, zaznacz pole zgody." in response.get_data(as_text=True)
    assert subscriber(session, "x@example.org") is None


def test_non_utf8_body_is_refused(client, session, newsletter):
    token = csrf_token(client.get("/").data)
    body = f"csrf_token={token}&email=\xff\xfe@example.org&name=\xff&consent=y".encode("latin-1")
    response = client.post("/subscribe", data=body,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_form_needs_csrf(client, session, newsletter):
    response = client.post("/subscribe", data={"email": "x@example.org", "consent": "y"})
    assert response.status_code == 400
    assert subscriber(session, "x@example.org") is None


def test_list_choice_and_private_lists(client, session, newsletter):
    other = make_list(session, name="Sport", slug="sport")
    hidden = make_list(session, name="Wewnętrzna", slug="wewn", public=False)
    page = client.get("/").get_data(as_text=True)
    assert "Sport" in page and "Wewnętrzna" not in page
    assert subscribe(client, "a@example.org", lists=[other.id]).status_code == 200
    assert statuses(session, "a@example.org") == {other.id: "pending"}
    response = subscribe(client, "b@example.org", lists=[hidden.id])
    assert response.status_code == 400
    assert "Wybierz co najmniej jeden newsletter." in response.get_data(as_text=True)
    assert subscribe(client, "c@example.org", lists=[]).status_code == 400
    assert subscriber(session, "b@example.org") is None and subscriber(session, "c@example.org") is None


def test_sign_ups_follow_the_lists_as_they_change(client, session, newsletter):
    """A sign-up of a new address is decided on the joinable lists as last read (PostgreSQL:
    its one statement checks they are still those): renamed, newly public and archived lists
    are each seen by the next sign-up, in its answer, its rows and its consent wording."""
    tag = uuid.uuid4().hex[:6]
    assert subscribe(client, f"{tag}-1@example.org").status_code == 200  # the lists read, and kept
    newsletter.name = f"Wydarzenia i koncerty {tag}"
    session.commit()
    assert subscribe(client, f"{tag}-2@example.org").status_code == 200
    (record,) = [item for item in consents(session, f"{tag}-2@example.org") if item.list_id == newsletter.id]
    wording = session.scalar(select(ConsentText.wording).where(ConsentText.hash == record.consent_text))
    assert f"Wydarzenia i koncerty {tag}" in wording
    sport = make_list(session, name=f"Sport {tag}", slug=f"sport-{tag}")
    assert subscribe(client, f"{tag}-3@example.org", lists=[sport.id]).status_code == 200
    assert statuses(session, f"{tag}-3@example.org") == {sport.id: "pending"}
    newsletter.archived_at = utcnow()
    session.commit()
    assert subscribe(client, f"{tag}-4@example.org", lists=[newsletter.id]).status_code == 400
    assert subscriber(session, f"{tag}-4@example.org") is None
    assert subscribe(client, f"{tag}-5@example.org").status_code == 200  # every joinable list
    joined = statuses(session, f"{tag}-5@example.org")
    assert sport.id in joined and newsletter.id not in joined


def until_limited(send, limit: int) -> list[int]:
    """Status codes of ``send(i)`` until the first 429 (at most 4x the limit). Another test
    run sharing Redis may reset every counter (conftest's limiter.reset()), so only the
    first ``limit`` answers and the eventual 429 are asserted, not its exact position."""
    codes = []
    for i in range(4 * limit + 4):
        codes.append(send(i))
        if codes[-1] == 429:
            break
    return codes


def test_per_ip_rate_limit(client, session, newsletter, monkeypatch):
    monkeypatch.setitem(client.application.config, "SUBSCRIBE_RATE_LIMIT", "3 per hour")
    for attempt in range(3):  # a reset by another run between the two calls: try again
        codes = until_limited(lambda i: subscribe(client, f"ip{attempt}-{i}@example.org").status_code, 3)
        assert codes[-1] == 429 and (attempt or codes[:3] == [200, 200, 200])
        response = client.post("/subscribe.json", json={"email": "j@example.org", "consent": True})
        if response.status_code == 429:
            break
    assert response.status_code == 429  # the JSON endpoint shares the per-IP budget
    assert response.get_json()["error"].startswith("Zbyt wiele prób.")


def test_per_address_rate_limit(client, session, newsletter, monkeypatch):
    monkeypatch.setitem(client.application.config, "SUBSCRIBE_ADDRESS_RATE_LIMIT", "2 per hour")
    spellings = ["same@example.org", "SAME@example.org", " same@EXAMPLE.org "]
    codes = until_limited(lambda i: subscribe(client, spellings[i % 3]).status_code, 2)
    assert codes[:2] == [200, 200] and codes[-1] == 429
    assert subscribe(client, "other@example.org").status_code == 200


def test_a_sign_up_refused_for_its_ip_leaves_the_mailbox_budget_alone(client, session, newsletter, monkeypatch):
    """Both budgets are counted in one go, the IP's first: a request refused for its IP does not
    count against the mailbox (nor lock its owner out); a 429 says when to come back."""
    config = client.application.config
    monkeypatch.setitem(config, "SUBSCRIBE_RATE_LIMIT", "2 per hour")
    monkeypatch.setitem(config, "SUBSCRIBE_ADDRESS_RATE_LIMIT", "3 per hour")
    for _attempt in range(3):  # another run sharing Redis may reset every counter: try again
        tag = uuid.uuid4().hex[:8]
        ips = [f"10.{int(tag[k:k + 2], 16)}.{int(tag[k + 2:k + 4], 16)}.{n}" for k, n in ((0, 1), (4, 2))]

        def post(ip):
            return client.post("/subscribe.json", json={"email": f"victim-{tag}@example.org", "consent": True},
                               environ_base={"REMOTE_ADDR": ip})

        answers = [post(ips[0]) for _ in range(3)] + [post(ips[1]) for _ in range(2)]
        if [answer.status_code for answer in answers] == [200, 200, 429, 200, 429]:
            break
    assert [answer.status_code for answer in answers] == [200, 200, 429, 200, 429]
    refused = answers[2]
    assert refused.headers["X-RateLimit-Limit"] == "2" and refused.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert answers[0].headers["X-RateLimit-Remaining"] == "1"


def test_cooldown_sends_one_confirmation(client, session, newsletter, smtp_server, celery_worker):
    assert subscribe(client, "twice@example.org").status_code == 200
    assert subscribe(client, "twice@example.org").status_code == 200
    mails = barrier(session, smtp_server)
    assert [m.recipients for m in mails] == [["twice@example.org"]]


def test_daily_cap_per_address(client, session, newsletter, smtp_server, celery_worker, monkeypatch):
    monkeypatch.setitem(client.application.config, "CONFIRM_COOLDOWN", 0)
    monkeypatch.setitem(client.application.config, "CONFIRM_MAX_PER_DAY", 2)
    monkeypatch.setitem(client.application.config, "SUBSCRIBE_ADDRESS_RATE_LIMIT", "100 per hour")
    for _ in range(4):
        assert subscribe(client, "cap@example.org").status_code == 200
    mails = barrier(session, smtp_server)
    assert [m.recipients for m in mails] == [["cap@example.org"]] * 2
    assert subscriber(session, "cap@example.org").confirm_sent_today == 2


def test_global_hourly_cap_delays_confirmations_never_drops_them(client, session, newsletter,
                                                                  smtp_server, celery_worker, monkeypatch):
    monkeypatch.setitem(client.application.config, "PENDING_MAX_PER_HOUR", 2)
    for i in range(3):
        assert subscribe(client, f"g{i}@example.org").status_code == 200
    smtp_server.wait_for(2)
    wait_worker_idle(celery_worker)
    assert sorted(m.recipients[0] for m in smtp_server.messages) == ["g0@example.org", "g1@example.org"]
    waiting = session.scalar(select(Notice).join(Subscriber, Subscriber.id == Notice.subscriber_id)
                             .where(Subscriber.email == "g2@example.org"))
    assert waiting.status == NoticeStatus.QUEUED  # held back, not dropped
    assert waiting.available_at > utcnow() + timedelta(minutes=59)
    assert notices.backlog(session) == {"waiting": 1, "capped": 1}  # what staff see
    # An hour later the cap has room again: the tick sends it.
    for notice in session.scalars(select(Notice)):
        notice.available_at -= timedelta(hours=1, minutes=1)
        notice.sent_at = notice.sent_at and notice.sent_at - timedelta(hours=1)
    session.commit()
    notices.tick(session)
    smtp_server.wait_for(3)
    assert smtp_server.to("g2@example.org")


def test_consent_ip_comes_through_proxyfix_only(app, session, newsletter, smtp_server, tmp_path):
    spoof = {"X-Forwarded-For": "203.0.113.9"}
    subscribe(app.test_client(), "direct@example.org", headers=spoof)
    assert consents(session, "direct@example.org")[0].ip == "127.0.0.1"
    config = service_config(app.config["SQLALCHEMY_DATABASE_URI"], smtp_server, tmp_path)
    proxied = create_app("test", {**config, "PROXY_FIX_HOPS": 1})
    with proxied.app_context():
        subscribe(proxied.test_client(), "proxied@example.org", headers=spoof)
        db.session.remove()
    assert consents(session, "proxied@example.org")[0].ip == "203.0.113.9"


# --- The JSON endpoint for embeds ---------------------------------------------------------

def test_json_subscribe(client, session, newsletter, smtp_server, celery_worker):
    response = client.post("/subscribe.json", json={"email": "emb@example.org", "name": "Zoja",
                                                     "consent": True, "locale": "en"})
    assert response.status_code == 200 and response.get_json()["ok"] is True
    assert "Set-Cookie" not in response.headers
    sub = subscriber(session, "emb@example.org")
    assert (sub.name, sub.locale) == ("Zoja", "en")
    assert consents(session, "emb@example.org")[0].source == "embed"
    [mail] = smtp_server.wait_for(1)
    assert mail.message["Subject"] == "Confirm your subscription"


def test_json_form_body_as_the_snippet_sends_it(client, session, newsletter):
    response = client.post("/subscribe.json", data={"email": "form@example.org", "consent": "1",
                                                     "website": ""})
    assert response.status_code == 200
    assert statuses(session, "form@example.org") == {newsletter.id: "pending"}


@pytest.mark.parametrize("body, field", [
    ({"email": "x@example.org"}, "consent"),
    ({"email": "x@example.org", "consent": "false"}, "consent"),
    ({"email": "nope", "consent": True}, "email"),
    ({"email": ["x@example.org"], "consent": True}, "email"),
    ({"email": "x@example.org", "name": "A\nB", "consent": True}, "name"),
    ({"email": "x@example.org", "consent": True, "lists": [999999]}, "lists"),
])
def test_json_bad_input(client, session, newsletter, body, field):
    response = client.post("/subscribe.json", json=body, headers={"Accept-Language": "pl"})
    assert response.status_code == 400
    assert response.get_json()["field"] == field
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_json_garbage_and_honeypot(client, session, newsletter):
    garbage = client.post("/subscribe.json", data=b"\xff{not json", content_type="application/json")
    assert garbage.status_code == 400 and "error" in garbage.get_json()
    trap = client.post("/subscribe.json", json={"email": "bot@example.org", "consent": True,
                                                "website": "x"})
    assert trap.status_code == 200 and trap.get_json()["ok"] is True
    assert session.scalar(select(func.count(Subscriber.id))) == 0


def test_json_cors_only_for_configured_origins(client, newsletter, monkeypatch):
    monkeypatch.setitem(client.application.config, "EMBED_ORIGINS", ["https://www.miasto.example.pl"])
    allowed = client.options("/subscribe.json", headers={"Origin": "https://www.miasto.example.pl",
                                                         "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://www.miasto.example.pl"
    other = client.post("/subscribe.json", json={"email": "c@example.org", "consent": True},
                        headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.status_code == 403


def test_suppressed_address_gets_only_a_confirmation_and_stays_suppressed(client, session, newsletter,
                                                                          smtp_server, celery_worker):
    """Issue 11: no longer ignored forever; the mailbox owner's confirmation is the way back."""
    suppress(session, "blocked@example.org", "bounced")
    session.commit()
    assert subscribe(client, "blocked@example.org").status_code == 200
    assert statuses(session, "blocked@example.org") == {newsletter.id: "pending"}
    [mail] = barrier(session, smtp_server)
    assert mail.recipients == ["blocked@example.org"] and "/confirm/" in text_part(mail)
    assert session.scalar(select(func.count(Suppression.id))) == 1


def test_two_sign_ups_of_one_new_address_at_once(app, session, newsletter, fresh):
    """The second waits for the first and finds its row: no IntegrityError, one subscriber
    (it was a 500 before)."""
    import threading

    from sqlalchemy.orm import Session

    first_flushed, first_may_commit = threading.Event(), threading.Event()
    errors = []

    def sign_up(first: bool) -> None:
        with app.app_context():
            own = Session(db.engine)
            try:
                subscriptions.subscribe(own, email="rownoczesny@example.org", consent=True, source="api")
                if first:
                    first_flushed.set()
                    first_may_commit.wait(10)
                own.commit()
            except Exception as exc:  # noqa: BLE001  the assertion below shows it
                errors.append(exc)
            finally:
                own.close()

    first = threading.Thread(target=sign_up, args=(True,))
    first.start()
    assert first_flushed.wait(10)
    second = threading.Thread(target=sign_up, args=(False,))
    second.start()
    second.join(0.5)  # it waits on the first one's row (PostgreSQL) or lock (SQLite)
    first_may_commit.set()
    first.join(10)
    second.join(10)
    assert errors == []
    with fresh() as check:
        assert check.query(Subscriber).filter_by(email="rownoczesny@example.org").count() == 1


def test_polish_letters_before_the_at_are_accepted_by_the_form(client, session, newsletter):
    """RFC 6531 addresses: the form is a text input (a browser's type=email refuses ł before
    the @), and the address is stored lower case, NFC-normalised (a decomposed ś as one letter)."""
    page = client.get("/").get_data(as_text=True)
    assert 'name="email"' in page and 'type="email"' not in page and 'inputmode="email"' in page
    decomposed = "Małgorzata.Wis\u0301niewska@Example.pl"
    response = subscribe(client, decomposed, name="Małgorzata Wiśniewska")
    assert response.status_code == 200
    assert statuses(session, "małgorzata.wiśniewska@example.pl") == {newsletter.id: "pending"}
    response = subscribe(client, "jan@żółw.pl")
    assert response.status_code == 200
    assert statuses(session, "jan@xn--w-uga1v8h.pl") == {newsletter.id: "pending"}


def test_a_new_address_costs_one_round_trip_on_postgresql(app, client, session, newsletter):
    """A new address is written by one statement, sent on its own (autocommit: psycopg sends
    no BEGIN before it and no COMMIT after, each a round trip, together a sixth of a sign-up's
    web CPU) when the request has read nothing before. For an address already known it
    writes nothing, and the general path goes on in a transaction, as before."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no round trips")
    from sqlalchemy import event

    seen: list[tuple[str, bool]] = []

    def executed(conn, _cursor, statement, *_args):
        if threading.get_ident() == me:  # not the test worker's, in a thread of its own
            seen.append((" ".join(statement.split()[:2]), conn.connection.dbapi_connection.autocommit))

    me = threading.get_ident()

    def sign_up(email: str) -> int:  # the embed's JSON endpoint: no page is read first
        return client.post("/subscribe.json", json={"email": email, "consent": True}).status_code

    sign_up("znany@example.org")  # the lists read, and kept; a known address
    event.listen(db.engine, "before_cursor_execute", executed)
    try:
        assert sign_up("nowy-adres@example.org") == 200
        new, seen[:] = list(seen), []
        assert sign_up("znany@example.org") == 200
        known = list(seen)
    finally:
        event.remove(db.engine, "before_cursor_execute", executed)
    assert new == [("WITH lists_now", True)]  # one statement, on its own
    # a known address: the same attempt writes nothing, then the general path's transaction
    assert known[0] == ("WITH lists_now", True) and len(known) > 1
    assert not any(autocommit for _statement, autocommit in known[1:])
    assert statuses(session, "nowy-adres@example.org") == {newsletter.id: "pending"}
    assert session.scalar(select(func.count()).where(Notice.subscriber_id == subscriber(
        session, "nowy-adres@example.org").id)) == 1

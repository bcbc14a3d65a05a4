"""Abuse of the sign-up routes and of the audience: a stranger cannot rename a subscriber,
bomb one mailbox through plus-addressing, Gmail's dots or other sites, tell an address's state
by timing, or choose their IP past the proxy; names with control characters reach no header,
whatever the way in (form, embed, API, CSV import); erasure empties the outbox too, and editors
read only test copies there."""

import statistics
import time

import pytest
from sqlalchemy import select

from mailer import audience, imports, subscriptions
from mailer.errors import InvalidInput
from mailer.mail.message import address, check_header_value
from mailer.models import Role, Subscriber
from mailer.subscribers import clean_name, mailbox
from mailer.web.subscribe_limits import address_key
from tests.helpers_api import Api, token_for
from tests.helpers_staff import login_as, make_list, make_subscriber, post
from tests.helpers_visitor import subscribe
from tests.test_imports import start, upload, wait_done

ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def newsletter(session):
    return make_list(session)


# --- The name of an existing subscriber -----------------------------------------------------

def test_no_public_page_carries_a_limit_flask_limiter_would_skip(app):
    """Flask-Limiter skips the public pages (``public._not_flask_limiters``, for the sign-ups'
    CPU): one of its limits put on a public view would never count. Theirs are
    ``subscribe_limits``; its own limits elsewhere (the staff sign-in) count as before
    (``test_security_sessions``)."""
    public = {endpoint: view for endpoint, view in app.view_functions.items() if endpoint.startswith("public.")}
    assert "public.subscribe_json" in public
    assert [endpoint for endpoint, view in public.items()
            if getattr(view, "__wrapper-limiter-instance", None) is not None] == []
    assert [endpoint for endpoint, view in app.view_functions.items()
            if getattr(view, "__wrapper-limiter-instance", None) is not None]  # the check can see one


def test_no_anonymous_sign_up_renames_a_subscriber(app, client, session, newsletter, fresh):
    make_subscriber(session, "anna@example.org", "Anna Kowalska", [newsletter])
    make_subscriber(session, "bez@example.org", "", [newsletter])
    api = Api(app.test_client(), token_for(Role.EDITOR, "cms@example.org"))
    phishing = "Twoje konto zostanie usunięte, zaloguj się na evil.example"
    for email in ("anna@example.org", "bez@example.org"):
        assert subscribe(client, email, name=phishing).status_code == 200
        assert client.post("/subscribe.json", json={"email": email, "name": phishing, "consent": True},
                           headers=ORIGIN).status_code == 200
        assert api.post("/subscribers/subscribe", {"email": email, "name": phishing, "consent": True}
                        ).status_code == 202
    with fresh() as reader:
        names = dict(reader.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names == {"anna@example.org": "Anna Kowalska", "bez@example.org": ""}


# --- One mailbox, one budget ------------------------------------------------------------------

@pytest.mark.parametrize("variants", [
    ["ofiara+1@example.org", "ofiara+2@example.org", "Ofiara+x@Example.org", "ofiara@example.org"],
    ["j.kowalski@gmail.com", "jkowalski@gmail.com", "j.k.o.w.a.l.s.k.i+a@googlemail.com", "JKowalski@GMAIL.com"],
])
def test_the_address_limit_counts_the_mailbox_a_human_reads(app, client, session, newsletter, variants,
                                                            monkeypatch):
    monkeypatch.setitem(app.config, "SUBSCRIBE_ADDRESS_RATE_LIMIT", "3 per hour")
    assert len({address_key(v) for v in variants}) == 1
    codes = [subscribe(client, v).status_code for v in variants]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    other = "inny+1@example.org" if "example.org" in variants[0] else "inny@gmail.com"
    assert subscribe(client, other).status_code == 200


def test_mailbox_folding_keeps_other_providers_dots():
    assert mailbox("jan.nowak@example.org") == "jan.nowak@example.org"
    assert mailbox("jan.nowak+news@gmail.com") == "jannowak@gmail.com"
    assert mailbox("+tag@example.org") == "+tag@example.org"


# --- Only the embed snippet, from allowed sites ---------------------------------------------

@pytest.mark.parametrize("headers, kwargs", [
    ({}, {"data": {"email": "v@example.org", "consent": "1"}}),  # no Origin: not a browser form
    ({"Origin": "https://evil.example"}, {"data": {"email": "v@example.org", "consent": "1"}}),
    ({"Origin": "https://evil.example"}, {"json": {"email": "v@example.org", "consent": True}}),
    ({"Origin": "null"}, {"data": {"email": "v@example.org", "consent": "1"}}),
    ({"Origin": "https://www.miasto.example.pl.evil.example"}, {"data": {"email": "v@example.org", "consent": "1"}}),
    ({"Origin": "http://localhost"}, {"data": "email=v@example.org", "content_type": "text/plain"}),
])
def test_other_sites_cannot_sign_anyone_up(app, client, session, newsletter, headers, kwargs, monkeypatch, fresh):
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", ["https://www.miasto.example.pl"])
    response = client.post("/subscribe.json", headers=headers, **kwargs)
    assert response.status_code in (403, 415)
    if response.status_code == 403:
        assert "Access-Control-Allow-Origin" not in response.headers
    with fresh() as reader:
        assert reader.scalar(select(Subscriber.id)) is None


def test_an_allowed_site_signs_up_with_the_snippets_form_body(app, client, session, newsletter, monkeypatch):
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", ["https://www.miasto.example.pl"])
    response = client.post("/subscribe.json", data={"email": "v@example.org", "consent": "1", "website": ""},
                           headers={"Origin": "https://www.miasto.example.pl"}, content_type="multipart/form-data")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://www.miasto.example.pl"


def test_refused_origins_do_not_use_up_the_mailboxs_budget(app, client, session, newsletter, monkeypatch):
    monkeypatch.setitem(app.config, "SUBSCRIBE_ADDRESS_RATE_LIMIT", "2 per hour")
    for _ in range(5):
        client.post("/subscribe.json", data={"email": "cel@example.org", "consent": "1"},
                    headers={"Origin": "https://evil.example"})
    assert subscribe(client, "cel@example.org").status_code == 200


# --- Timing -----------------------------------------------------------------------------------

def test_answers_take_as_long_for_new_subscribed_and_erased_addresses(app, client, session, newsletter,
                                                                     monkeypatch):
    """Every outcome is held to SUBSCRIBE_ANSWER_SECONDS, so their medians agree (measured
    differences were 21, 12 and 6 ms before; the floor is far above them)."""
    monkeypatch.setitem(app.config, "SUBSCRIBE_ADDRESS_RATE_LIMIT", "1000 per hour")
    monkeypatch.setitem(app.config, "SUBSCRIBE_RATE_LIMIT", "1000 per hour")
    floor = app.config["SUBSCRIBE_ANSWER_SECONDS"]
    make_subscriber(session, "jest@example.org", "", [newsletter])
    gone = make_subscriber(session, "byla@example.org", "", [newsletter])
    audience.erase_subscriber(session, gone.id)
    session.commit()

    def timed(email: str) -> float:
        started = time.monotonic()
        response = client.post("/subscribe.json", json={"email": email, "consent": True}, headers=ORIGIN)
        assert response.status_code == 200
        return time.monotonic() - started

    medians = {kind: statistics.median(timed(email(n)) for n in range(5)) for kind, email in {
        "new": lambda n: f"nowy{n}@example.org", "subscribed": lambda n: "jest@example.org",
        "erased": lambda n: "byla@example.org"}.items()}
    assert all(value >= floor for value in medians.values()), medians
    assert max(medians.values()) - min(medians.values()) < floor / 2, medians


# --- The client's address behind a proxy -----------------------------------------------------

def test_a_client_reaching_the_app_directly_cannot_choose_its_ip(app, session, newsletter, smtp_server, tmp_path):
    from mailer import create_app
    from mailer.extensions import db
    from tests.conftest import ServerLikeClient, service_config
    from tests.helpers_visitor import consents

    config = service_config(app.config["SQLALCHEMY_DATABASE_URI"], smtp_server, tmp_path)
    proxied = create_app("test", {**config, "PROXY_FIX_HOPS": 1})
    proxied.test_client_class = ServerLikeClient
    with proxied.app_context():
        direct = proxied.test_client()
        direct.environ_base.update({"REMOTE_ADDR": "198.51.100.20"})
        answer = subscribe(direct, "direct@example.org", headers={"X-Forwarded-For": "203.0.113.9"})
        assert answer.status_code == 200, answer.get_data(as_text=True)[-500:]
        through = proxied.test_client()  # from 127.0.0.1: the proxy
        answer = subscribe(through, "proxied@example.org", headers={"X-Forwarded-For": "203.0.113.9"})
        assert answer.status_code == 200
        db.session.remove()
    assert consents(session, "direct@example.org")[0].ip == "198.51.100.20"
    assert consents(session, "proxied@example.org")[0].ip == "203.0.113.9"


# --- Names: one rule for every way in ----------------------------------------------------------

BAD_NAMES = ["Jan\x00Nowak", "Jan\x1bNowak", "Jan\x7f", "Jan\x85Nowak", "Jan\u2028Bcc: x@example.org",
             "Jan\rNowak", "Jan\u202eKowalski", "\ud800Jan", "Jan\x08"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_every_sign_up_route_refuses_control_characters_in_names(app, client, session, newsletter, name):
    with pytest.raises(InvalidInput):
        clean_name(name)
    if "\ud800" not in name:  # (a form cannot carry a lone surrogate)
        assert subscribe(client, "n@example.org", name=name).status_code == 400
    assert client.post("/subscribe.json", json={"email": "n@example.org", "name": name, "consent": True},
                       headers=ORIGIN).status_code == 400


def test_the_csv_import_applies_the_same_name_rules(app, client, session, newsletter, fresh, tmp_path,
                                                   monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_DIR", tmp_path / "imports")
    login_as(client, session, Role.ADMIN)
    rows = ["email,name", "dobra@example.org,Zofia Łęcka", "zla@example.org,\"Jan\x1bNowak\"",
            "zla2@example.org,Jan\x07", "tab@example.org,\"Jan\tNowak\""]
    response = upload(client, "\n".join(rows).encode())
    job_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert start(client, job_id, name_col="1", list_ids=[str(newsletter.id)]).status_code == 302
    imports.run(session, job_id)  # the task body (a worker left running by another test may claim it)
    assert wait_done(client, job_id)["status"] == "done"
    with fresh() as reader:
        names = dict(reader.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names == {"dobra@example.org": "Zofia Łęcka", "tab@example.org": "Jan Nowak"}


def test_the_message_builder_refuses_control_characters_in_any_header():
    for value in ("Jan\x1bNowak", "Jan\x00", "a\u2028b", "x\x7f"):
        with pytest.raises(InvalidInput):
            check_header_value(value)
        with pytest.raises(InvalidInput):
            address(value, "jan@example.org")
    assert check_header_value("Zażółć\tgęślą") == "Zażółć\tgęślą"


# --- The outbox (embedded mode) -------------------------------------------------------------------

@pytest.fixture
def outbox_app(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "SMTP_URL", "")
    monkeypatch.setitem(app.config, "OUTBOX_DIR", tmp_path / "outbox")
    return app


def test_erasure_removes_the_persons_mail_from_the_outbox(outbox_app, client, session, newsletter,
                                                         celery_worker):
    from tests.helpers_engine import wait_worker_idle

    subscriptions.subscribe(session, email="anna@example.org", name="Anna", consent=True, source="form")
    subscriptions.subscribe(session, email="inna@example.org", consent=True, source="form")
    session.commit()
    outbox = outbox_app.config["OUTBOX_DIR"]
    deadline = time.monotonic() + 60
    while len(list(outbox.glob("*.eml"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    wait_worker_idle(celery_worker)
    assert len(list(outbox.glob("*.eml"))) == 2
    anna = session.scalar(select(Subscriber).where(Subscriber.email == "anna@example.org"))
    login_as(client, session, Role.ADMIN)
    assert post(client, f"/admin/subscribers/{anna.id}/erase", {"confirm": "yes"}).status_code == 302
    left = [path.read_bytes() for path in outbox.glob("*.eml")]
    assert len(left) == 1 and b"anna@example.org" not in left[0] and b"inna@example.org" in left[0]


def test_editors_read_only_test_copies_in_the_outbox(outbox_app, app, session, newsletter, celery_worker):
    from mailer import campaigns
    from tests.helpers_content import make_event
    from tests.helpers_engine import wait_worker_idle

    subscriptions.subscribe(session, email="anna@example.org", consent=True, source="form")
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[newsletter.id])
    campaigns.request_test(session, campaign.id, "test@example.org")
    session.commit()
    outbox = outbox_app.config["OUTBOX_DIR"]
    deadline = time.monotonic() + 60
    while len(list(outbox.glob("*.eml"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    wait_worker_idle(celery_worker)
    editor, admin = app.test_client(), app.test_client()
    login_as(editor, session, Role.EDITOR)
    login_as(admin, session, Role.ADMIN)
    names = {path.name: path.read_bytes() for path in outbox.glob("*.eml")}
    confirmation = next(name for name, data in names.items() if b"anna@example.org" in data)
    test_copy = next(name for name in names if name != confirmation)
    listing = editor.get("/admin/outbox").get_data(as_text=True)
    assert test_copy in listing and confirmation not in listing
    assert editor.get(f"/admin/outbox/{confirmation}").status_code == 404
    assert editor.get(f"/admin/outbox/{test_copy}").status_code == 200
    assert admin.get(f"/admin/outbox/{confirmation}").status_code == 200


# --- A public redirect builds no URL from its query -------------------------------------------

@pytest.mark.parametrize("query", [
    {"_external": "1", "_scheme": "javascript"}, {"_anchor": "x\"><script>"}, {"_method": "POST"},
    {"_external": "1", "_scheme": "https", "lang": "en"}, {"lang": "xx"}, {"endpoint": "admin.users"},
])
def test_the_subscribe_redirect_ignores_every_argument_but_the_language(client, query):
    response = client.get("/subscribe", query_string=query)
    assert response.status_code == 302
    location = response.headers["Location"]
    expected = "/?lang=en#newsletter" if query.get("lang") == "en" else "/#newsletter"
    assert location in (expected, "http://localhost" + expected), location

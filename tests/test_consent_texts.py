"""Consent you can prove: every wording shown is kept under its hash (a new wording is a new
version by itself), each consent record names the one its person saw; the sign-up form ticks
nothing and its sentence names the newsletters ticked, in the browser and in the record."""

import pytest
from sqlalchemy import select

from mailer import consent
from mailer.models import ConsentText
from tests.helpers_visitor import consents, drain, make_list, subscribe
from tests.test_browser_visitor import browser_page, live_server  # noqa: F401 (fixtures)


@pytest.fixture
def newsletter(request, session, smtp_server, celery_worker):
    yield make_list(session, name="Wydarzenia w mieście")
    drain(request, session, smtp_server)


def wording_of(session, email, index=0) -> ConsentText:
    record = consents(session, email)[index]
    return session.get(ConsentText, record.consent_text)


def test_sentences_name_the_lists_with_the_right_plural(app):
    with app.test_request_context():
        assert consent.sign_up_wording(["Sport"], "pl").startswith(
            "Zgadzam się na otrzymywanie e-mailem newslettera „Sport” od: Urząd Miasta")
        assert consent.sign_up_wording(["Kultura", "Sport"], "pl").startswith(
            "Zgadzam się na otrzymywanie e-mailem newsletterów „Kultura” i „Sport” od:")
        five = consent.sign_up_wording(["A", "B", "C", "D", "E"], "pl")
        assert "newsletterów „A”, „B”, „C”, „D” i „E” od:" in five
        assert consent.sign_up_wording(["Culture", "Sport"], "en").startswith(
            "I agree to receive, by email, the newsletters “Culture” and “Sport” of Urząd Miasta")


def test_form_ticks_nothing_and_records_the_sentence_for_the_lists_chosen(client, session, newsletter):
    sport = make_list(session, name="Sport i rekreacja", slug="sport")
    make_list(session, name="Kultura", slug="kultura")
    page = client.get("/").get_data(as_text=True)
    assert 'name="lists"' in page and "checked" not in page.split('class="subscribe-form"')[1].split("</form>")[0]
    assert "Zaznacz newslettery, które chcesz otrzymywać." in page
    assert subscribe(client, "dwie@example.org", lists=[sport.id, newsletter.id]).status_code == 200
    text = wording_of(session, "dwie@example.org")
    assert text.wording == consent.sign_up_wording(["Sport i rekreacja", "Wydarzenia w mieście"], "pl")
    assert text.language == "pl" and text.hash == consent.text_hash(text.wording)
    assert {c.consent_text for c in consents(session, "dwie@example.org")} == {text.hash}
    assert subscribe(client, "jedna@example.org", lists=[sport.id]).status_code == 200
    one = wording_of(session, "jedna@example.org")
    assert one.hash != text.hash and "newslettera „Sport i rekreacja”" in one.wording
    # the same wording again is the same version, not a new row
    assert subscribe(client, "znowu@example.org", lists=[sport.id]).status_code == 200
    assert session.scalar(select(ConsentText.hash).where(ConsentText.hash == one.hash)) == one.hash
    assert len(session.scalars(select(ConsentText)).all()) == 2


def test_new_wording_is_a_new_version_and_old_records_keep_theirs(app, client, session, newsletter,
                                                                  monkeypatch):
    assert subscribe(client, "stara@example.org").status_code == 200
    before = wording_of(session, "stara@example.org")
    monkeypatch.setitem(app.config, "ORGANISATION_NAME", "Miasto Łódź")
    assert subscribe(client, "nowa@example.org").status_code == 200
    after = wording_of(session, "nowa@example.org")
    assert after.hash != before.hash and "Miasto Łódź" in after.wording
    assert wording_of(session, "stara@example.org").wording == before.wording


def test_confirmation_points_at_the_wording_confirmed(client, session, newsletter, smtp_server):
    from tests.helpers_visitor import confirm_path, csrf_token

    assert subscribe(client, "potw@example.org").status_code == 200
    mail = next(m for m in smtp_server.wait_for(1) if "potw@example.org" in m.recipients)
    path = confirm_path(mail)
    client.post(path, data={"csrf_token": csrf_token(client.get(path).data)})
    signed, confirmed = consents(session, "potw@example.org")
    assert confirmed.action == "confirm" and confirmed.consent_text == signed.consent_text != ""


def test_embed_and_api_keep_their_wording(client, session, newsletter, app):
    app.config["EMBED_ORIGINS"] = ["https://partner.example.org"]
    answer = client.post("/subscribe.json", data={"email": "emb@example.org", "consent": "1", "locale": "en"},
                         headers={"Origin": "https://partner.example.org"})
    assert answer.status_code == 200
    assert wording_of(session, "emb@example.org").wording == consent.sign_up_wording(["Wydarzenia w mieście"], "en")
    make_list(session, name="Sport", slug="sport-e")
    embed = client.get("/embed").get_data(as_text=True)
    assert " checked" not in embed and "data-none=" in embed  # the snippet ticks nothing either
    from tests.helpers_api import Api, token_for
    from mailer.models import Role

    api = Api(client, token_for(Role.EDITOR, "cms@miasto.example.pl"))
    stated = "Chcę dostawać newsletter miasta. (formularz CMS, wersja 3)"
    assert api.post("/subscribers/subscribe", {"email": "cms@example.org", "consent": True,
                                                "consent_text": stated}).status_code == 202
    assert wording_of(session, "cms@example.org").wording == stated
    assert api.post("/subscribers/subscribe", {"email": "bad@example.org", "consent": True,
                                                "consent_text": "a\x00b"}).status_code == 400


@pytest.mark.browser
@pytest.mark.one_database("sqlite", "a browser drives the form; the record is tested on both above")
def test_the_sentence_shown_is_the_sentence_recorded(app, session, newsletter, live_server, browser_page):
    make_list(session, name="Sport i rekreacja", slug="sport")
    make_list(session, name="Kultura", slug="kultura")
    page = browser_page
    page.goto(live_server + "/")
    sentence = page.locator(".subscribe-form .consent-sentence")
    assert sentence.inner_text() == "Zaznacz newslettery, które chcesz otrzymywać."
    for box in page.locator(".subscribe-form input[name=lists]").all():
        assert not box.is_checked()
    page.get_by_label("Kultura").check()
    assert "newslettera „Kultura”" in sentence.inner_text()
    page.get_by_label("Sport i rekreacja").check()
    page.get_by_label("Wydarzenia w mieście").check()
    shown = sentence.inner_text()
    assert "newsletterów „Kultura”, „Sport i rekreacja” i „Wydarzenia w mieście”" in shown
    page.fill(".subscribe-form input[name=email]", "widok@example.org")
    page.locator(".subscribe-form input[name=consent]").check()
    page.locator(".subscribe-form button[type=submit]").click()
    page.wait_for_url(live_server + "/subscribe")
    assert wording_of(session, "widok@example.org").wording == shown


def test_admin_consent_record_proof_and_csv(app, client, session, newsletter, smtp_server):
    import csv
    import io
    import re

    from mailer.models import AuditEntry, Role
    from tests.helpers_staff import login_as, post
    from tests.helpers_visitor import confirm_path, csrf_token

    visitor = app.test_client()
    assert subscribe(visitor, "dowod@example.org", headers={"User-Agent": "Przeglądarka/7"}).status_code == 200
    mail = next(m for m in smtp_server.wait_for(1) if "dowod@example.org" in m.recipients)
    path = confirm_path(mail)
    visitor.post(path, data={"csrf_token": csrf_token(visitor.get(path).data)})
    signed = wording_of(session, "dowod@example.org")
    sub_id = consents(session, "dowod@example.org")[0].subscriber_id

    editor = app.test_client()
    login_as(editor, session, Role.EDITOR)
    seen = editor.get(f"/admin/subscribers/{sub_id}/consent").get_data(as_text=True)
    assert signed.wording in seen and "127.0.0.1" not in seen  # where it came from: admins only

    login_as(client, session, Role.ADMIN)
    page = client.get(f"/admin/subscribers/{sub_id}/consent")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and signed.wording in text and "Przeglądarka/7" in text and "127.0.0.1" in text
    assert text.count(signed.wording) == 2  # the sign-up and its confirmation
    proof = post(client, f"/admin/subscribers/{sub_id}/consent-proof.html", page=f"/admin/subscribers/{sub_id}/consent")
    assert proof.status_code == 200 and "attachment" in proof.headers["Content-Disposition"]
    html = proof.get_data(as_text=True)
    assert signed.wording in html and signed.hash in html and "Przeglądarka/7" in html
    assert "<script" not in html and not re.search(r'(src|href)="', html)  # self-contained
    session.rollback()
    assert session.scalar(select(AuditEntry.target).where(AuditEntry.action == "subscriber.consent_proof")) == str(sub_id)

    exported = post(client, "/admin/subscribers/export.csv", {"consent_columns": "1"}, page="/admin/subscribers")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    header = rows[0]
    assert header[-4:] == ["consent_at", "consent_action", "consent_source", "consent_text_version"]
    [row] = [r for r in rows[1:] if r[0] == "dowod@example.org"]
    assert row[-3:] == ["confirm", "form", signed.hash] and row[-4].startswith("20")
    plain = post(client, "/admin/subscribers/export.csv", page="/admin/subscribers")
    assert "consent_at" not in plain.get_data(as_text=True).splitlines()[0]

"""Where staff and the API see bounces and complaints: the campaign page, the API's campaign,
the dashboard, a subscriber's page, and the suppression list (admins; searched by address)."""

import html
import re

from sqlalchemy import update

from mailer import stats, suppression
from mailer.bounces import handling
from mailer.models import Campaign, CampaignStatus, Role
from tests.helpers_api import admin_token, api  # noqa: F401
from tests.helpers_bounces import bounce_of, send_campaign
from tests.helpers_staff import login_as, post


def returned(app, session, smtp_server):
    """A campaign of 4: one hard bounce, one complaint, one policy block."""
    campaign_id, sent = send_campaign(session, smtp_server, 4)
    for item, name in [(sent[0], "postfix_user_unknown.eml"), (sent[1], "yahoo_arf_complaint.eml"),
                       (sent[2], "gmail_policy_block.eml")]:
        handling.receive_mail(session, bounce_of(app, item, name), source="smtp")
        session.commit()
    return campaign_id, sent


def text_of(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def test_campaign_page_in_both_languages(app, client, session, smtp_server):
    campaign_id, sent = returned(app, session, smtp_server)
    login_as(client, session, Role.EDITOR)
    english = text_of(client.get(f"/admin/campaigns/{campaign_id}?lang=en"))
    assert 'id="bounce-count">2<' in english and 'id="complaint-count">1<' in english
    assert "(50.0 %)" in english and "(25.00 %)" in english
    assert "Address unknown: 1 · temporary (full mailbox, gave up): 0 · refused by the receiving server's policy: 1" \
        in english
    assert sent[0].email in english and "5.1.1" in english and "spam complaint" in english
    polish = text_of(client.get(f"/admin/campaigns/{campaign_id}?lang=pl"))
    assert "Zwroty i skargi" in polish and "Zwrócone:" in polish and "Skargi:" in polish
    assert "(50,0 %)" in polish and "adres nie istnieje" in polish and "zgłoszenie spamu" in polish
    for english_only in ("Bounced:", "Complaints:", "What came back", "address unknown", "Sending pauses"):
        assert english_only not in polish


def test_the_self_pause_reason_is_shown_translated(app, client, session, smtp_server, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_PAUSE_MIN_SENT", 2)
    campaign_id, sent = send_campaign(session, smtp_server, 3)
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=CampaignStatus.SENDING))
    session.commit()
    handling.receive_mail(session, bounce_of(app, sent[0], "postfix_user_unknown.eml"), source="smtp")
    session.commit()
    login_as(client, session, Role.EDITOR)
    polish = text_of(client.get(f"/admin/campaigns/{campaign_id}?lang=pl"))
    assert "Wstrzymano automatycznie: zbyt wiele wiadomości wróciło jako niedoręczone." in polish
    english = text_of(client.get(f"/admin/campaigns/{campaign_id}?lang=en"))
    assert handling.BOUNCE_PAUSE_REASON in english


def test_api_campaign_has_counts_and_rates(app, api, session, smtp_server):  # noqa: F811
    campaign_id, _ = returned(app, session, smtp_server)
    answer = api.get(f"/campaigns/{campaign_id}")
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["bounce_count"], body["complaint_count"]) == (2, 1)
    assert (body["bounce_rate"], body["complaint_rate"]) == (0.5, 0.25)
    listed = api.get("/campaigns").get_json()["items"][0]
    assert listed["bounce_count"] == 2
    schemas = api.get("/openapi.json").get_json()["components"]["schemas"]
    spec = next(schema for name, schema in schemas.items() if name.split(".")[0] == "Campaign")["properties"]
    assert {"bounce_count", "complaint_count", "bounce_rate", "complaint_rate"} <= set(spec)


def test_dashboard(app, client, session, smtp_server):
    campaign_id, _ = returned(app, session, smtp_server)
    login_as(client, session, Role.ADMIN)
    english = text_of(client.get("/admin/?lang=en"))
    assert "Last 30 days: 4 messages sent, 2 bounced, 1 marked as spam." in english
    assert "Bounce rate: 50.0 %" in english and "Complaint rate: 25.00 %" in english
    assert '<td class="bounces">2 <span class="muted">(50.0 %)</span>' in english
    assert "the address does not exist (bounced): 1" in english and "marked a message as spam: 1" in english
    polish = text_of(client.get("/admin/?lang=pl"))
    assert "Ostatnie 30 dni: wysłano 4 wiadomości, zwrócono 2, jako spam oznaczono 1." in polish
    assert "Wykluczone adresy" in polish and "Bounce rate" not in polish


def test_suppression_list_is_for_admins_and_searched_by_address(app, client, session, smtp_server):
    from mailer import audience

    _, sent = returned(app, session, smtp_server)
    audience.erase_subscriber(session, sent[3].subscriber_id)
    session.commit()
    login_as(client, session, Role.EDITOR)
    assert client.get("/admin/suppressions").status_code == 403
    login_as(client, session, Role.ADMIN)
    page = text_of(client.get("/admin/suppressions?lang=en"))
    assert 'id="suppression-total">3 found' in page
    assert sent[0].email in page and sent[1].email in page and sent[3].email not in page  # erased: no address
    assert "(address not kept)" in page and "personal data erased" in page
    found = text_of(client.get(f"/admin/suppressions?lang=en&q={sent[3].email.upper()}"))
    assert 'id="suppression-total">1 found' in found and "personal data erased" in found
    fragment = text_of(client.get("/admin/suppressions?lang=en&q=osoba"))  # a fragment cannot match a hash
    assert 'id="suppression-total">0 found' in fragment
    by_reason = text_of(client.get("/admin/suppressions?lang=en&reason=complaint"))
    assert 'id="suppression-total">1 found' in by_reason and sent[1].email in by_reason
    assert client.get("/admin/suppressions?reason=nonsense").status_code == 400
    assert client.get("/admin/suppressions?after=x").status_code == 400
    assert client.get("/admin/suppressions?q=%01").status_code == 400
    polish = text_of(client.get("/admin/suppressions?lang=pl"))
    assert "Wykluczone adresy" in polish and "adres nie istnieje (zwrot)" in polish
    assert "Whole email address" not in polish


def test_subscriber_page_and_export_show_what_came_back(app, client, session, smtp_server):
    _, sent = returned(app, session, smtp_server)
    login_as(client, session, Role.ADMIN)
    page = text_of(client.get(f"/admin/subscribers/{sent[1].subscriber_id}?lang=pl"))
    assert "Nie otrzymuje poczty: oznaczył(a) wiadomość jako spam" in page
    assert "zgłoszenie spamu: zgoda wycofana" in page and "Zwroty i skargi" in page
    export = post(client, f"/admin/subscribers/{sent[0].subscriber_id}/export.json").get_json()
    assert export["suppressed"]["reason"] == "bounced"
    assert export["returned_mail"][0]["kind"] == "hard" and export["returned_mail"][0]["status"] == "5.1.1"


def test_the_suppression_list_pages_by_keyset_and_counts_up_to_a_limit(client, session, monkeypatch):
    """A list of a hundred thousand addresses is read a page at a time by id, newest first,
    at any depth, and counted exactly only up to COUNT_LIMIT."""
    for n in range(7):
        suppression.suppress(session, f"wypisany{n}@example.org", "complaint" if n % 2 else "bounced")
    session.commit()
    login_as(client, session, Role.ADMIN)
    newest = [row["entry"].id for row in suppression.search(session, per_page=200).rows]
    assert newest == sorted(newest, reverse=True) and len(newest) == 7
    seen, after = [], None
    while True:
        found = suppression.search(session, after=after, per_page=3)
        seen += [row["entry"].id for row in found.rows]
        if found.next_after is None:
            break
        after = found.next_after
    assert seen == newest
    complaints = suppression.search(session, reason="complaint", per_page=2)
    assert complaints.total == 3 and complaints.total_exact and len(complaints.rows) == 2
    page = text_of(client.get(f"/admin/suppressions?lang=pl&after={newest[2]}"))
    assert f"before={newest[3]}" in page and "Nowsi" in page and "Starsi" not in page  # the oldest are on it
    monkeypatch.setattr(suppression, "COUNT_LIMIT", 5)
    shown = text_of(client.get("/admin/suppressions?lang=pl"))  # "more than", or PostgreSQL's estimate
    assert ("znaleziono ponad 5" in shown or "znaleziono około" in shown) and "Znaleziono: 7" not in shown


def test_with_a_large_audience_the_reasons_are_counted_by_the_background_summary(client, session, monkeypatch):
    suppression.suppress(session, "pierwszy@example.org", "bounced")
    session.commit()
    monkeypatch.setattr(stats, "audience_is_small", lambda _session: False)
    stats.refresh_summary(session)
    suppression.suppress(session, "drugi@example.org", "bounced")  # after the summary: not in its figures
    session.commit()
    login_as(client, session, Role.ADMIN)
    page = text_of(client.get("/admin/suppressions?lang=pl"))
    assert "adres nie istnieje (zwrot): 1" in page and "Policzono" in page and "Znaleziono: 2" in page
    assert stats.dashboard(session)["suppressed"]["bounced"] == 1
    monkeypatch.undo()
    page = text_of(client.get("/admin/suppressions?lang=pl"))
    assert "adres nie istnieje (zwrot): 2" in page and "Policzono" not in page

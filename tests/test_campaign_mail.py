"""A campaign's copy for each recipient: well-formed, personal, safe, with its own return
path; what is sent is frozen at launch."""

import re
from email import message_from_bytes, policy

import pytest

from mailer import campaign_mail, deliveries, sending, tokens
from mailer.errors import InvalidInput
from mailer.mail.render import compile_campaign
from mailer.models import Template
from mailer.verp import Verp
from tests.helpers_engine import launch_and_snapshot, make_audience, make_campaign


class _Campaign:
    id = 9
    lists: list = []
    locale = "pl"
    started_at = None


@pytest.fixture
def mail(app):
    compiled = compile_campaign(
        subject="Noc Muzeów — zaproszenie", preheader="", layout_html="{{ content }}",
        layout_text="{{ content }}",
        content_html='<p>Dzień dobry {{ subscriber.name }}!</p><p>Zażółć gęślą jaźń.</p>'
                     '<a href="{{ unsubscribe_url }}">Wypisz się</a> <a href="{{ view_url }}">WWW</a>',
        content_text="Dzień dobry {{ subscriber.name }}!\nZażółć gęślą jaźń.\n{{ unsubscribe_url }}",
        context={})
    return campaign_mail.CampaignMail(_Campaign(), compiled, app.config)


def row(delivery_id=5, subscriber_id=11, email="anna@example.org", name="Anna Łącka"):
    return deliveries.Row(delivery_id, subscriber_id, email, name, "pl", 0)


def test_each_message_is_personal_and_well_formed(app, mail):
    first = mail.message(row())
    second = mail.message(row(6, 12, "jan@example.org", ""))
    parsed = message_from_bytes(first.data, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == "Anna Łącka"
    assert parsed["Subject"] == "Noc Muzeów — zaproszenie"
    assert parsed["Content-Language"] == "pl"
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_payload()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert plain["Content-Transfer-Encoding"] == "base64"
    unsubscribe = parsed["List-Unsubscribe"].strip("<>")
    assert tokens.read_unsubscribe_token(unsubscribe.rsplit("/", 1)[1]) == (11, 9)
    assert unsubscribe in plain.get_content() and unsubscribe in html.get_content()
    assert "Zażółć gęślą jaźń" in plain.get_content() and "Anna Łącka" in html.get_content()
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "=?" not in re.search(rb"List-Unsubscribe: (.*)\r\n", first.data).group(1).decode()
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id"):
        assert len(parsed.get_all(name)) == 1, name
    assert first.message_id == "<9.5.0@miasto.example.pl>"
    assert message_from_bytes(second.data, policy=policy.default)["To"] == "jan@example.org"
    assert second.recipient == "jan@example.org"
    assert all(len(line) <= 78 for line in first.data.split(b"\r\n"))
    assert b"\n" not in first.data.replace(b"\r\n", b"")


def test_each_message_has_its_own_signed_return_path(app, mail):
    verp = Verp(app.config)
    first, second = mail.message(row(5)), mail.message(row(6, 12, "jan@example.org"))
    assert first.sender != second.sender
    assert first.sender.startswith("bounces+") and first.sender.endswith("@miasto.example.pl")
    assert verp.read(first.sender).id == 5 and verp.read(second.sender).id == 6
    assert verp.read(first.sender.upper()).id == 5  # a relay may change the case
    forged = first.sender.replace(first.sender.split("-")[1][:2], "zz", 1)
    assert verp.read(forged) is None


@pytest.mark.parametrize("name,email", [("Eve\r\nBcc: x@example.org", "eve@example.org"),
                                        ("Eve", "eve@example.org\r\nBcc: x@example.org")])
def test_header_injection_is_refused(mail, name, email):
    with pytest.raises(InvalidInput):
        mail.message(row(1, 1, email, name))


def test_names_with_specials_are_quoted_or_encoded(mail):
    data = mail.message(row(1, 1, "a@example.org", 'Kowalski, "Jan" <x@y>')).data
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "a@example.org"
    assert len(parsed["To"].addresses) == 1


def test_what_is_sent_is_frozen_at_launch(app, session, smtp_server):
    """Editing the template or the event after launch changes no copy, nor the archive."""
    lists = make_audience(session, 3)
    campaign = make_campaign(session, lists)
    session.commit()
    launch_and_snapshot(session, campaign.id)
    event = campaign.campaign_events[0].event
    event.title = "ZMIENIONY TYTUŁ"
    for template in session.query(Template):
        template.html = template.html.replace("</", "<!-- edited --></", 1)
    session.commit()
    sent = campaign_mail.compiled(session, session.get(type(campaign), campaign.id))
    assert "ZMIENIONY" not in sent.html_source and "Koncert na Rynku" in sent.html_source
    sending.send(session, campaign.id)
    for message in smtp_server.wait_for(3):
        assert "ZMIENIONY" not in message.message.get_body(("html",)).get_content()


def test_fast_link_tokens_are_the_serializers_own(app):
    """The engine signs two links per recipient with PairSigner: byte for byte what
    itsdangerous makes, for any ids and after a key rotation, and readable by verify."""
    import random

    for keys in ({}, {"SECRET_KEY": "new-secret-after-rotation", "SECRET_KEY_FALLBACKS": ["test-secret"]}):
        saved = {key: app.config[key] for key in ("SECRET_KEY", "SECRET_KEY_FALLBACKS")}
        app.config.update(keys)
        try:
            for purpose in (tokens.UNSUBSCRIBE, tokens.VIEW):
                fast, slow = tokens.PairSigner(purpose), tokens.serializer(purpose)
                for first, second in [(0, 0), (1, 9), (2**31 - 1, 2**31 - 1)] + [
                        (random.randrange(10**9), random.randrange(10**6)) for _ in range(200)]:
                    token = fast(first, second)
                    assert token == slow.dumps([first, second])
                    assert tokens.verify(purpose, token) == [first, second]
        finally:
            app.config.update(saved)

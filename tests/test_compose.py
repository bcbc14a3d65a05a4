"""The per-campaign skeleton: each recipient's bytes are well-formed, personal and safe."""

import re
from email import message_from_bytes, policy

import pytest

from mailer import tokens
from mailer.errors import InvalidInput
from mailer.mail.compose import CampaignMailer, Recipient
from mailer.mail.render import compile_campaign


class _Campaign:
    id = 9
    lists = []


@pytest.fixture
def mailer(app):
    compiled = compile_campaign(
        subject="Noc Muzeów — zaproszenie", preheader="", layout_html="{{ content }}",
        layout_text="{{ content }}",
        content_html='<p>Dzień dobry {{ subscriber.name }}!</p><p>Zażółć gęślą jaźń.</p>'
                     '<a href="{{ unsubscribe_url }}">Wypisz się</a> <a href="{{ view_url }}">WWW</a>',
        content_text="Dzień dobry {{ subscriber.name }}!\nZażółć gęślą jaźń.\n{{ unsubscribe_url }}",
        context={})
    return CampaignMailer(_Campaign(), compiled)


def test_each_message_is_personal_and_well_formed(mailer):
    first = mailer.message_for(Recipient(11, "anna@example.org", "Anna Łącka"))
    second = mailer.message_for(Recipient(12, "jan@example.org", ""), message_id="<9.2.1@miasto.example.pl>")
    parsed = message_from_bytes(first.data, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == "Anna Łącka"
    assert parsed["Subject"] == "Noc Muzeów — zaproszenie"
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_payload()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert plain["Content-Transfer-Encoding"] == "base64"
    unsubscribe = parsed["List-Unsubscribe"].strip("<>")
    assert tokens.read_unsubscribe_token(unsubscribe.rsplit("/", 1)[1]) == (11, 9)
    assert unsubscribe in plain.get_content() and unsubscribe in html.get_content()
    assert "Zażółć gęślą jaźń" in plain.get_content()
    assert "Anna Łącka" in html.get_content()
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "=?" not in re.search(rb"List-Unsubscribe: (.*)\r\n", first.data).group(1).decode()
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id"):
        assert len(parsed.get_all(name)) == 1, name
    assert first.message_id.endswith("@miasto.example.pl>")
    assert second.message_id == "<9.2.1@miasto.example.pl>"
    assert message_from_bytes(second.data, policy=policy.default)["To"] == "jan@example.org"
    assert second.recipient == "jan@example.org"
    assert all(len(line) <= 78 for line in first.data.split(b"\r\n"))
    assert b"\n" not in first.data.replace(b"\r\n", b"")


@pytest.mark.parametrize("name,email", [("Eve\r\nBcc: x@example.org", "eve@example.org"),
                                        ("Eve", "eve@example.org\r\nBcc: x@example.org")])
def test_header_injection_is_refused(mailer, name, email):
    with pytest.raises(InvalidInput):
        mailer.message_for(Recipient(1, email, name))


def test_names_with_specials_are_quoted_or_encoded(mailer):
    data = mailer.message_for(Recipient(1, "a@example.org", 'Kowalski, "Jan" <x@y>')).data
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "a@example.org"
    assert len(parsed["To"].addresses) == 1

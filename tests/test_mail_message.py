"""The hand-assembled message meets STANDARDS 1-7 and 11 on its serialized bytes."""

import re
from email import message_from_bytes, message_from_string, policy

import pytest

from mailer.errors import InvalidInput
from mailer.mail.headers import ListSettings, list_headers
from mailer.mail.message import Skeleton, address, make_msgid
from tests.helpers_content import fixed

LONG_URL = "http://localhost/u/" + "A" * 90  # longer than the ~77 characters policy.SMTP encodes


def make(subject="Zaproszenie: koncert kolęd w żółtym ratuszu — wstęp wolny dla wszystkich gości",
         name="Zażółć Gęślą Jaźń", url=LONG_URL, mailto="", email="jan@example.org"):
    headers, suffix = list_headers(ListSettings("Wydarzenia w mieście", "wydarzenia",
                                                "miasto.example.pl", mailto=mailto))
    skeleton = Skeleton(
        sender=address("Urząd Miasta — Wydarzenia", "wydarzenia@miasto.example.pl"), subject=subject,
        text=fixed("Dzień dobry,\nzapraszamy na koncert. Wypisz się: " + url),
        html=fixed(f'<p>Dzień dobry, zapraszamy na koncert.</p><a href="{url}">Wypisz się</a>'),
        headers=headers, unsubscribe_suffix=suffix, language="pl")
    return skeleton.render(to_name=name, to_email=email, return_path="bounces+s1-abcdefgh@miasto.example.pl",
                           message_id=make_msgid("miasto.example.pl"), unsubscribe_url=url)


def headers_of(data: bytes) -> list[tuple[str, str]]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n[ \t]", " ", head)
    return [tuple(line.split(": ", 1)) for line in unfolded.split("\r\n")]


def test_list_unsubscribe_is_one_bracketed_url_never_encoded():
    out = make()
    names = [name for name, _ in headers_of(out.data)]
    assert names.count("List-Unsubscribe") == 1
    assert names.count("List-Unsubscribe-Post") == 1
    values = dict(headers_of(out.data))
    assert values["List-Unsubscribe"] == f"<{LONG_URL}>"
    assert "=?" not in values["List-Unsubscribe"]
    assert values["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_mailto_may_follow_the_url():
    out = make(mailto="wypisz@miasto.example.pl")
    value = dict(headers_of(out.data))["List-Unsubscribe"]
    assert value.startswith(f"<{LONG_URL}>, <mailto:wypisz@miasto.example.pl")


def test_one_of_each_required_header_and_message_id_on_sending_domain():
    out = make()
    names = [name for name, _ in headers_of(out.data)]
    for name in ("Date", "Message-ID", "From", "To", "Subject", "List-Id", "MIME-Version"):
        assert names.count(name) == 1, name
    assert re.fullmatch(r"<[^@>]+@miasto\.example\.pl>", dict(headers_of(out.data))["Message-ID"])
    assert out.message_id == dict(headers_of(out.data))["Message-ID"]


def test_polish_subject_and_names_round_trip_with_short_encoded_words():
    out = make()
    parsed = message_from_bytes(out.data, policy=policy.default)
    assert parsed["Subject"] == "Zaproszenie: koncert kolęd w żółtym ratuszu — wstęp wolny dla wszystkich gości"
    assert parsed["To"].addresses[0].display_name == "Zażółć Gęślą Jaźń"
    assert parsed["From"].addresses[0].display_name == "Urząd Miasta — Wydarzenia"
    assert "Wydarzenia w mieście" in str(parsed["List-Id"])
    words = re.findall(rb"=\?[^?]+\?[qQbB]\?[^?]*\?=", out.data)
    assert words and all(len(word) <= 75 for word in words)
    head_lines = out.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    # Folded to 78 where a header can be folded; the unsubscribe URL is one unbreakable token.
    assert all(len(line) <= 78 for line in head_lines if not line.startswith(b"List-Unsubscribe:"))


def test_list_id_under_the_namespace():
    parsed = message_from_bytes(make().data, policy=policy.default)
    assert str(parsed["List-Id"]).endswith("<wydarzenia.miasto.example.pl>")


def test_multipart_alternative_text_then_html_base64():
    out = make()
    parsed = message_from_bytes(out.data, policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "base64" for p in parts)
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert "Dzień dobry" in parts[0].get_content() and "Wypisz się" in parts[1].get_content()
    assert out.data.isascii()  # nothing 8bit on the wire
    body = out.data.split(b"\r\n\r\n", 1)[1]
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))


@pytest.mark.parametrize("field", ["subject", "name"])
@pytest.mark.parametrize("bad", ["a\r\nBcc: x@evil.example", "a\nb", "a\rb"])
def test_cr_or_lf_in_a_header_value_is_refused(field, bad):
    with pytest.raises(InvalidInput):
        make(**{field: bad})


def test_cr_lf_in_an_address_is_refused():
    with pytest.raises(InvalidInput):
        address("Jan", "jan@example.org\r\nBcc: x@evil.example")


@pytest.mark.parametrize("bad", ["no-at-sign", "@example.org", "jan@"])
def test_an_address_without_local_part_or_domain_is_refused(bad):
    with pytest.raises(InvalidInput):
        address("Jan", bad)


def test_an_address_with_polish_letters_is_written_in_utf8_for_smtputf8():
    out = make(email="małgorzata.wiśniewska@example.pl")
    assert out.needs_smtputf8
    parsed = message_from_string(out.data.decode("utf-8"), policy=policy.SMTPUTF8)  # RFC 6532
    assert parsed["To"].addresses[0].addr_spec == "małgorzata.wiśniewska@example.pl"
    assert parsed["To"].addresses[0].display_name == "Zażółć Gęślą Jaźń"
    assert not make().needs_smtputf8 and make().data.isascii()

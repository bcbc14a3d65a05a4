"""DKIM: rsa-sha256 (2048) and ed25519-sha256 under separate selectors, made with
``cryptography``, verified by dkimpy; a changed signed header breaks them."""

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailer import deliveries
from mailer.campaign_mail import CampaignMail
from mailer.mail import dkim as signing
from mailer.mail.render import compile_campaign


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dkim")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    (folder / "rsa.pem").write_bytes(_pem(rsa_key))
    (folder / "ed.pem").write_bytes(_pem(ed_key))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (folder / "small.pem").write_bytes(_pem(small))
    rsa_public = base64.b64encode(rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    ed_public = base64.b64encode(ed_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    records = {
        b"rsa2026._domainkey.miasto.example.pl.": f"v=DKIM1; k=rsa; p={rsa_public}".encode(),
        b"ed2026._domainkey.miasto.example.pl.": f"v=DKIM1; k=ed25519; p={ed_public}".encode(),
    }
    return folder, records


class _Campaign:
    id = 42
    lists: list = []
    locale = "pl"
    started_at = None


def _message(app, keys) -> bytes:
    folder, _ = keys
    app.config.update(DKIM_DOMAIN="miasto.example.pl",
                      DKIM_RSA_KEY_FILE=str(folder / "rsa.pem"), DKIM_RSA_SELECTOR="rsa2026",
                      DKIM_ED25519_KEY_FILE=str(folder / "ed.pem"), DKIM_ED25519_SELECTOR="ed2026")
    try:
        compiled = compile_campaign(
            subject="Zaproszenie na koncert — ŻÓŁĆ", preheader="", layout_html="{{ content }}",
            layout_text="{{ content }}", content_html="<p>Cześć {{ subscriber.name }}</p>"
            '<p><a href="{{ unsubscribe_url }}">Wypisz</a></p>',
            content_text="Cześć {{ subscriber.name }}\n  trailing spaces   \n{{ unsubscribe_url }}",
            context={})
        mail = CampaignMail(_Campaign(), compiled, app.config)
        return mail.message(deliveries.Row(3, 7, "jan@example.org", "Jan Kowalski", "pl", 0)).data
    finally:
        app.config.update(DKIM_RSA_KEY_FILE="", DKIM_ED25519_KEY_FILE="")


def _dns(records):
    return lambda name, timeout=5: records.get(name)


def _verifies(data: bytes, records, idx: int) -> bool:
    try:
        return dkim.DKIM(data).verify(idx=idx, dnsfunc=_dns(records))
    except dkim.ValidationError:
        return False


def test_both_signatures_verify_with_dkimpy(app, keys):
    data = _message(app, keys)
    _, records = keys
    assert data.count(b"DKIM-Signature:") == 2
    assert _verifies(data, records, 0)
    assert _verifies(data, records, 1)
    head = data.split(b"\r\n\r\n")[0].decode()
    assert "a=rsa-sha256" in head and "a=ed25519-sha256" in head
    assert "s=rsa2026" in head and "s=ed2026" in head
    signed = head.split("h=")[1].split(";")[0].replace("\r\n\t", "").lower().split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe",
                 "list-unsubscribe-post", "list-id", "content-language", "mime-version", "content-type"):
        assert name in signed
    # Over-signed: a relay adding a second From, Subject or unsubscribe header breaks them.
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post"):
        assert signed.count(name) == 2, name
    signature = head.split("DKIM-Signature:")[1]
    assert all(len(line) <= 78 for line in signature.split("\r\n"))  # b= is folded


@pytest.mark.parametrize("added", [b"From: Eve <eve@example.org>\r\n", b"Subject: Pilne!\r\n",
                                   b"List-Unsubscribe: <https://evil.example/u>\r\n"])
def test_a_header_added_by_a_relay_breaks_both(app, keys, added):
    data = _message(app, keys)
    _, records = keys
    head, _, body = data.partition(b"\r\n\r\n")
    tampered = head + b"\r\n" + added.rstrip(b"\r\n") + b"\r\n\r\n" + body
    assert not _verifies(tampered, records, 0)
    assert not _verifies(tampered, records, 1)


@pytest.mark.parametrize("old,new", [
    (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: List-Unsubscribe=Nope"),
    (b"To: \"Jan Kowalski\" <jan@example.org>", b"To: \"Jan Kowalski\" <eve@example.org>"),
    (b"MIME-Version: 1.0", b"MIME-Version: 1.1"),
])
def test_a_changed_signed_header_breaks_both(app, keys, old, new):
    data = _message(app, keys)
    _, records = keys
    assert old in data
    tampered = data.replace(old, new)
    assert not _verifies(tampered, records, 0)
    assert not _verifies(tampered, records, 1)


def test_a_changed_body_breaks_it(app, keys):
    data = _message(app, keys)
    _, records = keys
    head, _, body = data.partition(b"\r\n\r\n")
    tampered = head + b"\r\n\r\n" + body.replace(b"Content-Transfer-Encoding: base64",
                                                  b"Content-Transfer-Encoding: 8bit", 1)
    assert not _verifies(tampered, records, 0)
    assert not _verifies(tampered, records, 1)


def test_short_or_wrong_keys_are_refused(keys):
    folder, _ = keys
    with pytest.raises(ValueError):
        signing.load_key(str(folder / "small.pem"), "rsa-sha256", "s")
    with pytest.raises(ValueError):
        signing.load_key(str(folder / "rsa.pem"), "ed25519-sha256", "s")


def test_relaxed_canonicalization():
    assert signing.canonical_body(b"a  b \t\r\nc\r\n\r\n\r\n") == b"a b\r\nc\r\n"
    assert signing.canonical_body(b"") == b""
    assert signing.canonical_header(b"Subject ", b" a\r\n \t b  ") == b"subject:a b\r\n"

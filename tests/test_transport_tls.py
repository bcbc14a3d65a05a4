"""SMTP over STARTTLS and implicit TLS, with AUTH, against a real aiosmtpd server that
holds a certificate the client trusts through ``?cafile=``; refusals at connect time
become temporary per-message results."""

import ipaddress
import ssl
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailer.mail.message import Outgoing
from mailer.mail.transport import ConnectionFailed, SMTPSettings, SMTPTransport
from tests.smtp_server import SMTPServer, authenticator_for

USER, PASSWORD = "newsletter", "hasło-ąę 123"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert file, key file)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def server_context(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def messages(count: int) -> list[Outgoing]:
    return [Outgoing("a@example.org", f"r{i}@example.org", b"Subject: tls\r\n\r\nhello\r\n", f"<{i}@x>")
            for i in range(count)]


@pytest.fixture
def starttls_server(certificate):
    server = SMTPServer(tls_context=server_context(certificate), require_starttls=True,
                        auth_required=True, auth_require_tls=True, authenticator=authenticator_for(USER, PASSWORD))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def implicit_tls_server(certificate):
    # aiosmtpd counts only STARTTLS as TLS for auth_require_tls: the session is TLS all along
    server = SMTPServer(ssl_context=server_context(certificate), auth_required=True,
                        auth_require_tls=False, authenticator=authenticator_for(USER, PASSWORD))
    server.start()
    yield server
    server.stop()


def url_password() -> str:
    return quote(PASSWORD, safe="")


def test_starttls_and_auth(starttls_server, certificate):
    url = (f"smtp://{USER}:{url_password()}@127.0.0.1:{starttls_server.port}"
           f"?starttls=1&cafile={certificate[0]}")
    settings = SMTPSettings.from_url(url)
    assert settings.password == PASSWORD
    transport = SMTPTransport(settings)
    results = transport.send(messages(3))
    transport.close()
    assert [r.ok for r in results] == [True, True, True]
    assert [(m.tls, m.login) for m in starttls_server.messages] == [(True, USER)] * 3


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_and_auth(implicit_tls_server, certificate):
    url = f"smtps://{USER}:{url_password()}@127.0.0.1:{implicit_tls_server.port}?cafile={certificate[0]}"
    transport = SMTPTransport(SMTPSettings.from_url(url))
    results = transport.send(messages(2))
    transport.close()
    assert [r.ok for r in results] == [True, True], results
    assert [(m.tls, m.login) for m in implicit_tls_server.messages] == [(True, USER)] * 2


def test_wrong_password_is_a_temporary_failure_of_every_message(starttls_server, certificate):
    """A refused login is a setting to fix, not a bad recipient: the engine retries the
    messages later (and pauses the campaign after SEND_PAUSE_AFTER_FAILURES)."""
    url = f"smtp://{USER}:wrong@127.0.0.1:{starttls_server.port}?starttls=1&cafile={certificate[0]}"
    transport = SMTPTransport(SMTPSettings.from_url(url))
    with pytest.raises(ConnectionFailed) as failed:
        transport.send(messages(2))
    transport.close()
    assert failed.value.code == 535 and "connecting" in failed.value.error
    assert failed.value.results == []  # nothing attempted: the messages wait, none failed
    assert starttls_server.messages == []


def test_untrusted_certificate_is_a_connection_failure(starttls_server):
    """Without the CA the certificate does not verify: nothing is sent in clear instead."""
    transport = SMTPTransport(SMTPSettings.from_url(
        f"smtp://{USER}:{url_password()}@127.0.0.1:{starttls_server.port}?starttls=1"))
    with pytest.raises(ConnectionFailed) as failed:
        transport.send(messages(1))
    transport.close()
    assert "CERTIFICATE_VERIFY_FAILED" in failed.value.error
    assert starttls_server.messages == []


def test_server_without_starttls_is_refused(certificate):
    server = SMTPServer()  # no TLS offered
    server.start()
    try:
        transport = SMTPTransport(SMTPSettings.from_url(
            f"smtp://127.0.0.1:{server.port}?starttls=1&cafile={certificate[0]}"))
        with pytest.raises(ConnectionFailed) as failed:
            transport.send(messages(1))
        transport.close()
        assert "STARTTLS" in failed.value.error  # never in clear instead
        assert server.messages == []
    finally:
        server.stop()

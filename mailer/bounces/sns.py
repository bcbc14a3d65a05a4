"""Amazon SNS message signatures: the signing certificate fetched only from an SNS host.

SNS signs each message (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) over a canonical
string of its fields, with the key of the certificate at SigningCertURL. That URL, and a
subscription's SubscribeURL, must match SES_SNS_URL_PATTERN (by default https and an
``sns.<region>.amazonaws.com`` host), or anyone could sign with a certificate of their own.
Certificates are cached per process.
"""

import base64
import binascii
import re
import urllib.request
from datetime import datetime, timezone
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
MAX_CERTIFICATE = 16 * 1024
_certificates: dict[str, x509.Certificate] = {}


class SignatureError(ValueError):
    """The message is not signed by SNS (bad URL, certificate or signature)."""


def trusted_url(url: str, pattern: str) -> bool:
    """An SNS URL of the configured shape: no user info, no odd characters, the pattern matched
    against scheme://host[:port]/path as parsed (so ``https://sns.x.amazonaws.com@evil/`` fails)."""
    if not isinstance(url, str) or len(url) > 2048 or any(ch in url for ch in "\\\r\n\t "):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username or parts.password or not parts.hostname or parts.scheme not in {"https", "http"}:
        return False
    normalized = f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}{parts.path or '/'}"
    return re.match(pattern, normalized) is not None


def string_to_sign(message: dict) -> bytes:
    """The canonical text SNS signs: each signed field present, name then value, one a line."""
    fields = SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise SignatureError("unknown SNS message type")
    lines = []
    for name in fields:
        if name not in message:
            if name == "Subject":
                continue
            raise SignatureError(f"SNS field {name} missing")
        value = message[name]
        if not isinstance(value, str):
            raise SignatureError(f"SNS field {name} is not text")
        lines += [name, value]
    return ("\n".join(lines) + "\n").encode("utf-8")


def verify(message: dict, pattern: str, fetch=None) -> None:
    """Raise SignatureError unless ``message`` is signed by the certificate at its
    SigningCertURL, which must match ``pattern``."""
    url = str(message.get("SigningCertURL") or message.get("SigningCertUrl") or "")
    if not trusted_url(url, pattern) or not url.lower().endswith(".pem"):
        raise SignatureError("the signing certificate is not on an SNS host")
    version = message.get("SignatureVersion")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(version))
    if algorithm is None:
        raise SignatureError("unknown SNS signature version")
    try:
        signature = base64.b64decode(message.get("Signature") or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the signature is not base64") from exc
    certificate = certificate_at(url, fetch)
    now = datetime.now(timezone.utc)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureError("the signing certificate has expired")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the signing certificate holds no RSA key")
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise SignatureError("the signature does not match") from exc


def certificate_at(url: str, fetch=None) -> x509.Certificate:
    """The certificate at ``url`` (cached). Raises SignatureError."""
    if url in _certificates:
        return _certificates[url]
    try:
        pem = (fetch or _fetch)(url)
        certificate = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as exc:
        raise SignatureError("the signing certificate could not be read") from exc
    if len(_certificates) >= 32:
        _certificates.clear()
    _certificates[url] = certificate
    return certificate


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data = response.read(MAX_CERTIFICATE + 1)
    if len(data) > MAX_CERTIFICATE:
        raise ValueError("certificate too large")
    return data


def confirm_subscription(url: str, pattern: str) -> None:
    """Visit a SubscriptionConfirmation's SubscribeURL (task body). Raises OSError to retry."""
    if not trusted_url(url, pattern):
        raise ValueError("not an SNS subscription URL")
    with urllib.request.urlopen(url, timeout=15) as response:
        response.read(64 * 1024)

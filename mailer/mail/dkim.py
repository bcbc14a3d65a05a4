"""DKIM signatures (RFC 6376) made with OpenSSL through ``cryptography``.

rsa-sha256 (keys of at least 2048 bits) and ed25519-sha256 (RFC 8463), each under its own
selector, relaxed/relaxed canonicalization. dkimpy verifies these signatures in the tests,
but its RSA is pure Python (~25x slower), so signing is done here. The list headers are
signed explicitly (dkimpy would leave List-Unsubscribe-Post out of ``h=``). The bytes
returned are the bytes to send: nothing may touch them after signing.
"""

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

SIGNED_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
                  "List-Unsubscribe-Post", "List-Id", "Content-Language", "MIME-Version",
                  "Content-Type")
# Named once more in h= than they appear (RFC 6376 §5.4.2, "over-signing"): a relay that
# adds a second From, Subject or unsubscribe header breaks the signature.
OVERSIGNED = ("From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post")

_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_EOL = re.compile(rb"[ \t]+\r\n")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalization (RFC 6376 §3.4.4)."""
    if b"\t" in body or b"  " in body or b" \r\n" in body:  # else only the end changes
        body = _WSP_RUN.sub(b" ", _WSP_EOL.sub(b"\r\n", body))
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def canonical_header(name: bytes, value: bytes) -> bytes:
    """Relaxed header canonicalization (RFC 6376 §3.4.2), with its CRLF."""
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip(b" \t\r\n")
    return name.strip().lower() + b":" + value + b"\r\n"


def split_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw value) per header field of ``head`` (without the blank line)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


@dataclass(frozen=True)
class Key:
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    selector: str
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.private_key.sign(hashlib.sha256(data).digest())


class Signer:
    """Adds one DKIM-Signature per key to finished message bytes."""

    def __init__(self, domain: str, keys: list[Key]):
        self.domain = domain
        self.keys = keys

    def sign(self, message: bytes, now: int | None = None) -> bytes:
        head, sep, body = message.partition(b"\r\n\r\n")
        fields = split_headers(head)
        by_name = {}
        for name, value in fields:
            by_name[name.strip().lower()] = (name, value)  # the last instance is signed
        present = [h for h in SIGNED_HEADERS if h.lower().encode() in by_name]
        signed = b"".join(canonical_header(*by_name[h.lower().encode()]) for h in present)
        names = ":".join(present + [h for h in OVERSIGNED if h in present])
        body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode()
        stamp = int(time.time()) if now is None else now
        signatures = []
        for key in self.keys:
            tags = (f" v=1; a={key.algorithm}; c=relaxed/relaxed;\r\n\td={self.domain};"
                    f" s={key.selector}; t={stamp};\r\n\th={_folded(names, ':')};\r\n\tbh={body_hash};\r\n\tb=")
            unsigned = canonical_header(b"DKIM-Signature", tags.encode())[:-2]
            b = base64.b64encode(key.sign(signed + unsigned)).decode()
            signatures.append(f"DKIM-Signature:{tags}{_folded(b)}\r\n".encode())
        return b"".join(signatures) + head + sep + body


def _folded(value: str, separator: str = "", width: int = 70) -> str:
    """``value`` in lines of at most ``width`` characters joined by CRLF TAB (folding white
    space in a tag value is ignored by verifiers, RFC 6376 §3.5); a ``separator``-joined
    list is broken only after a separator."""
    if separator:
        pieces = [piece + separator for piece in value.split(separator)]
        pieces[-1] = pieces[-1][:-len(separator)]
    else:
        pieces = [value[i:i + width] for i in range(0, len(value), width)]
    lines = [""]
    for piece in pieces:
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\r\n\t".join(lines)


def load_key(path: str, algorithm: str, selector: str) -> Key:
    """Raises ValueError for a key of the wrong kind or an RSA key under 2048 bits."""
    private = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if algorithm == "rsa-sha256":
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < 2048:
            raise ValueError("DKIM_RSA_KEY_FILE must hold an RSA key of at least 2048 bits")
    elif not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ValueError("DKIM_ED25519_KEY_FILE must hold an Ed25519 key")
    return Key(algorithm, selector, private)


@lru_cache(maxsize=8)
def _signer(domain: str, rsa_file: str, rsa_selector: str, ed_file: str, ed_selector: str):
    keys = []
    if rsa_file:
        keys.append(load_key(rsa_file, "rsa-sha256", rsa_selector))
    if ed_file:
        keys.append(load_key(ed_file, "ed25519-sha256", ed_selector))
    return Signer(domain, keys) if keys else None


def from_config(config) -> Signer | None:
    """The configured signer (cached per process), or None when no key is set."""
    return _signer(config.get("DKIM_DOMAIN") or config["MAIL_DOMAIN"],
                   config.get("DKIM_RSA_KEY_FILE") or "", config.get("DKIM_RSA_SELECTOR") or "rsa",
                   config.get("DKIM_ED25519_KEY_FILE") or "",
                   config.get("DKIM_ED25519_SELECTOR") or "ed")

"""Envelope senders per message (VERP): a returned mail names the one message it returns.

Each message goes out with its own signed return path, ``bounces+d1f3k-7xq2m4ab@MAIL_DOMAIN``:
``d`` and a campaign delivery's id, or ``s`` and a subscriber's id for a notice
(confirmation, welcome), in base 36, then a keyed signature of those. Mail servers may
change the case of a local part, so the token is lower case and read case-insensitively.
A forged or altered address does not verify and is ignored.

``SECRET_KEY`` signs; ``SECRET_KEY_FALLBACKS`` still verify after a rotation (bounces come
back days later).
"""

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

DELIVERY = "d"
SUBSCRIBER = "s"
_SIG = 8  # base32 characters: 40 bits
_TOKEN = re.compile(r"^([ds])([0-9a-z]{1,13})-([a-z2-7]{8})$")


@dataclass(frozen=True)
class ReturnPath:
    kind: str  # DELIVERY or SUBSCRIBER
    id: int


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"mailer.verp:" + secret.encode()).digest()


def _signature(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest[:5]).decode("ascii").lower()


class Verp:
    """Builds and reads return paths; made once from the config (cheap per message)."""

    def __init__(self, config):
        address = config.get("BOUNCE_ADDRESS") or f"bounces@{config['MAIL_DOMAIN']}"
        local, _, domain = address.rpartition("@")
        self.local, self.domain = local, domain.lower()
        self._sign_key = _key(config["SECRET_KEY"])
        self._keys = [self._sign_key, *(_key(k) for k in config.get("SECRET_KEY_FALLBACKS") or ())]

    @property
    def address(self) -> str:
        """The plain bounce address (what the MTA routes to the receiver)."""
        return f"{self.local}@{self.domain}"

    def token(self, kind: str, id_: int) -> str:
        body = kind + _base36(id_)
        return f"{body}-{_signature(self._sign_key, body)}"

    def return_path(self, kind: str, id_: int) -> str:
        return f"{self.local}+{self.token(kind, id_)}@{self.domain}"

    def read(self, address: str) -> ReturnPath | None:
        """The delivery or subscriber a return path names, or None when it is not one of ours
        (another domain, no token, a forged or altered signature)."""
        address = (address or "").strip().strip("<>").lower()
        local, _, domain = address.rpartition("@")
        base, plus, token = local.partition("+")
        if not plus or domain != self.domain or base != self.local.lower():
            return None
        match = _TOKEN.match(token)
        if not match:
            return None
        kind, digits, signature = match.groups()
        body = kind + digits
        if not any(hmac.compare_digest(_signature(key, body), signature) for key in self._keys):
            return None
        return ReturnPath(kind, int(digits, 36))

"""The rate limits every subscribe route shares (form, JSON embed, API): one budget per IP
and one per normalized address, counted together across the routes."""

import hashlib
from collections.abc import Callable

from flask import current_app

from ..errors import InvalidInput
from ..extensions import limiter
from ..subscribers import normalize_email


def address_key(raw) -> str:
    """The per-address key: a hash of the normalized address (or of the raw text when it is
    not an address), so a limit holds however the address is spelled."""
    raw = raw if isinstance(raw, str) else ""
    try:
        value = normalize_email(raw)
    except InvalidInput:
        value = raw.strip().lower()[:254]
    return "subscribe-address:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def per_ip(key_func: Callable[[], str] | None = None, on_breach=None):
    return limiter.shared_limit(lambda: current_app.config["SUBSCRIBE_RATE_LIMIT"],
                                scope="subscribe-ip", key_func=key_func, methods=["POST"],
                                on_breach=on_breach, override_defaults=False)


def per_address(email: Callable[[], object], on_breach=None):
    """``email`` returns the posted address (read before the view runs)."""
    return limiter.shared_limit(lambda: current_app.config["SUBSCRIBE_ADDRESS_RATE_LIMIT"],
                                scope="subscribe-address", key_func=lambda: address_key(email()),
                                methods=["POST"], on_breach=on_breach, override_defaults=False)

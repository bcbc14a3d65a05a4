"""The defences every subscribe route shares (form, JSON embed, API): one budget per IP and
one per mailbox, counted together across the routes, and one answer time for every outcome."""

import hashlib
import time
from collections.abc import Callable
from functools import wraps

from flask import Flask, Response, current_app, g

from ..errors import InvalidInput
from ..extensions import limiter
from ..subscribers import mailbox, normalize_email


def _mailbox_digest(raw) -> str:
    """A hash of the mailbox a human reads behind ``raw`` (``subscribers.mailbox``), or of the
    raw text when it is not an address, so a limit holds however the address is spelled."""
    raw = raw if isinstance(raw, str) else ""
    try:
        value = mailbox(normalize_email(raw))
    except InvalidInput:
        value = raw.strip().lower()[:254]
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def address_key(raw) -> str:
    """The per-address key of the subscribe routes: one per mailbox (victim+1@, victim+2@ and
    v.i.c.t.i.m@gmail.com are one person's inbox)."""
    return "subscribe-address:" + _mailbox_digest(raw)


def account_key(raw) -> str:
    """The per-account key of the staff sign-in (whatever the address's spelling)."""
    return "login-account:" + _mailbox_digest(raw)


def per_ip(key_func: Callable[[], str] | None = None, on_breach=None):
    return limiter.shared_limit(lambda: current_app.config["SUBSCRIBE_RATE_LIMIT"],
                                scope="subscribe-ip", key_func=key_func, methods=["POST"],
                                on_breach=on_breach, override_defaults=False)


def per_address(email: Callable[[], object], on_breach=None):
    """``email`` returns the posted address (read before the view runs)."""
    return limiter.shared_limit(lambda: current_app.config["SUBSCRIBE_ADDRESS_RATE_LIMIT"],
                                scope="subscribe-address", key_func=lambda: address_key(email()),
                                methods=["POST"], on_breach=on_breach, override_defaults=False)


# --- One answer time for every outcome ------------------------------------------------------

def equal_time(view):
    """Hold the answer of a subscribe route back until SUBSCRIBE_ANSWER_SECONDS have passed
    since the request began (counted after the commit, in ``_hold``), so how long it took does
    not tell a new address from a subscribed or an erased one. A slow path past the floor
    would still show: keep the floor above the slowest outcome (about 20 ms measured)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        g.answer_not_before = time.monotonic() + current_app.config["SUBSCRIBE_ANSWER_SECONDS"]
        return view(*args, **kwargs)

    return wrapped


def _hold(response: Response) -> Response:
    deadline = g.get("answer_not_before")
    if deadline is not None:
        wait = deadline - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    return response


def init_app(app: Flask) -> None:
    app.after_request(_hold)

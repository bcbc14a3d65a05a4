"""The defences every subscribe route shares (form, JSON embed, API): one budget per IP and
one per mailbox, counted together across the routes, and one answer time for every outcome."""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps

from flask import Flask, Response, current_app, g, make_response, request
from flask_babel import gettext
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from limits.storage import RedisClusterStorage, RedisStorage

from ..errors import InvalidInput
from ..extensions import limiter
from ..subscribers import mailbox, normalize_email
from .errors import error_response


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


# One request's counters in ONE round trip to Redis (Flask-Limiter took five a sign-up: an
# EVALSHA per decorator, then a GET and a TTL for the X-RateLimit headers; with the wake-up of
# the notices sender, 30 % of a web worker's CPU a sign-up in cProfile on CPU time).
# KEYS: a fixed-window counter per limit, in the order they are checked; ARGV: (amount,
# seconds) per key. Each counter is counted as limits' fixed window counts (INCR, EXPIRE when
# new); the first one past its amount stops the rest, as Flask-Limiter stops at the first
# breach. Returns {index of the breached limit or 0, index of the limit with least left, its
# count, its seconds left}: what the answer's headers say.
_HIT = """
local least, least_left, least_count = 1, nil, 0
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[2 * i - 1])
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
  if count > amount then return {i, i, count, redis.call('TTL', key)} end
  if least_left == nil or amount - count < least_left then
    least, least_left, least_count = i, amount - count, count
  end
end
return {0, least, least_count, redis.call('TTL', KEYS[least])}
"""


@dataclass(frozen=True)
class Budget:
    """One budget of the subscribe routes: its limits (``"10 per minute;50 per day"``, from a
    config key) counted under ``scope`` per the key ``key_func`` returns."""

    config_key: str
    scope: str
    key_func: Callable[[], str]


@dataclass
class Count:
    """The outcome of counting a request: whether a limit was exceeded, and the limit with the
    least left (the one exceeded, if any) with its count and seconds to its reset."""

    breached: bool
    limit: RateLimitItem | None = None
    count: int = 0
    reset_in: int = 0


def ip_budget(key_func: Callable[[], str] | None = None) -> Budget:
    return Budget("SUBSCRIBE_RATE_LIMIT", "subscribe-ip", key_func or get_remote_address)


def address_budget(email: Callable[[], object]) -> Budget:
    """``email`` returns the posted address (read before the view runs)."""
    return Budget("SUBSCRIBE_ADDRESS_RATE_LIMIT", "subscribe-address", lambda: address_key(email()))


def _limits(budgets: tuple[Budget, ...]) -> list[tuple[RateLimitItem, list[str]]]:
    """(limit, identifiers) in the order they are counted: budget by budget, a budget's limits
    shortest window first (as Flask-Limiter orders them); a budget whose key is empty is
    skipped (as Flask-Limiter does)."""
    config = current_app.config
    prefix = [config["RATELIMIT_KEY_PREFIX"]] if config.get("RATELIMIT_KEY_PREFIX") else []
    found = []
    for budget in budgets:
        key = budget.key_func()
        if not key:
            continue
        for item in _parsed(config[budget.config_key]):
            found.append((item, [*prefix, key, budget.scope]))
    return found


@lru_cache(maxsize=32)
def _parsed(limits_: str) -> list[RateLimitItem]:
    """``"10 per minute;50 per day"`` as limits, shortest window first."""
    return sorted(parse_many(limits_))


def _script(storage: RedisStorage):
    """The counting script, registered once with the limiter's Redis client."""
    cached = getattr(storage, "_mailer_subscribe_hit", None)
    if cached is None:
        cached = storage.get_connection().register_script(_HIT.encode())
        storage._mailer_subscribe_hit = cached  # type: ignore[attr-defined]
    return cached


def count(budgets: tuple[Budget, ...]) -> Count:
    """Count this request against ``budgets`` in the limiter's storage (Redis: one script
    call; any other storage through its fixed-window strategy). Raises the storage's errors."""
    limits_ = _limits(budgets)
    if not limits_:
        return Count(False)
    storage = limiter.storage
    if (isinstance(storage, RedisStorage) and not isinstance(storage, RedisClusterStorage)
            and current_app.config.get("RATELIMIT_STRATEGY", "fixed-window") == "fixed-window"):
        keys = [storage.prefixed_key(item.key_for(*ids)) for item, ids in limits_]
        arguments = [value for item, _ids in limits_ for value in (item.amount, item.get_expiry())]
        breached, least, counted, seconds = _script(storage)(keys=keys, args=arguments)
        return Count(bool(breached), limits_[int(least) - 1][0], int(counted), max(int(seconds), 0))
    strategy = limiter.limiter
    least_stats = None
    for item, ids in limits_:
        ok = strategy.hit(item, *ids)
        stats = strategy.get_window_stats(item, *ids)
        if not ok:
            return Count(True, item, item.amount + 1, max(int(stats.reset_time - time.time()), 0))
        if least_stats is None or stats.remaining < least_stats[1].remaining:
            least_stats = (item, stats)
    assert least_stats is not None
    item, stats = least_stats
    return Count(False, item, item.amount - stats.remaining, max(int(stats.reset_time - time.time()), 0))


def _headers(response: Response, counted: Count) -> Response:
    """The X-RateLimit headers (RATELIMIT_HEADERS_ENABLED) from the count itself, no extra
    round trip; Retry-After on a refusal."""
    if counted.limit is None or not current_app.config.get("RATELIMIT_HEADERS_ENABLED"):
        return response
    response.headers["X-RateLimit-Limit"] = str(counted.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(max(counted.limit.amount - counted.count, 0))
    response.headers["X-RateLimit-Reset"] = str(int(time.time()) + counted.reset_in)
    if counted.breached:
        response.headers["Retry-After"] = str(counted.reset_in)
    return response


def limited(*budgets: Budget, on_breach: Callable[[], Response] | None = None):
    """Count each POST to the view against ``budgets`` (in order: the first exceeded stops the
    count, so a request refused for its IP does not use up the mailbox's budget) and answer
    429 past one: ``on_breach()``'s answer, else the error page. Other methods pass."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if request.method != "POST" or not current_app.config.get("RATELIMIT_ENABLED", True):
                return view(*args, **kwargs)
            counted = count(budgets)
            if counted.breached:
                refused = on_breach() if on_breach is not None else None
                if refused is None:
                    refused = make_response(error_response(
                        429, gettext("Too many attempts. Please wait a moment and try again.")))
                return _headers(refused, counted)
            return _headers(make_response(view(*args, **kwargs)), counted)

        return wrapped

    return decorator


def per_ip(key_func: Callable[[], str] | None = None, on_breach: Callable[[], Response] | None = None):
    return limited(ip_budget(key_func), on_breach=on_breach)


def per_address(email: Callable[[], object], on_breach: Callable[[], Response] | None = None):
    """``email`` returns the posted address (read before the view runs)."""
    return limited(address_budget(email), on_breach=on_breach)


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

"""The global sending rate and the cap on concurrent SMTP connections.

Both hold across every worker process. With ``REDIS_URL`` they live in Redis under
``REDIS_PREFIX``: the rate is a token bucket per second and per hour updated by one Lua
script (atomic, clocked by Redis's own TIME), the connection cap a sorted set of leases
that expire if their holder dies. Without Redis (the embedded default, one host with
several worker processes) the same state is a small JSON file in the instance folder,
read and written under an exclusive ``flock``. Celery's own ``rate_limit`` is per worker,
so it is not used.

Senders take tokens a few at a time as they go (``take``) and give back what they did not
use (``give_back``), so a limit counts messages sent, not messages planned.
"""

import fcntl
import json
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import redis
from flask import current_app

# KEYS: one bucket per limit. ARGV: wanted (negative: tokens given back), then
# (capacity, tokens per second) per key. Grants min(wanted, whole tokens in every bucket)
# and takes them from all buckets; returns {granted, milliseconds until the next token}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local want = tonumber(ARGV[1])
local grant = want
local level = {}
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or cap
  local ts = tonumber(state[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  level[i] = tokens
  if want > 0 then grant = math.min(grant, math.floor(tokens)) end
end
local wait = 0
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local tokens = math.min(cap, level[i] - grant)
  redis.call('HSET', key, 'tokens', tokens, 'ts', now)
  redis.call('EXPIRE', key, math.ceil(cap / rate) + 60)
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / rate) end
end
return {grant, math.ceil(wait * 1000)}
"""

# KEYS[1] the lease set; ARGV: holder, limit, lease seconds. 1 if a slot is held.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 60)
  return 1
end
return 0
"""

_clients: dict[str, redis.Redis] = {}


def redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per URL and process."""
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                             retry_on_timeout=True)
    return _clients[url]


@contextmanager
def _locked_state(path: Path):
    """The JSON state in ``path``, read and written back under an exclusive lock shared by
    every process of this host."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            text = handle.read()
            state = json.loads(text) if text.strip() else {}
            yield state
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(state))
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _limits(config) -> list[tuple[str, float, float]]:
    """(name, capacity, tokens per second) for each configured limit."""
    limits = []
    per_second = float(config.get("RATE_PER_SECOND") or 0)
    per_hour = int(config.get("RATE_PER_HOUR") or 0)
    if per_second > 0:
        limits.append(("second", max(1.0, per_second), per_second))
    if per_hour > 0:
        limits.append(("hour", float(per_hour), per_hour / 3600.0))
    return limits


class RateLimiter:
    """``take(n)`` waits until it may send some of n messages and returns how many."""

    def __init__(self, config=None):
        config = config or current_app.config
        self.limits = _limits(config)
        self.prefix = f"{config['REDIS_PREFIX']}:send-rate"
        self.redis = redis_client(config["REDIS_URL"]) if config.get("REDIS_URL") else None
        self._script = self.redis.register_script(_TAKE) if self.redis else None
        self._file = Path(config["INSTANCE_DIR"]) / "limits" / f"{config['REDIS_PREFIX']}-send-rate.json"

    @property
    def unlimited(self) -> bool:
        return not self.limits

    def take(self, wanted: int, max_wait: float | None = None) -> int:
        """Up to ``wanted`` tokens, waiting for at least one; 0 if none came within
        ``max_wait`` seconds (None: wait as long as it takes)."""
        if not self.limits or wanted <= 0:
            return wanted
        deadline = None if max_wait is None else time.monotonic() + max_wait
        while True:
            granted, wait_ms = self._try(wanted)
            if granted:
                return granted
            if deadline is not None and time.monotonic() + wait_ms / 1000 > deadline:
                return 0
            time.sleep(min(1.0, max(0.005, wait_ms / 1000)))

    def wait_seconds(self) -> float:
        """How long until one token is free (0 if one is now), without taking any."""
        if not self.limits:
            return 0.0
        _granted, wait_ms = self._try(0)
        return wait_ms / 1000

    def give_back(self, unused: int) -> None:
        """Return tokens taken but not used (never above a bucket's capacity)."""
        if self.limits and unused > 0:
            self._try(-unused)

    def _try(self, wanted: int) -> tuple[int, int]:
        if self._script is not None:
            keys = [f"{self.prefix}:{name}" for name, _, _ in self.limits]
            args: list = [wanted]
            for _, capacity, rate in self.limits:
                args += [capacity, rate]
            granted, wait_ms = self._script(keys=keys, args=args)
            return int(granted), int(wait_ms)
        return self._try_file(wanted)

    def _try_file(self, wanted: int) -> tuple[int, int]:
        now = time.time()
        with _locked_state(self._file) as buckets:
            levels = []
            for name, capacity, rate in self.limits:
                tokens, stamp = buckets.get(name, [capacity, now])
                levels.append(min(capacity, tokens + max(0.0, now - stamp) * rate))
            grant = min([wanted, *(int(level) for level in levels)]) if wanted > 0 else wanted
            wait = 0.0
            for (name, capacity, rate), level in zip(self.limits, levels, strict=True):
                left = min(capacity, level - grant)
                buckets[name] = [left, now]
                if left < 1:
                    wait = max(wait, (1 - left) / rate)
        return grant, int(wait * 1000)


class ConnectionSlot:
    """One of ``SMTP_MAX_CONNECTIONS`` slots, held while a sender has a connection open.
    A slot's lease expires after ``lease`` seconds unless ``refresh`` is called; a holder
    whose ``refresh`` answers False has lost it and must close its connection."""

    def __init__(self, config=None, lease: float = 300.0):
        config = config or current_app.config
        self.limit = int(config.get("SMTP_MAX_CONNECTIONS") or 0)
        self.key = f"{config['REDIS_PREFIX']}:smtp-slots"
        self.redis = redis_client(config["REDIS_URL"]) if config.get("REDIS_URL") else None
        self._file = Path(config["INSTANCE_DIR"]) / "limits" / f"{config['REDIS_PREFIX']}-smtp-slots.json"
        self.lease = lease
        self.holder = uuid.uuid4().hex
        self.held = False

    def acquire(self, timeout: float = 60.0) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds; False if none came free."""
        deadline = time.monotonic() + timeout
        while not self.refresh():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def refresh(self) -> bool:
        """Take or keep the slot for another lease; False when no slot is free (or it
        was lost: the lease ran out and another sender took it)."""
        if self.limit <= 0:
            self.held = True
        elif self.redis is not None:
            self.held = bool(self.redis.eval(_ACQUIRE, 1, self.key, self.holder, self.limit, self.lease))
        else:
            now = time.time()
            with _locked_state(self._file) as slots:
                for holder in [h for h, expires in slots.items() if expires < now]:
                    del slots[holder]
                self.held = self.holder in slots or len(slots) < self.limit
                if self.held:
                    slots[self.holder] = now + self.lease
        return self.held

    def release(self) -> None:
        if not self.held or self.limit <= 0:
            self.held = False
            return
        self.held = False
        try:
            if self.redis is not None:
                self.redis.zrem(self.key, self.holder)
            else:
                with _locked_state(self._file) as slots:
                    slots.pop(self.holder, None)
        except (redis.RedisError, OSError):
            pass  # the lease expires by itself

"""The global sending rate and the cap on concurrent SMTP connections.

With ``REDIS_URL`` set both live in Redis under ``REDIS_PREFIX`` and hold across every
worker process: the rate is a token bucket per second and per hour updated by one Lua
script (atomic, clocked by Redis's own TIME), the connection cap a sorted set of leases
that expire if their holder dies. Without Redis (the embedded default: one worker) they
are in-process. Celery's own ``rate_limit`` is per worker, so it is not used.
"""

import threading
import time
import uuid

import redis
from flask import current_app

# KEYS: one bucket per limit. ARGV: wanted, then (capacity, tokens per second) per key.
# Grants min(wanted, whole tokens in every bucket) and takes them from all buckets;
# returns {granted, milliseconds until the next token}.
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
  grant = math.min(grant, math.floor(tokens))
end
local wait = 0
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local tokens = level[i] - grant
  redis.call('HSET', key, 'tokens', tokens, 'ts', now)
  redis.call('EXPIRE', key, math.ceil(cap / rate) + 60)
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / rate) end
end
return {grant, math.ceil(wait * 1000)}
"""

# KEYS[1] the lease set; ARGV: holder, limit, lease seconds. 1 if a slot was taken.
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
_local_lock = threading.Lock()
_local_buckets: dict[str, list[float]] = {}
_local_slots: dict[str, set[str]] = {}


def _client(url: str) -> redis.Redis:
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                             retry_on_timeout=True)
    return _clients[url]


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
        self.redis = _client(config["REDIS_URL"]) if config.get("REDIS_URL") else None
        self._script = self.redis.register_script(_TAKE) if self.redis else None

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
            if deadline is not None and time.monotonic() >= deadline:
                return 0
            time.sleep(min(1.0, max(0.005, wait_ms / 1000)))

    def _try(self, wanted: int) -> tuple[int, int]:
        if self.redis is not None:
            keys = [f"{self.prefix}:{name}" for name, _, _ in self.limits]
            args = [wanted]
            for _, capacity, rate in self.limits:
                args += [capacity, rate]
            granted, wait_ms = self._script(keys=keys, args=args)
            return int(granted), int(wait_ms)
        return self._try_local(wanted)

    def _try_local(self, wanted: int) -> tuple[int, int]:
        now = time.monotonic()
        with _local_lock:
            levels = []
            for name, capacity, rate in self.limits:
                tokens, stamp = _local_buckets.get(f"{self.prefix}:{name}", [capacity, now])
                levels.append(min(capacity, tokens + (now - stamp) * rate))
            grant = min([wanted, *(int(level) for level in levels)])
            wait = 0.0
            for (name, _, rate), level in zip(self.limits, levels):
                left = level - grant
                _local_buckets[f"{self.prefix}:{name}"] = [left, now]
                if left < 1:
                    wait = max(wait, (1 - left) / rate)
            return grant, int(wait * 1000)


class ConnectionSlot:
    """One of ``SMTP_MAX_CONNECTIONS`` slots, held while a batch has a connection open.
    A slot's lease expires after ``lease`` seconds unless ``refresh`` is called."""

    def __init__(self, config=None, lease: float = 300.0):
        config = config or current_app.config
        self.limit = int(config.get("SMTP_MAX_CONNECTIONS") or 0)
        self.key = f"{config['REDIS_PREFIX']}:smtp-slots"
        self.redis = _client(config["REDIS_URL"]) if config.get("REDIS_URL") else None
        self.lease = lease
        self.holder = uuid.uuid4().hex
        self.held = False

    def acquire(self, timeout: float = 60.0) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds; False if none came free."""
        if self.limit <= 0:
            self.held = True
            return True
        deadline = time.monotonic() + timeout
        while not self.refresh():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def refresh(self) -> bool:
        if self.limit <= 0:
            return True
        if self.redis is not None:
            self.held = bool(self.redis.eval(_ACQUIRE, 1, self.key, self.holder, self.limit, self.lease))
            return self.held
        with _local_lock:
            slots = _local_slots.setdefault(self.key, set())
            if self.holder in slots or len(slots) < self.limit:
                slots.add(self.holder)
                self.held = True
        return self.held

    def release(self) -> None:
        if not self.held or self.limit <= 0:
            return
        if self.redis is not None:
            try:
                self.redis.zrem(self.key, self.holder)
            except redis.RedisError:
                pass  # the lease expires by itself
        else:
            with _local_lock:
                _local_slots.get(self.key, set()).discard(self.holder)
        self.held = False

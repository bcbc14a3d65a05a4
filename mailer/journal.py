"""The send journal: which messages the mail server accepted, written within microseconds
of its answer, before the database hears of it in bulk.

A sender records outcomes in the database a few times a second (one transaction for
hundreds of messages). If it dies in between, whoever takes over its work reads the
journal first: messages marked accepted are recorded as sent, not sent again; messages
marked in flight (their data was on its way when the sender died) are sent again and
counted as possibly delivered twice. So a killed worker re-sends only what was in flight.

Messages are marked in flight a few at a time, ``LEAD`` messages ahead of need, and the
acceptances heard meanwhile ride on the same write, which the sender does not wait for:
before a message's data goes out, only the write that marked it, sent a group earlier,
must have been acknowledged (by then it long has been). So the journal costs a fraction of
a write per message and no round trip on the sending path (``mailer.dispatch.Watch``).

Both keep the same append-only log of ``<key> <mark>`` lines, an acceptance winning over an
in-flight mark: with ``REDIS_URL`` a Redis string per unit of work, grown by ``APPEND`` and
shared by every worker host (one pipelined connection per sender, raw commands through
redis-py's connection); without Redis (the embedded, single-host default) a file, where a
``write`` that returned survives the death of its process. An ``APPEND`` costs Redis about
a tenth of the ``HSET`` of as many fields that an earlier version used (a hash entry per
message); a journal left as a hash by that version is still read.
"""

import os
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import redis

LEAD = 4  # messages marked in flight ahead of the one being sent
ACCEPTED, IN_FLIGHT = "a", "f"
TTL = 7 * 24 * 3600  # a journal outlives any lease: it is read when the work is taken over


class JournalDown(Exception):
    """The journal cannot be written: stop sending (nothing more can be vouched for)."""


class Journal(Protocol):
    def mark(self, accepted: Iterable[int] = (), in_flight: Iterable[int] = ()) -> int: ...

    def settle(self, through: int) -> None: ...

    def read(self) -> dict[int, str]: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


def parse(text: str) -> dict[int, str]:
    """The marks of a journal's log: message key -> "a" (accepted) or "f" (in flight)."""
    marks: dict[int, str] = {}
    for line in text.splitlines():
        key, _, mark = line.partition(" ")
        if key.isdigit() and mark in (ACCEPTED, IN_FLIGHT) and marks.get(int(key)) != ACCEPTED:
            marks[int(key)] = mark
    return marks


def _lines(accepted: Iterable[int], in_flight: Iterable[int]) -> bytes:
    return b"".join([b"%d f\n" % key for key in in_flight] + [b"%d a\n" % key for key in accepted])


class RedisJournal:
    """One Redis string ``key``: the log, one ``<key> <mark>`` line a mark."""

    def __init__(self, client: redis.Redis, key: str):
        self.key = key
        self._key = key.encode()
        self._pool = client.connection_pool
        try:
            self._conn = self._pool.get_connection()
        except redis.RedisError as exc:
            raise JournalDown(str(exc)) from exc
        self._written = 0  # writes issued
        self._acked = 0  # writes acknowledged
        self._unacked: deque[bytes] = deque()  # packed, kept until acknowledged

    def mark(self, accepted: Iterable[int] = (), in_flight: Iterable[int] = ()) -> int:
        """Write the marks without waiting; returns the write's number for ``settle``."""
        lines = _lines(accepted, in_flight)
        if not lines:
            return self._written
        first = not self._written
        self._send(b"*3\r\n$6\r\nAPPEND\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                   % (len(self._key), self._key, len(lines), lines))
        number = self._written
        if first:
            self._send(b"*3\r\n$6\r\nEXPIRE\r\n$%d\r\n%b\r\n$%d\r\n%d\r\n"
                       % (len(self._key), self._key, len(str(TTL)), TTL))
        return number

    def settle(self, through: int) -> None:
        """Wait until write number ``through`` (and every one before) is acknowledged."""
        while self._acked < through:
            try:
                self._conn.read_response()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._reconnect(exc)
                continue
            except redis.RedisError as exc:  # the server refused the write (out of memory...)
                raise JournalDown(str(exc)) from exc
            self._acked += 1
            self._unacked.popleft()

    def read(self) -> dict[int, str]:
        self.settle(self._written)
        try:
            self._conn.send_command("GET", self.key)
            try:
                raw = self._conn.read_response()
            except redis.ResponseError as exc:  # WRONGTYPE: a hash of an earlier version
                if "WRONGTYPE" not in str(exc):
                    raise
                self._conn.send_command("HGETALL", self.key)
                pairs = self._conn.read_response()
                items = pairs.items() if isinstance(pairs, dict) else zip(pairs[0::2], pairs[1::2], strict=True)
                raw = b"".join(b"%b %b\n" % (key, value) for key, value in items)
        except redis.RedisError as exc:
            raise JournalDown(str(exc)) from exc
        return parse(raw.decode("ascii")) if raw else {}

    def clear(self) -> None:
        self.settle(self._written)
        try:
            self._conn.send_command("DEL", self.key)
            self._conn.read_response()
        except redis.RedisError as exc:
            raise JournalDown(str(exc)) from exc

    def close(self) -> None:
        try:
            self.settle(self._written)
        except Exception:
            self._conn.disconnect()
        self._pool.release(self._conn)

    def _send(self, data: bytes) -> None:
        self._unacked.append(data)
        self._written += 1
        try:
            self._conn.send_packed_command([data], check_health=False)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._reconnect(exc)

    def _reconnect(self, exc: Exception) -> None:
        """Once: a new connection, and every write not yet acknowledged again (an APPEND
        sent twice repeats its lines, which ``parse`` reads as once; EXPIRE is idempotent).
        Raises JournalDown when that fails too."""
        try:
            self._conn.disconnect()
            self._conn.connect()
            for data in self._unacked:
                self._conn.send_packed_command([data], check_health=False)
        except (redis.ConnectionError, redis.TimeoutError) as again:
            raise JournalDown(str(again)) from exc


class FileJournal:
    """An append-only file of ``<key> <mark>`` lines (one host, no Redis)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._written = 0

    def mark(self, accepted: Iterable[int] = (), in_flight: Iterable[int] = ()) -> int:
        lines = _lines(accepted, in_flight)
        if lines:
            try:
                os.write(self._fd, lines)
            except OSError as exc:
                raise JournalDown(str(exc)) from exc
            self._written += 1
        return self._written

    def settle(self, through: int) -> None:
        pass  # a write that returned is in the kernel: it survives this process

    def read(self) -> dict[int, str]:
        try:
            return parse(self.path.read_text(encoding="ascii"))
        except FileNotFoundError:
            return {}

    def clear(self) -> None:
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        empty = os.fstat(self._fd).st_size == 0
        os.close(self._fd)
        if empty:  # nothing to recover: no file left behind
            self.path.unlink(missing_ok=True)


def open_journal(config, name: str) -> Journal:
    """The journal of one unit of work (``name``: e.g. ``c12-b4`` for campaign 12's batch
    4): in Redis when ``REDIS_URL`` is set, else a file under the instance folder."""
    if config.get("REDIS_URL"):
        from .ratelimit import redis_client

        return RedisJournal(redis_client(config["REDIS_URL"]), f"{config['REDIS_PREFIX']}:journal:{name}")
    return FileJournal(Path(config["INSTANCE_DIR"]) / "journal" / name)

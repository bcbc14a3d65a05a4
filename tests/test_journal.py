"""The send journal on both backends (a Redis string grown by APPEND, a file): marks written
without waiting, read back with an acceptance winning over an in-flight mark, cleared; a
dropped Redis connection replays what was not acknowledged; a journal left as a hash by an
earlier version is still read."""

import uuid

import pytest
import redis

from mailer.journal import FileJournal, JournalDown, RedisJournal, parse
from tests.conftest import REDIS_URL


@pytest.fixture(params=["redis", "file"])
def journal(request, tmp_path):
    if request.param == "file":
        opened = FileJournal(tmp_path / "journal" / "c1-b0")
    else:
        opened = RedisJournal(redis.Redis.from_url(REDIS_URL), f"test-journal:{uuid.uuid4().hex}")
    yield opened
    opened.clear()
    opened.close()


def test_marks_read_back_with_acceptance_winning(journal):
    first = journal.mark(in_flight=[11, 12, 13, 14])
    second = journal.mark(accepted=[11, 12], in_flight=[15])
    journal.settle(second)
    assert second >= first
    journal.mark(in_flight=[11])  # a late in-flight mark never undoes an acceptance
    assert journal.read() == {11: "a", 12: "a", 13: "f", 14: "f", 15: "f"}
    journal.clear()
    assert journal.read() == {}


def test_an_empty_mark_writes_nothing(journal):
    assert journal.mark() == journal.mark(accepted=[], in_flight=[])
    assert journal.read() == {}


def test_redis_journal_expires_and_replays_unacknowledged_writes_after_a_dropped_connection():
    client = redis.Redis.from_url(REDIS_URL)
    key = f"test-journal:{uuid.uuid4().hex}"
    journal = RedisJournal(client, key)
    try:
        journal.settle(journal.mark(in_flight=[1, 2]))
        assert 0 < client.ttl(key) <= 7 * 24 * 3600
        journal._conn.disconnect()  # the connection drops with a write not yet acknowledged
        journal._unacked.append(b"*3\r\n$6\r\nAPPEND\r\n$%d\r\n%b\r\n$4\r\n1 a\n\r\n" % (len(key), key.encode()))
        journal._written += 1
        journal.settle(journal.mark(accepted=[2]))
        assert journal.read() == {1: "a", 2: "a"}
    finally:
        journal.clear()
        journal.close()


def test_redis_journal_reads_a_hash_left_by_an_earlier_version():
    client = redis.Redis.from_url(REDIS_URL)
    key = f"test-journal:{uuid.uuid4().hex}"
    client.hset(key, mapping={"7": "a", "8": "f"})
    journal = RedisJournal(client, key)
    try:
        assert journal.read() == {7: "a", 8: "f"}
    finally:
        journal.clear()
        journal.close()


def test_redis_journal_down_is_reported():
    with pytest.raises(JournalDown):
        RedisJournal(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5), "nowhere")


def test_parse_ignores_torn_and_foreign_lines():
    assert parse("5 f\n5 a\n6 f\n7 x\nabc a\n8") == {5: "a", 6: "f"}

"""``python -m bench.bookkeeping``: what the engine's bookkeeping costs a message, in CPU,
without SMTP. The end-to-end bench says how fast the engine sends; this says where its CPU
goes beside the messages, on a measure that drifts far less than a rate.

In one process, on a fresh PostgreSQL database and the real Redis: N subscribers, a launched
and snapshotted campaign; then (1) its N messages built only, as the yardsticks build them,
and (2) ``sending.send`` run here (leases, rows, ``dispatch`` with its journal and recorder
thread, releases) over a transport that accepts every message as it is handed over. Both
print this process's CPU a message (every thread, ``os.times``); (2) also PostgreSQL's (the
database's backends) and Redis's (the whole server: run it on an otherwise idle Redis).
``--parts`` times the engine's steps with ``time.thread_time_ns`` (each wrapper adds a little).

Options: ``--n N`` (default 50000), ``--parts``.
"""

import argparse
import collections
import functools
import os
import time
import uuid

from mailer.mail.transport import EVERYTHING, Result

from .pg import drop_database, recreate_database


class Accepting:
    """A transport whose server accepts each message at once (the observer hears of each)."""

    def send(self, messages, observer=EVERYTHING) -> list[Result]:
        results = []
        for message in messages:
            if not observer.begin(message):
                break
            results.append(Result(message, True))
            observer.end(results[-1])
        return results

    def close(self) -> None:
        pass


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _servers(database: str) -> collections.Counter:
    from . import cpu

    seconds: collections.Counter = collections.Counter()
    for _, _, command, spent in cpu.processes():
        if command.startswith("postgres") and database in command:
            seconds["PostgreSQL"] += spent
        elif command.startswith("redis-server"):
            seconds["Redis"] += spent
    return seconds


def _timed(spent: collections.Counter, calls: collections.Counter):
    """Wrap the engine's steps so that each adds its thread's CPU time to ``spent``."""
    from mailer import campaign_mail, deliveries, dispatch, journal, ratelimit

    steps = [(deliveries, "lease_next_batch"), (deliveries, "open_rows"), (deliveries, "release_batch"),
             (deliveries.BatchStore, "flush"), (dispatch.Watch, "begin"), (dispatch.Watch, "end"),
             (dispatch.Recorder, "add"), (journal.RedisJournal, "mark"), (journal.RedisJournal, "settle"),
             (ratelimit.ConnectionSlot, "refresh"), (campaign_mail.CampaignMail, "message")]
    for owner, name in steps:
        step = getattr(owner, name)
        label = f"{getattr(owner, '__name__', '')}.{name}".split("mailer.")[-1]

        def timed(*args, _step=step, _label=label, **kwargs):
            started = time.thread_time_ns()
            try:
                return _step(*args, **kwargs)
            finally:
                spent[_label] += time.thread_time_ns() - started
                calls[_label] += 1

        setattr(owner, name, functools.wraps(step)(timed))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bookkeeping", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="messages (default 50000)")
    parser.add_argument("--parts", action="store_true", help="time the engine's steps too")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or \
        "postgresql://postgres@127.0.0.1:5432/postgres"
    database = f"mailer_bench_{run_id}"
    os.environ.update({
        "MAILER_ENV": "test", "DATABASE_URL": recreate_database(server, database),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14",
        "REDIS_PREFIX": f"mailer-bench-{run_id}", "CELERY_QUEUE": f"mailer-bench-{run_id}",
        "SMTP_URL": "smtp://127.0.0.1:9", "BASE_URL": "https://wydarzenia.miasto.example.pl",
        "MAIL_FROM": "wydarzenia@miasto.example.pl", "MAIL_DOMAIN": "miasto.example.pl",
        "RATE_PER_SECOND": "0", "RATE_PER_HOUR": "0"})
    try:
        measure(args, database)
    finally:
        drop_database(server, database)


def measure(args, database: str) -> None:
    from mailer import create_app, sending
    from mailer.extensions import db
    from mailer.models import Campaign
    from worker import freeze_heap

    from . import seed
    from .baseline import message_factory

    app = create_app("test")
    with app.app_context():
        db.create_all()
        seed.seed_subscribers(args.n)
        campaign_id = seed.make_campaign(seed.make_list("Mieszkańcy", "mieszkancy", args.n), "Księgowość")
        sending.launch(db.session, campaign_id)
        db.session.commit()
        sending.start(db.session, campaign_id)
        freeze_heap()  # as a worker does once it is up
        build = message_factory(campaign_id)
        started = _cpu()
        for i in range(1, args.n + 1):
            build(i)
        built = (_cpu() - started) / args.n * 1e6
        print(f"building the messages only: {built:.1f} us of CPU a message")

        spent: collections.Counter = collections.Counter()
        calls: collections.Counter = collections.Counter()
        if args.parts:
            _timed(spent, calls)
        sending.from_config = lambda config: Accepting()  # the engine's only way to a transport
        servers, started = _servers(database), _cpu()
        sending.send(db.session, campaign_id)
        engine = (_cpu() - started) / args.n * 1e6
        servers = _servers(database) - servers
        db.session.expire_all()
        sent = db.session.get(Campaign, campaign_id).sent_count
        others = ", ".join(f"{name} {seconds / args.n * 1e6:.1f}" for name, seconds in sorted(servers.items()))
        print(f"the engine's path, building included: {engine:.1f} us of CPU a message in this process "
              f"({engine - built:.1f} more than building), {others} us ({sent:,} of {args.n:,} recorded sent)")
        for label, nanoseconds in spent.most_common():
            print(f"  {label:32s} {nanoseconds / args.n / 1000:6.2f} us a message ({calls[label]:,} calls)")


if __name__ == "__main__":
    main()

"""Public sign-ups under load: gunicorn serving /subscribe.json, wrk (Debian's package) on
loopback for a bounded time at 32 connections, each request a new address; then every
accepted sign-up is checked: exactly one subscriber row, one subscription and consent record
per public list, one confirmation notice, sent (accepted by smtp-sink) once a worker drained
them. Limits raised for the run (and printed): the per-IP and per-address sign-up limits
(every request comes from 127.0.0.1) and PENDING_MAX_PER_HOUR (else confirmations past 1,000
would wait an hour, which is the cap doing its job, not a measurement)."""

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATE = 500  # accepted sign-ups per second at 32 connections
TARGET_P99_MS = 100
RAISED = {"SUBSCRIBE_RATE_LIMIT": "1000000 per minute", "SUBSCRIBE_ADDRESS_RATE_LIMIT": "100 per hour",
          "PENDING_MAX_PER_HOUR": "100000000"}
LUA = """
-- each thread's own number (a global: thread:set writes globals of the thread's state)
local counter = 0
local threads = 0
tid = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
request = function()
  counter = counter + 1
  local body = string.format('{"email":"%s-%d-%d@load.example.org","consent":true,"name":"Łukasz Żółkiewski"}',
                             "RUN", tid, counter)
  return wrk.format("POST", "/subscribe.json", {["Content-Type"]="application/json",
                                                ["Origin"]="https://www.miasto.example.pl"}, body)
end
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ms(out: str, percentile: str) -> float:
    """A latency percentile of wrk's --latency table, in milliseconds (inf when absent)."""
    found = re.search(percentile + r"%\s+([\d.]+)(us|ms|s|m)\b", out)
    if found is None:
        return float("inf")
    value, unit = float(found.group(1)), found.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


class Roles:
    """CPU seconds (user + system, from /proc) of each process taking part in a run, by role:
    ``web`` the gunicorn workers, ``worker`` the Celery worker sending the confirmations,
    ``postgres`` the backends of the bench database (and its autovacuum), ``redis`` the
    server (shared with whatever else uses it on the machine), ``sink`` smtp-sink. ``wrk`` is
    added by the caller (its own rusage). Sampled while processes live (a backend that exits
    keeps what it used until last seen)."""

    def __init__(self, master: int, workers: list[int], database: str, sink: str) -> None:
        self.tests = {
            "web": lambda pid, ppid, cmd: ppid == master,
            "worker": lambda pid, ppid, cmd: pid in workers or ppid in workers,
            "postgres": lambda pid, ppid, cmd: cmd.startswith("postgres") and f" {database} " in f"{cmd} ",
            "redis": lambda pid, ppid, cmd: cmd.startswith("redis-server"),
            "sink": lambda pid, ppid, cmd: "smtp-sink" in cmd and sink in cmd,
        }
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}

    def sample(self) -> "Roles":
        from .cpu import processes

        initial = not self.first  # what runs at the first sample counts from there
        for pid, ppid, cmd, used in processes():
            for role, test in self.tests.items():
                if test(pid, ppid, cmd):
                    self.first.setdefault(pid, (role, used if initial else 0.0))
                    self.last[pid] = (role, used)
                    break
        return self

    def spent(self) -> dict[str, float]:
        spent = {role: 0.0 for role in self.tests}
        for pid, (role, used) in self.last.items():
            spent[role] += used - self.first[pid][1]
        return spent


def shape(env: dict, workers: int, threads: int) -> str:
    """How gunicorn.conf.py runs the web for ``env``: "2 gevent workers" on PostgreSQL."""
    import runpy

    kind = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["worker_kind"]({**os.environ, **env})
    return f"{workers} gevent workers" if kind == "gevent" else f"{workers} workers x {threads} threads"


def serve(env: dict, workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--keep-alive", "5", "--log-level", "warning"]
    # The production settings (gunicorn.conf.py: gevent on PostgreSQL), with this run's shape.
    env = {"WEB_WORKERS": str(workers), "WEB_THREADS": str(threads),
           "DATABASE_POOL_SIZE": str(threads), **env}  # a connection kept for each thread
    process = subprocess.Popen(command + ["mailer:create_app()"], cwd=ROOT, env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/embed", timeout=2).read()
            return process, port
        except OSError:
            time.sleep(0.2)
    sys.exit("gunicorn did not start")


def wrk(port: int, tag: str, seconds: int, connections: int) -> dict:
    binary = shutil.which("wrk")
    if binary is None:
        sys.exit("wrk is missing: apt-get install -y wrk (make bench-deps)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA.replace("RUN", tag))
    try:
        out = subprocess.run([binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
                              "-s", script.name, f"http://127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"requests": requests, "non2xx": int(bad.group(1)) if bad else 0,
            "accepted": requests - (int(bad.group(1)) if bad else 0), "seconds": seconds,
            "p50": _ms(out, "50"), "p99": _ms(out, "99"),
            "socket_errors": errors.group(1) if errors else "none"}


def _sessions(engine: sa.Engine) -> int:
    """Connections opened to the bench database so far (PostgreSQL's statistics; a new one
    forks a backend: a pool that opens them under load costs the server much)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        return conn.execute(sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
                            ).scalar() or 0


def _drained(engine: sa.Engine, seconds: float) -> None:
    """Wait until no notice is queued (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if not conn.execute(sa.text("SELECT count(*) FROM notices WHERE status = 'queued'")).scalar():
                return
            conn.commit()
            time.sleep(0.5)


def check(engine: sa.Engine, tag: str, accepted: int, public_lists: int, drain_seconds: float,
          sample=lambda: None) -> dict:
    """Every accepted sign-up of the run: one row, its consent records, one confirmation sent."""
    like = f"{tag}-%"
    deadline = time.monotonic() + drain_seconds
    started = time.monotonic()
    with engine.connect() as conn:
        while True:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM notices n JOIN subscribers s ON s.id = n.subscriber_id"
                " WHERE s.email LIKE :like AND n.status = 'queued'"), {"like": like}).scalar()
            conn.commit()
            if not waiting or time.monotonic() > deadline:
                break
            sample()
            time.sleep(1)
        drained = time.monotonic() - started
        row = conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM subscribers WHERE email LIKE :like),"
            " (SELECT count(*) FROM subscriptions JOIN subscribers s ON s.id = subscriber_id WHERE s.email LIKE :like),"
            " (SELECT count(*) FROM consent_records JOIN subscribers s ON s.id = subscriber_id"
            "   WHERE s.email LIKE :like AND action = 'subscribe'),"
            " (SELECT count(*) FROM notices JOIN subscribers s ON s.id = subscriber_id WHERE s.email LIKE :like),"
            " (SELECT count(*) FROM notices JOIN subscribers s ON s.id = subscriber_id"
            "   WHERE s.email LIKE :like AND status = 'sent' AND message_id <> ''),"
            " (SELECT count(*) FROM (SELECT subscriber_id FROM notices JOIN subscribers s ON s.id = subscriber_id"
            "   WHERE s.email LIKE :like GROUP BY subscriber_id HAVING count(*) <> 1) AS d),"
            # a sender's record of a batch stamps its notices with one sent_at
            " (SELECT count(DISTINCT sent_at) FROM notices JOIN subscribers s ON s.id = subscriber_id"
            "   WHERE s.email LIKE :like AND status = 'sent')"), {"like": like}).one()
    subscribers, subscriptions, consents, notices, sent, doubled, records = row
    # wrk counts the answers it read; requests in flight when it stopped may still have been
    # written (at most one per connection): rows >= accepted, and each row complete.
    ok = (accepted <= subscribers <= accepted + 64 and subscriptions == consents == subscribers * public_lists
          and notices == sent == subscribers and doubled == 0)
    return {"subscribers": subscribers, "subscriptions": subscriptions, "consents": consents,
            "notices": notices, "sent": sent, "doubled": doubled, "ok": ok, "drain_seconds": drained,
            "records": records}


def run(env: dict, engine: sa.Engine, label: str, *, workers: int, threads: int, seconds: int,
        connections: int = 32) -> dict:
    """One measured run at the audience the database holds now; prints and returns it."""
    from bench.__main__ import start_workers, stop

    # Production settings, as the public form runs (production refuses default keys).
    env = {**env, **RAISED, "MAILER_ENV": "production", "SECRET_KEY": "bench-" + uuid.uuid4().hex,
           "SUPPRESSION_KEY": "bench-suppression-" + uuid.uuid4().hex,
           "EMBED_ORIGINS": "https://www.miasto.example.pl"}  # the city's site, as the embed runs
    server, port = serve(env, workers, threads)
    senders = start_workers(env, 1)
    tag = "s" + uuid.uuid4().hex[:8]
    try:
        wrk(port, "warm" + tag, 6, 8)  # each worker's first requests load what they use
        _drained(engine, 120)  # and the warm-up's confirmations are sent before the clock runs
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average: ")[-1]
        roles = Roles(server.pid, [process.pid for process in senders], engine.url.database or "",
                      env.get("SMTP_URL", "").rsplit("//", 1)[-1]).sample()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        sessions = _sessions(engine)
        result = wrk(port, tag, seconds, connections)
        result["connections_opened"] = _sessions(engine) - sessions
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        roles.sample()
        with engine.connect() as conn:
            public = conn.execute(sa.text("SELECT count(*) FROM lists WHERE public")).scalar() or 0
        result |= check(engine, tag, result["accepted"], public, drain_seconds=300, sample=roles.sample)
        cpu = roles.sample().spent()
        cpu["wrk"] = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        rows = max(result["subscribers"], 1)
        result["cpu_ms"] = {role: used / rows * 1000 for role, used in cpu.items()}
        result["web_cpu_ms"] = result["cpu_ms"]["web"]
    finally:
        stop([server, *senders])
    rate = result["accepted"] / result["seconds"]
    met = rate >= TARGET_RATE and result["p99"] < TARGET_P99_MS
    print(f"  sign-ups, {label}: {rate:,.0f} accepted/s (target >= {TARGET_RATE}), p50 {result['p50']:.1f} ms, "
          f"p99 {result['p99']:.1f} ms (target < {TARGET_P99_MS}) at {connections} connections for {seconds} s; "
          f"{result['non2xx']} refused, socket errors: {result['socket_errors']}; load before: {load}; "
          f"{'MET' if met else 'NOT MET'}", flush=True)
    cpu = result["cpu_ms"]
    print(f"    CPU per sign-up: {sum(cpu.values()):.2f} ms = " + ", ".join(
        f"{role} {used:.2f}" for role, used in cpu.items()) + " ms (user+system time from the run's start to the"
          " last confirmation sent, / rows; redis is the machine's shared server; what the machine's load"
          " changes far less than the rate); database connections opened during the run: "
          f"{result['connections_opened']}", flush=True)
    print(f"    checked: {result['accepted']:,} answered 200, {result['subscribers']:,} rows (the rest were in "
          f"flight when wrk stopped), {result['consents']:,} consent records, "
          f"{result['notices']:,} confirmations of which {result['sent']:,} sent (recorded in "
          f"{result['records']:,} batches; drained in "
          f"{result['drain_seconds']:.0f} s), {result['doubled']} doubled: {'OK' if result['ok'] else 'MISMATCH'}",
          flush=True)
    return result | {"rate": rate, "met": met}


def main() -> None:
    """Only this section, on a bench database of its own: ``python -m bench.signups`` (at 0
    subscribers, then at ``--n``; the options of ``make bench``'s audience sections)."""
    import argparse

    from bench.__main__ import environment, services
    from bench.pg import drop_database, recreate_database

    from . import audience_seed

    parser = argparse.ArgumentParser(prog="python -m bench.signups", description=main.__doc__)
    parser.add_argument("--n", type=int, default=0, help="then again with N subscribers (default: only 0)")
    parser.add_argument("--seconds", type=int, default=15, help="wrk run length (default 15)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=32,
                        help="threads per worker where they are threads (SQLite; default 32)")
    args = parser.parse_args()
    run_id, server_url, db_name, sink_port, sink = services()
    database_url = recreate_database(server_url, db_name)
    env = environment(argparse.Namespace(workers=2), run_id, database_url, sink_port)
    os.environ.update(env)
    try:
        from mailer import create_app
        from mailer.extensions import db

        app = create_app("test", {"WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})
        print(f"sign-ups: gunicorn {shape(env, args.workers, args.threads)}; raised for the run: {RAISED}",
              flush=True)
        with app.app_context():
            db.create_all()
            db.session.add(audience_seed.MailingList(name="Wydarzenia w mieście", slug="wydarzenia", public=True))
            db.session.commit()
            run(env, db.engine, "0 subscribers", workers=args.workers, threads=args.threads, seconds=args.seconds)
            if args.n:
                db.session.execute(sa.text("DELETE FROM notices"))
                db.session.execute(sa.text("DELETE FROM subscribers"))
                db.session.execute(sa.text("DELETE FROM lists"))
                db.session.commit()
                audience_seed.seed(args.n)
                audience_seed.lists_and_rest(args.n)
                run(env, db.engine, f"{args.n:,} subscribers", workers=args.workers, threads=args.threads,
                    seconds=args.seconds)
            db.engine.dispose()
    finally:
        sink.terminate()
        drop_database(server_url, db_name)


if __name__ == "__main__":
    main()

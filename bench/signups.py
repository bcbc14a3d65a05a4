"""Public sign-ups under load: gunicorn serving /subscribe.json, wrk (Debian's package) on
loopback for a bounded time at 32 connections, each request a new address; then every
accepted sign-up is checked: exactly one subscriber row, one subscription and consent record
per public list, one confirmation notice, sent (accepted by smtp-sink) once a worker drained
them. Limits raised for the run (and printed): the per-IP and per-address sign-up limits
(every request comes from 127.0.0.1) and PENDING_MAX_PER_HOUR (else confirmations past 1,000
would wait an hour, which is the cap doing its job, not a measurement)."""

import os
import re
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


def _cpu(master: int) -> float:
    """CPU seconds (user + system) used so far by the gunicorn master's workers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def serve(env: dict, workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
               "--keep-alive", "5", "--log-level", "warning"]
    if threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(threads)]
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


def check(engine: sa.Engine, tag: str, accepted: int, public_lists: int, drain_seconds: float) -> dict:
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
            "   WHERE s.email LIKE :like GROUP BY subscriber_id HAVING count(*) <> 1) AS d)"), {"like": like}).one()
    subscribers, subscriptions, consents, notices, sent, doubled = row
    # wrk counts the answers it read; requests in flight when it stopped may still have been
    # written (at most one per connection): rows >= accepted, and each row complete.
    ok = (accepted <= subscribers <= accepted + 64 and subscriptions == consents == subscribers * public_lists
          and notices == sent == subscribers and doubled == 0)
    return {"subscribers": subscribers, "subscriptions": subscriptions, "consents": consents,
            "notices": notices, "sent": sent, "doubled": doubled, "ok": ok, "drain_seconds": drained}


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
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average: ")[-1]
        before = _cpu(server.pid)
        result = wrk(port, tag, seconds, connections)
        used = _cpu(server.pid) - before
        with engine.connect() as conn:
            public = conn.execute(sa.text("SELECT count(*) FROM lists WHERE public")).scalar() or 0
        result |= check(engine, tag, result["accepted"], public, drain_seconds=300)
        result["web_cpu_ms"] = used / max(result["subscribers"], 1) * 1000
    finally:
        stop([server, *senders])
    rate = result["accepted"] / result["seconds"]
    met = rate >= TARGET_RATE and result["p99"] < TARGET_P99_MS
    print(f"  sign-ups, {label}: {rate:,.0f} accepted/s (target >= {TARGET_RATE}), p50 {result['p50']:.1f} ms, "
          f"p99 {result['p99']:.1f} ms (target < {TARGET_P99_MS}) at {connections} connections for {seconds} s; "
          f"{result['non2xx']} refused, socket errors: {result['socket_errors']}; load before: {load}; "
          f"{'MET' if met else 'NOT MET'}", flush=True)
    print(f"    web CPU per sign-up: {result['web_cpu_ms']:.2f} ms (gunicorn workers' user+system time / rows;"
          f" what the machine's load does not change much)", flush=True)
    print(f"    checked: {result['accepted']:,} answered 200, {result['subscribers']:,} rows (the rest were in "
          f"flight when wrk stopped), {result['consents']:,} consent records, "
          f"{result['notices']:,} confirmations of which {result['sent']:,} sent (drained in "
          f"{result['drain_seconds']:.0f} s), {result['doubled']} doubled: {'OK' if result['ok'] else 'MISMATCH'}",
          flush=True)
    return result | {"rate": rate, "met": met}

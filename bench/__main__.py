"""``python -m bench``: end-to-end sending throughput on PostgreSQL + Redis + Celery workers
to Postfix's smtp-sink, with and without DKIM, worker peak RSS, the audience snapshot
time, and a same-run baseline (a bare 2-process Python sender) as the yardstick.

Options: ``--n N`` (default 100000), ``--million`` (N = 1,000,000), ``--workers W``
(default 2), ``--with-10n`` (also send to 10 N to show worker memory stays flat; long),
``--no-dkim-run``, ``--keep`` (keep the bench database). See bench/README.md.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_MAX = 100_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="recipients (default 100000)")
    parser.add_argument("--million", action="store_true", help="N = 1,000,000")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--senders", type=int, default=1,
                        help="senders (threads, each with its own SMTP connection) per worker process")
    parser.add_argument("--rounds", type=int, default=2,
                        help="engine runs per configuration, each followed by the pipelined yardstick (default 2)")
    parser.add_argument("--with-10n", dest="ten", action="store_true",
                        help="also run 10 N recipients (worker RSS must stay flat; takes long)")
    parser.add_argument("--no-dkim-run", dest="dkim", action="store_false", help="skip the DKIM run")
    parser.add_argument("--dkim-both", action="store_true",
                        help="also sign with ed25519-sha256 (two signatures per message)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--snapshot-only", action="store_true",
                        help="seed and time the audience snapshot, send nothing (e.g. with --million)")
    add_audience_options(parser)
    args = parser.parse_args()
    if args.million:
        args.n = 1_000_000
    return args


def add_audience_options(parser: argparse.ArgumentParser) -> None:
    """The audience sections (bench/audience.py): sign-ups, staff pages, import, export."""
    parser.add_argument("--audience", action="store_true", help="only the audience sections")
    parser.add_argument("--no-audience", dest="with_audience", action="store_false",
                        help="skip the audience sections")
    parser.add_argument("--audience-n", type=int, default=1_000_000, help="subscribers (default 1000000)")
    parser.add_argument("--import-n", type=int, default=0, help="rows imported (default: --audience-n)")
    parser.add_argument("--signup-seconds", type=int, default=15, help="wrk run length (default 15)")
    parser.add_argument("--signup-workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--signup-threads", type=int, default=32,
                        help="database connections per web worker, and its threads where it runs threads (default 32)")


def smtp_sink(port: int) -> subprocess.Popen:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        sys.exit("smtp-sink is missing: apt-get install -y postfix (it ships /usr/sbin/smtp-sink)")
    command = [binary]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    command += [f"127.0.0.1:{port}", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    sys.exit("smtp-sink did not start")


def environment(args, run_id: str, database_url: str, sink_port: int) -> dict:
    redis_url = os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14"
    return {
        "MAILER_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": f"mailer-bench-{run_id}",
        "CELERY_QUEUE": f"mailer-bench-{run_id}",
        "SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "BASE_URL": "https://wydarzenia.miasto.example.pl",
        "MAIL_FROM": "wydarzenia@miasto.example.pl",
        "MAIL_DOMAIN": "miasto.example.pl",
        "DKIM_DOMAIN": "miasto.example.pl",
        "SMTP_MAX_CONNECTIONS": str(args.workers * 2),
        "RATE_PER_SECOND": "0",
        "RATE_PER_HOUR": "0",
    }


WORKER_LOG = Path(tempfile.gettempdir()) / "mailer-bench-workers.log"


def start_workers(env: dict, count: int, senders: int = 1) -> list[subprocess.Popen]:
    """W solo-pool workers; their output goes to WORKER_LOG (shown if one dies)."""
    with WORKER_LOG.open("a") as log:  # each worker holds its own copy of the descriptor
        return [subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
             *(["--pool", "solo"] if senders == 1 else ["--pool", "threads", "--concurrency", str(senders)]),
             "--loglevel", "WARNING", "-n", f"bench{k}-{env['CELERY_QUEUE']}@%h", "--without-mingle",
             "--without-gossip", "-Q", env["CELERY_QUEUE"]], cwd=ROOT, env={**os.environ, **env},
            stdout=log, stderr=subprocess.STDOUT)
            for k in range(count)]


def wait_ready(celery_client, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(celery_client.control.ping(timeout=1.0) or []) >= count:
            return
    sys.exit("workers did not start")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dkim_keys(folder: Path, both: bool) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    def pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    (folder / "rsa.pem").write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    (folder / "ed.pem").write_bytes(pem(ed25519.Ed25519PrivateKey.generate()))
    return {"DKIM_RSA_KEY_FILE": str(folder / "rsa.pem"),
            "DKIM_ED25519_KEY_FILE": str(folder / "ed.pem") if both else ""}


def send_campaign(app, env, args, mailing_list, label: str) -> dict:
    """Workers up, campaign launched, wait until sent; msgs/s from launch to the last
    message recorded as accepted by the sink (``rate``: the snapshot and the tasks' start
    included) and from the first acceptance to the last (``sending``), the seconds to the
    first acceptance, and the workers' peak RSS."""
    import sqlalchemy as sa

    from mailer import sending
    from mailer.extensions import db
    from mailer.models import Campaign, CampaignStatus, Delivery

    from . import cpu, seed

    workers = start_workers(env, args.workers, args.senders)
    try:
        wait_ready(app.extensions["celery"], args.workers)
        campaign_id = seed.make_campaign(mailing_list, f"Noc Muzeów — {label}")
        sending.launch(db.session, campaign_id)
        meter = cpu.Meter().start()
        started = time.time()
        db.session.commit()  # "mailer.start_campaign" leaves now
        while True:
            time.sleep(0.25)
            meter.sample()
            db.session.commit()
            status = db.session.scalar(sa.select(Campaign.status).where(Campaign.id == campaign_id))
            if status != CampaignStatus.SENDING:
                break
            for process in workers:
                if process.poll() is not None:
                    sys.exit(f"a worker died ({process.returncode}); its output: {WORKER_LOG}")
        first, last = db.session.execute(sa.select(sa.func.min(Delivery.sent_at), sa.func.max(Delivery.sent_at))
                                         .where(Delivery.campaign_id == campaign_id)).one()
        campaign = db.session.get(Campaign, campaign_id)
        rss = [peak_rss_mb(process.pid) for process in workers]
        spent = meter.stop()
        elapsed = last.timestamp() - started
        return {"label": label, "status": str(status), "sent": campaign.sent_count,
                "failed": campaign.failed_count, "seconds": elapsed,
                "rate": campaign.sent_count / elapsed, "first": first.timestamp() - started,
                "sending": campaign.sent_count / max(1e-3, (last - first).total_seconds()),
                "rss": rss, "campaign_id": campaign_id,
                "cpu": cpu.per_message(spent, campaign.sent_count),
                "env": env}
    finally:
        stop(workers)


def time_snapshot(mailing_list, n: int) -> float:
    """Seconds of the set-based INSERT ... SELECT of one campaign's audience (then removed)."""
    import sqlalchemy as sa
    from flask import current_app

    from mailer import deliveries
    from mailer.extensions import db

    from . import seed

    campaign_id = seed.make_campaign(mailing_list, "Snapshot timing")
    started = time.perf_counter()
    count = deliveries.snapshot(db.session, campaign_id, current_app.config["BATCH_SIZE"])
    db.session.commit()
    elapsed = time.perf_counter() - started
    assert count == n, (count, n)
    db.session.execute(sa.text("DELETE FROM deliveries WHERE campaign_id = :c"), {"c": campaign_id})
    db.session.commit()
    return elapsed


def services() -> tuple[str, str, str, int, subprocess.Popen]:
    """A run's id, the PostgreSQL server's URL (``BENCH_DATABASE_URL``, ``TEST_DATABASE_URL``
    or the local one), the name of the run's database on it, and smtp-sink on a free port."""
    run_id = uuid.uuid4().hex[:8]
    server_url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or \
        "postgresql://postgres@127.0.0.1:5432/postgres"
    sink_port = free_port()
    return run_id, server_url, f"mailer_bench_{run_id}", sink_port, smtp_sink(sink_port)


def main() -> None:
    args = parse()
    WORKER_LOG.unlink(missing_ok=True)
    run_id, server_url, db_name, sink_port, sink = services()
    keys_dir = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    from .pg import drop_database, recreate_database

    database_url = recreate_database(server_url, db_name)
    env = environment(args, run_id, database_url, sink_port)
    from . import cpu

    cpu.configure(run_id, sink_port)
    os.environ.update(env)  # the app, the workers and the yardsticks all read these
    try:
        if not args.audience:
            run(args, env, keys_dir)
        if args.audience or args.with_audience:
            from . import audience

            audience.main(args, env)
    finally:
        sink.terminate()
        shutil.rmtree(keys_dir, ignore_errors=True)
        if not args.keep:
            drop_database(server_url, db_name)


def run(args, env: dict, keys_dir: Path) -> None:
    from mailer import create_app
    from mailer.extensions import db

    from . import seed

    app = create_app("test")
    print(f"bench: N={args.n:,} recipients, {args.workers} worker processes, PostgreSQL, "
          f"Redis broker, smtp-sink on {env['SMTP_URL']}, "
          f"BATCH_SIZE={app.config['BATCH_SIZE']}, SEND_SENDERS={app.config['SEND_SENDERS']}",
          flush=True)
    with app.app_context():
        db.create_all()
        started = time.perf_counter()
        seed.seed_subscribers(args.n * (10 if args.ten else 1))
        main_list = seed.make_list("Mieszkańcy", "mieszkancy", args.n)
        big_list = seed.make_list("Wszyscy", "wszyscy", args.n * 10) if args.ten else None
        print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)

        snapshot = time_snapshot(main_list, args.n)
        print(f"snapshot of {args.n:,} recipients (one INSERT ... SELECT): {snapshot:.2f} s", flush=True)
        if args.snapshot_only:
            return

        host, port = "127.0.0.1", int(env["SMTP_URL"].rsplit(":", 1)[1])
        runs = [(env, "no DKIM")]
        if args.dkim:
            label = "DKIM rsa-sha256 + ed25519-sha256" if args.dkim_both else "DKIM rsa-sha256 (2048)"
            runs.append(({**env, **dkim_keys(keys_dir, args.dkim_both)}, label))
        measured = [measure(app, run_env, args, main_list, label, host, port) for run_env, label in runs]
        if big_list is not None:
            ten = send_campaign(app, env, args, big_list, f"10 N = {args.n * 10:,}, no DKIM")
            print(_line(ten), flush=True)
        print("summary:")
        for item in measured:
            engine = [result["rate"] for result in item["rounds"]]
            sending = [result["sending"] for result in item["rounds"]]
            pipelined = [result["pipelined"] for result in item["rounds"]]
            ratios = [rate / base for rate, base in zip(engine, pipelined, strict=True)]
            phase = [rate / base for rate, base in zip(sending, pipelined, strict=True)]
            print(f"  {item['label']}: engine {_rates(engine)} msgs/s end to end; the same messages from "
                  f"{args.workers} processes, no DB/queue, right after each: pipelined {_rates(pipelined)}, "
                  f"smtplib {item['smtplib']:,.0f} msgs/s; engine = {_ratios(ratios)} x pipelined (median "
                  f"{statistics.median(ratios):.2f}), {statistics.median(engine) / item['smtplib']:.2f} x "
                  f"smtplib; from its first acceptance (the snapshot and the start left out) "
                  f"{_rates(sending)} msgs/s = {_ratios(phase)} x pipelined (median "
                  f"{statistics.median(phase):.2f}), {statistics.median(sending) / item['smtplib']:.2f} x "
                  "smtplib", flush=True)


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


def _ratios(ratios: list[float]) -> str:
    return ", ".join(f"{ratio:.2f}" for ratio in ratios)


def measure(app, env: dict, args, mailing_list, label: str, host: str, port: int) -> dict:
    """``args.rounds`` rounds of the engine, each followed at once by the pipelined yardstick
    of the same messages (so each ratio compares two runs minutes apart, not the whole
    bench apart, on a machine whose speed drifts), then the smtplib yardstick once."""
    rounds = []
    for _ in range(args.rounds):
        result = send_campaign(app, env, args, mailing_list, label)
        print(_line(result), flush=True)
        result["pipelined"] = yardstick("pipelined", result, args, host, port)
        rounds.append(result)
    return {"label": label, "rounds": rounds, "smtplib": yardstick("smtplib", rounds[0], args, host, port)}


def yardstick(kind: str, result: dict, args, host: str, port: int) -> float:
    """msgs/s of the ``kind`` yardstick sending ``result``'s campaign (at most
    BASELINE_MAX messages: it is a rate), with its CPU a message printed."""
    from . import baseline, cpu

    meter = cpu.Meter()
    sent, seconds = baseline.run(kind, result["campaign_id"], host, port, min(args.n, BASELINE_MAX),
                                 args.workers, result["env"], meter)
    print(f"  yardstick {kind}, {result['label']}: {sent / seconds:,.0f} msgs/s; CPU: "
          f"{cpu.per_message(meter.stop(), sent)}", flush=True)
    return sent / seconds


def _line(result: dict) -> str:
    rss = ", ".join(f"{value:.0f}" for value in result["rss"])
    return (f"{result['label']}: {result['sent']:,} sent ({result['failed']} failed, status "
            f"{result['status']}) in {result['seconds']:.1f} s = {result['rate']:,.0f} msgs/s end to end "
            f"(the first accepted {result['first']:.2f} s after the launch, {result['sending']:,.0f} msgs/s from "
            f"then); worker peak RSS MB: {rss}\n    CPU: {result['cpu']}")


if __name__ == "__main__":
    main()

"""The audience sections of ``make bench``: each target with its measured value, at 0 and at
N (default 1,000,000) subscribers, on PostgreSQL with Redis and smtp-sink:

- public sign-ups (bench/signups.py: gunicorn, wrk, every accepted sign-up checked);
- staff pages and API listings at any page depth, substring search, the dashboard, the
  recipients of a campaign to a segment (through the Flask test client, the best of 5);
- CSV import of N rows end to end (the worker's task body in its own process: its peak RSS)
  and CSV export of N subscriptions streamed through the admin route;
- the snapshot of a campaign to a list and a segment (one INSERT ... SELECT).
"""

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from . import audience_seed, cpu, signups

ROOT = Path(__file__).resolve().parent.parent
PAGE_TARGET_MS = 100
IMPORT_TARGET = 20_000
EXPORT_TARGET = 50_000


def _best(fn, runs: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def pages(app, n: int) -> None:
    """Staff pages and API listings, searches, the dashboard, a campaign's recipients."""
    from mailer import recipients, segments, stats, users
    from mailer.extensions import db
    from mailer.models import Campaign, Role

    client = app.test_client()
    with app.app_context():
        user = users.create_user(db.session, "bench-admin@example.org", "bench password 123", Role.ADMIN)
        token = users.create_token(db.session, user, "bench")
        segment = segments.create_segment(db.session, name="Krowodrza, rocznik 1980+", conditions=[
            {"field": "attribute", "key": "district", "op": "eq", "value": "Krowodrza"},
            {"field": "attribute", "key": "birth_year", "op": "gte", "value": 1980}])
        nobody = segments.create_segment(db.session, name="Nikt", conditions=[
            {"field": "attribute", "key": "district", "op": "eq", "value": "Nigdzie"}])
        campaign = Campaign(subject="Pomiar", name="Pomiar", locale="pl")
        campaign.segments = [segment]
        db.session.add(campaign)
        db.session.commit()
        stats.refresh_summary(db.session)
        recipients.count_now(db.session, campaign.id)
        max_id = db.session.scalar(sa.text("SELECT max(id) FROM subscribers")) or 0
        segment_id, nobody_id, campaign_id = segment.id, nobody.id, campaign.id
    with app.test_request_context():
        pass
    login = client.post("/admin/login", data={"email": "bench-admin@example.org", "password": "bench password 123"})
    assert login.status_code == 302, login.status_code
    deep = max(1, max_id - 1000 * 50)  # where page 1,000 starts
    bearer = {"Authorization": f"Bearer {token}"}
    checks = [
        ("subscriber list, page 1", "/admin/subscribers", {}),
        ("subscriber list, page 1,000 (keyset)", f"/admin/subscribers?after={deep}", {}),
        ("search by a name fragment 'żółkiew'", "/admin/subscribers?q=%C5%BC%C3%B3%C5%82kiew", {}),
        ("search by an address fragment 'osoba12345'", "/admin/subscribers?q=osoba12345", {}),
        ("search 'ŁUKASZ' (case and diacritics)", "/admin/subscribers?q=%C5%81UKASZ", {}),
        ("list + status filter (pending on Koncerty)", "/admin/subscribers?list_id=2&status=pending", {}),
        ("list + status filter, page 1,000", f"/admin/subscribers?list_id=2&status=confirmed&after={deep}", {}),
        ("tag filter", "/admin/subscribers?tag=wolontariusz", {}),
        ("segment filter", f"/admin/subscribers?segment_id={segment_id}", {}),
        ("segment filter, page 1,000", f"/admin/subscribers?segment_id={segment_id}&after={deep}", {}),
        ("segment no one matches (searched for a bounded time)", f"/admin/subscribers?segment_id={nobody_id}", {}),
        ("segments page (with counts)", "/admin/segments", {}),
        ("dashboard", "/admin/", {}),
        ("campaign page with its recipients", f"/admin/campaigns/{campaign_id}", {}),
        ("API listing, page 1", "/api/v1/subscribers", bearer),
        ("API listing, page 1,000 (after=)", f"/api/v1/subscribers?after={deep}", bearer),
        ("API search 'kowalska' + list", "/api/v1/subscribers?query=kowalska&list_id=2", bearer),
    ]
    for label, url, headers in checks:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code)
        ms = _best(lambda url=url, headers=headers: client.get(url, headers=headers))
        print(f"  {label}: {ms:.1f} ms (target < {PAGE_TARGET_MS}) {'MET' if ms < PAGE_TARGET_MS else 'NOT MET'}",
              flush=True)
    with app.app_context():
        counted = recipients.recipients(db.session, campaign_id)["count"]
        started = time.perf_counter()
        recipients.count_now(db.session, campaign_id)
        print(f"  recipients of a campaign to a segment: {counted:,}, counted in the background in "
              f"{time.perf_counter() - started:.2f} s (the page reads the kept count)", flush=True)


def snapshot(app, n: int) -> None:
    from mailer import deliveries
    from mailer.extensions import db
    from mailer.models import Campaign, MailingList, Segment

    with app.app_context():
        campaign = Campaign(subject="Migawka", name="Migawka", locale="pl")
        campaign.lists = [db.session.scalar(sa.select(MailingList).where(MailingList.slug == "wydarzenia"))]
        db.session.add(campaign)
        db.session.commit()
        started = time.perf_counter()
        count = deliveries.snapshot(db.session, campaign.id, 500)
        db.session.commit()
        plain = time.perf_counter() - started
        db.session.execute(sa.text("DELETE FROM deliveries WHERE campaign_id = :c"), {"c": campaign.id})
        db.session.execute(sa.text("DELETE FROM send_batches WHERE campaign_id = :c"), {"c": campaign.id})
        campaign.segments = [db.session.scalar(sa.select(Segment))]
        db.session.commit()
        started = time.perf_counter()
        narrowed = deliveries.snapshot(db.session, campaign.id, 500)
        db.session.commit()
        segmented = time.perf_counter() - started
        db.session.execute(sa.text("DELETE FROM deliveries WHERE campaign_id = :c"), {"c": campaign.id})
        db.session.execute(sa.text("DELETE FROM send_batches WHERE campaign_id = :c"), {"c": campaign.id})
        db.session.commit()
    print(f"  snapshot (one INSERT ... SELECT): {count:,} recipients of a list in {plain:.2f} s; "
          f"{narrowed:,} of the list and a segment (attribute conditions) in {segmented:.2f} s", flush=True)


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("email;imię i nazwisko;dzielnica\n")
        for i in range(rows):
            out.write(f"import{i}@nowi.example.pl;Zofia Wójcik {i};Dębniki\n")


def import_rows(env: dict, app, rows: int) -> None:
    """A CSV of ``rows`` new addresses imported by the task body in a process of its own."""
    from mailer import imports
    from mailer.extensions import db
    from mailer.models import MailingList

    folder = Path(tempfile.mkdtemp(prefix="mailer-bench-import-"))
    source = folder / "mieszkancy.csv"
    write_csv(source, rows)
    with app.app_context():
        app.config["IMPORT_DIR"] = folder / "imports"
        with open(source, "rb") as stream:
            job = imports.save_upload(db.session, stream, "mieszkancy.csv")
        list_id = db.session.scalar(sa.select(MailingList.id).where(MailingList.slug == "wydarzenia"))
        imports.start(db.session, job.id, email_col=0, name_col=1, list_ids=[list_id], status="confirmed",
                      consent_source="bench", attributes="3 = district")
        db.session.commit()
        job_id = job.id
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bench.audience", "import-worker", str(job_id)], cwd=ROOT,
                         env={**os.environ, **env, "IMPORT_DIR": str(folder / "imports")},
                         capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - started
    if out.returncode:
        sys.exit(f"import worker failed: {out.stderr[-2000:]}")
    rss = out.stdout.strip().splitlines()[-1]
    with app.app_context():
        done = imports.progress(db.session, job_id)
    rate = rows / elapsed
    print(f"  CSV import of {rows:,} rows end to end (task process start to finish, {done['created']:,} created, "
          f"subscribed and consent recorded, ANALYZE as it grew): {elapsed:.1f} s = {rate:,.0f} rows/s "
          f"(target >= {IMPORT_TARGET:,}) {'MET' if rate >= IMPORT_TARGET else 'NOT MET'}; worker {rss}", flush=True)


def import_worker(job_id: int) -> None:
    """``python -m bench.audience import-worker ID``: run one import's task body, print peak RSS."""
    from mailer import create_app, imports
    from mailer.extensions import db

    app = create_app()
    backends: set[int] = set()  # every connection the import opens (its writers have their own)
    with app.app_context():
        sa.event.listen(db.engine, "connect", lambda connection, _record: backends.add(connection.info.backend_pid))
        imports.run(db.session, job_id)
        # CPU seconds, which a shared machine changes far less than the rate: this process
        # (all its threads, start-up included) and its PostgreSQL backends (still pooled).
        usage = resource.getrusage(resource.RUSAGE_SELF)
        backend_cpu = 0.0
        for pid in backends:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            backend_cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        db.session.remove()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            print(line.replace("\t", " "), end="; ")
    print(f"CPU to the job done {usage.ru_utime + usage.ru_stime:.1f} s, its {len(backends)} PostgreSQL "
          f"backends {backend_cpu:.1f} s")


def _database_cpu(name: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to database ``name`` (their command
    line names it), read from /proc as bench/cpu.py reads its roles."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if command.startswith("postgres") and f" {name} " in command:
            total += (int(fields[11]) + int(fields[12])) / cpu.TICK
    return total


def export(app) -> None:
    """The admin CSV export of every subscription, streamed through the route (the whole body
    read), with the CPU it took in this process and in the database's backends."""
    client = app.test_client()
    login = client.post("/admin/login", data={"email": "bench-admin@example.org", "password": "bench password 123"})
    assert login.status_code == 302
    database = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database or ""
    process, backends = time.process_time(), _database_cpu(database)
    started = time.perf_counter()
    response = client.post("/admin/subscribers/export.csv", buffered=False)  # a POST: exports are recorded
    rows = 0
    for piece in response.response:
        rows += piece.count("\n") if isinstance(piece, str) else piece.count(b"\n")
    response.close()
    elapsed = time.perf_counter() - started
    process, backends = time.process_time() - process, _database_cpu(database) - backends
    rows -= 1  # the header
    rate = rows / elapsed
    print(f"  CSV export of {rows:,} rows streamed: {elapsed:.1f} s = {rate:,.0f} rows/s (target >= "
          f"{EXPORT_TARGET:,}) {'MET' if rate >= EXPORT_TARGET else 'NOT MET'}; CPU a row: web "
          f"{1e6 * process / rows:.1f} us + PostgreSQL {1e6 * backends / rows:.1f} us", flush=True)


def main(args, env: dict) -> None:
    """The audience sections, on the bench database ``env`` points at (made empty)."""
    from mailer import create_app
    from mailer.extensions import db

    app = create_app("test", {"WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False})
    n = args.audience_n
    print(f"audience: sign-ups at 0 and {n:,} subscribers, staff pages, import, export "
          f"(gunicorn {signups.shape(env, args.signup_workers, args.signup_threads)}; machine load "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.add(audience_seed.MailingList(name="Wydarzenia w mieście", slug="wydarzenia", public=True))
        db.session.commit()
        engine = db.engine
        signups.run(env, engine, "0 subscribers", workers=args.signup_workers, threads=args.signup_threads,
                    seconds=args.signup_seconds)
        db.session.execute(sa.text("DELETE FROM notices"))
        db.session.execute(sa.text("DELETE FROM subscribers"))
        db.session.execute(sa.text("DELETE FROM lists"))
        db.session.commit()
        started = time.perf_counter()
        audience_seed.seed(n)
        audience_seed.lists_and_rest(n)
        print(f"  seeded {n:,} subscribers in {time.perf_counter() - started:.0f} s", flush=True)
        signups.run(env, engine, f"{n:,} subscribers", workers=args.signup_workers, threads=args.signup_threads,
                    seconds=args.signup_seconds)
        audience_seed.settle()
    pages(app, n)
    snapshot(app, n)
    export(app)
    import_rows(env, app, args.import_n or n)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "import-worker":
    import_worker(int(sys.argv[2]))

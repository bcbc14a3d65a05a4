"""The embedded default, as `make run` starts it: gunicorn, a Celery worker (2 processes)
and Celery beat as separate processes, SQLite, kombu's SQLAlchemy broker in its own file,
mail in the outbox folder; no Redis, SMTP server or PostgreSQL. The visitor path is walked
over HTTP and the mail read from the outbox (page and folder)."""

import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csrf(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no CSRF token in the page"
    return next(group for group in match.groups() if group)


def wait_until(check, what: str, timeout: float = 90.0, logs: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    tails = "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(logs.glob("*.log"))) if logs else ""
    raise AssertionError(f"timed out waiting for {what}{tails}")


def answers(url: str) -> bool:
    """Whether the page at ``url`` answers 200 (a server still starting does not)."""
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def mails(outbox: Path) -> list:
    return [message_from_bytes(path.read_bytes(), policy=policy.default)
            for path in sorted(outbox.glob("*.eml"))]


@pytest.fixture
def embedded(tmp_path):
    instance = tmp_path / "instance"
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in {"REDIS_URL", "SMTP_URL", "DATABASE_URL", "SECRET_KEY", "OUTBOX_DIR",
                          "BASE_URL", "CELERY_QUEUE", "MAILER_ENV"} and not key.startswith("TEST_")}
    env.update(INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1", BOUNCE_SMTP_PORT=str(free_port()))
    # `make run` itself: migrate, the demo admin, then web, worker and beat under honcho
    # (which gives each process its own PORT: the links in mail must still be the web's).
    commands = {"make": ["make", "--no-print-directory", "run", f"PORT={port}"]}
    processes = {}
    try:
        for name, command in commands.items():
            log = open(tmp_path / f"{name}.log", "w")
            processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(base + "/"), "the web app", logs=tmp_path)
        login = wait_until(lambda: re.search(r"Demo admin: (\S+) / (\S+)", (tmp_path / "make.log").read_text()),
                           "the demo admin's sign-in", logs=tmp_path)
        yield {"base": base, "instance": instance, "outbox": instance / "outbox",
               "login": login.groups(), "processes": processes, "logs": tmp_path,
               "bounce_port": int(env["BOUNCE_SMTP_PORT"])}
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.mark.slow
def test_make_run_stack_walks_the_visitor_path(embedded):
    base, outbox = embedded["base"], embedded["outbox"]
    visitor = requests.Session()

    home = visitor.get(base + "/").text
    assert "Najbliższe wydarzenia" in home and "Koncert kolęd na Rynku" in home
    answer = visitor.post(base + "/subscribe", data={
        "csrf_token": csrf(home), "email": "Halina@Example.org", "name": "Halina Świątek",
        "consent": "y", "website": ""})
    assert answer.status_code == 200 and "Sprawdź skrzynkę pocztową" in answer.text

    # the worker (another process) took the task from the SQLite broker and wrote the mail
    wait_until(lambda: len(mails(outbox)) >= 1, "the confirmation mail in the outbox",
               logs=embedded["logs"])
    staff = requests.Session()
    email, password = embedded["login"]
    page = staff.get(base + "/admin/login").text
    logged_in = staff.post(base + "/admin/login", data={"csrf_token": csrf(page), "email": email,
                                                        "password": password})
    assert logged_in.status_code == 200, logged_in.text[:300]
    listing = staff.get(base + "/admin/outbox").text
    assert "Potwierdź zapis na newsletter" in listing
    name = re.search(r'/admin/outbox/([^"]+\.eml)', listing).group(1)
    shown = html.unescape(staff.get(f"{base}/admin/outbox/{name}").text)
    link = re.search(re.escape(base) + r"/confirm/[A-Za-z0-9._-]+", shown).group(0)

    page = visitor.get(link)
    assert page.status_code == 200 and "Potwierdzam zapis" in page.text
    confirmed = visitor.post(link, data={"csrf_token": csrf(page.text)})
    assert confirmed.status_code == 200 and "Zapis potwierdzony" in confirmed.text

    welcome = wait_until(lambda: [m for m in mails(outbox) if m["Subject"].startswith("Witamy")],
                         "the welcome mail")[0]

    # staff send a campaign: the worker sends it with the embedded journal (a file) and
    # limits (a locked file shared by its two processes), to the outbox
    new = staff.get(base + "/admin/campaigns/new").text
    event_id = re.search(r'name="event_ids" value="(\d+)"', new).group(1)
    list_id = re.search(r'name="list_ids" value="(\d+)"', new).group(1)
    created = staff.post(base + "/admin/campaigns/new", data={
        "csrf_token": csrf(new), "event_ids": event_id, "list_ids": list_id, "locale": "pl"})
    assert created.status_code == 200, created.text[:300]
    sent = staff.post(created.url + "/send", data={"csrf_token": csrf(created.text)})
    assert sent.status_code == 200, sent.text[:300]
    copy = wait_until(lambda: [m for m in mails(outbox) if m["Subject"] == "Koncert kolęd na Rynku"],
                      "the campaign's copy", logs=embedded["logs"])[0]
    assert copy["To"].addresses[0].addr_spec == "halina@example.org"
    assert copy["Return-Path"].startswith("<bounces+d")  # its own return path (VERP)
    # recorded: nothing to recover (the sender removes its journal just after the copy is out)
    wait_until(lambda: not list((embedded["instance"] / "journal").glob("*")), "the journal removed",
               logs=embedded["logs"])
    assert welcome["To"].addresses[0].display_name == "Halina Świątek"
    unsubscribe = re.fullmatch(r"<([^>]+)>", str(welcome["List-Unsubscribe"])).group(1)
    one_click = requests.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False)
    assert one_click.status_code == 200
    after = requests.get(unsubscribe).text
    assert "Ten adres nie jest zapisany na żaden z naszych newsletterów." in after

    embed = requests.post(base + "/subscribe.json", json={"email": "json@example.org", "consent": True},
                          headers={"Origin": base})  # as the embed snippet on this site's own page
    assert embed.status_code == 200 and embed.json()["ok"] is True
    wait_until(lambda: any("json@example.org" in str(m["To"]) for m in mails(outbox)), "the JSON sign-up's mail")
    # the bounce receiver (Procfile) takes a returned confirmation for that address over SMTP
    bounced = bounce_to_receiver(embedded, "json@example.org")
    assert "suppressed: bounced" in bounced
    suppressed = staff.get(base + "/admin/suppressions?lang=en&q=json@example.org").text
    assert "json@example.org" in suppressed and "the address does not exist (bounced)" in suppressed
    assert (embedded["instance"] / "broker.sqlite").exists()  # the broker: its own SQLite file
    assert (embedded["instance"] / "mailer.sqlite").exists()
    assert list(embedded["instance"].glob("celerybeat-schedule*"))  # beat ran, as configured
    for name, process in embedded["processes"].items():
        assert process.poll() is None, (name, (embedded["logs"] / f"{name}.log").read_text()[-2000:])


def bounce_to_receiver(embedded, email: str) -> str:
    """Return a notice to ``email`` as a mail server would, to the receiver `make run` started:
    a DSN to the subscriber's signed return path (development settings sign it)."""
    import smtplib
    import sqlite3

    from config import DEFAULT_SECRET
    from mailer.verp import Verp

    database = sqlite3.connect(embedded["instance"] / "mailer.sqlite")
    [(subscriber_id,)] = database.execute("SELECT id FROM subscribers WHERE email = ?", (email,)).fetchall()
    to = Verp({"MAIL_DOMAIN": "example.org", "SECRET_KEY": DEFAULT_SECRET}).return_path("s", subscriber_id)
    dsn = (ROOT / "tests" / "data" / "bounces" / "gmail_does_not_exist.eml").read_text()
    dsn = dsn.replace("$RETURN_PATH", to).replace("$RECIPIENT", email).replace("$MESSAGE_ID", "<n@example.org>")

    def listening():
        try:
            smtplib.SMTP("127.0.0.1", embedded["bounce_port"], timeout=5).quit()
            return True
        except OSError:
            return False

    wait_until(listening, "the bounce receiver", logs=embedded["logs"])
    with smtplib.SMTP("127.0.0.1", embedded["bounce_port"], timeout=30) as client:
        client.sendmail("", [to], dsn.replace("\n", "\r\n").encode())
    [(reason,)] = database.execute("SELECT reason FROM suppressions").fetchall()
    database.close()
    return f"suppressed: {reason}"


def start_make_run(instance: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in {"REDIS_URL", "SMTP_URL", "DATABASE_URL", "SECRET_KEY", "OUTBOX_DIR",
                          "BASE_URL", "CELERY_QUEUE", "MAILER_ENV"} and not key.startswith("TEST_")}
    env.update(INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1", BOUNCE_SMTP_PORT=str(free_port()))
    log = open(log_path, "w")
    # Its own session, as a terminal's foreground job: Ctrl-C reaches make and honcho.
    process = subprocess.Popen(["make", "--no-print-directory", "run", f"PORT={port}"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, port


def honcho_pid(make: subprocess.Popen) -> int:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(make.pid)], capture_output=True, text=True).stdout
    return next(int(line.split()[0]) for line in out.splitlines() if "honcho start" in line and "/bin/sh" not in line)


def banner_then_ctrl_c(tmp_path: Path, instance: Path, name: str) -> tuple[str, str]:
    """Start `make run`, wait for its banner, check it stays the last thing printed, press
    Ctrl-C (SIGINT to honcho, which is what a terminal's Ctrl-C stops the processes with),
    and return the password shown and the whole output."""
    log_path = tmp_path / f"{name}.log"
    make, _port = start_make_run(instance, log_path)
    try:
        wait_until(lambda: "Stop everything with Ctrl-C." in log_path.read_text(), "the banner", logs=tmp_path)
        time.sleep(4)  # the worker and beat have ticked by now: they print nothing more
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        tail = [line.split("|", 1)[-1].strip() for line in lines[-6:]]
        assert tail[0].startswith("====") and tail[-1].startswith("===="), lines[-12:]
        password = re.search(r"Demo admin: \S+ / (\S+)", "\n".join(tail)).group(1)
        assert "/admin/account" in "\n".join(tail)
        os.kill(honcho_pid(make), signal.SIGINT)
        assert make.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(timeout=10)
    return password, log_path.read_text()


@pytest.mark.slow
def test_make_run_shows_a_kept_password_last_and_stops_quietly(tmp_path):
    instance = tmp_path / "instance"
    first, output = banner_then_ctrl_c(tmp_path, instance, "first")
    for alarming in ("Traceback", "ERROR", "Error", "exited with 'signal"):
        assert alarming not in output, output[-3000:]
    assert "worker: Warm shutdown" in output
    stored = instance / "demo-admin-password"
    assert stored.read_text().strip() == first and stored.stat().st_mode & 0o777 == 0o600
    second, output = banner_then_ctrl_c(tmp_path, instance, "second")
    assert second == first and "Traceback" not in output

"""The web process as gunicorn runs it (gunicorn.conf.py): gevent workers on PostgreSQL,
threads on SQLite. On PostgreSQL one worker serves many requests at once: held sign-up
answers, a hostile template preview in its forked child and the check of a large CSV upload
do not stop the others, and every sign-up is stored once with its confirmation owed."""

import re
import runpy
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from mailer.imports.upload import YIELD_EVERY
from mailer.models import Notice, Role, Subscriber
from tests.helpers_content import make_event, make_list
from tests.helpers_engine import stop_process, worker_env
from tests.helpers_staff import PASSWORD, make_user
from tests.test_embedded_run import answers, csrf, free_port, wait_until
from tests.test_security_templates import STOPPED_BY_LIMITS

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/mailer"


def worker_kind(environ: dict) -> str:
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))["worker_kind"](environ)


def test_the_worker_class_follows_the_database():
    assert worker_kind({"DATABASE_URL": PG}) == "gevent"
    assert worker_kind({"DATABASE_URL": "postgresql://postgres@db/mailer"}) == "gevent"
    assert worker_kind({}) == "gthread"  # the embedded default: SQLite
    assert worker_kind({"DATABASE_URL": "sqlite:////srv/mailer.sqlite"}) == "gthread"
    assert worker_kind({"DATABASE_URL": PG, "WEB_WORKER_CLASS": "gthread"}) == "gthread"
    assert worker_kind({"WEB_WORKER_CLASS": "gevent"}) == "gevent"
    assert worker_kind({"DATABASE_URL": PG, "WEB_WORKER_CLASS": "sync"}) == "gevent"  # not ours to pick


def test_the_settings_are_read_from_the_environment(monkeypatch):
    """The shape of the web (WEB_WORKERS, WEB_CONNECTIONS or WEB_THREADS) as the README says."""
    monkeypatch.setenv("DATABASE_URL", PG)
    monkeypatch.setenv("WEB_WORKERS", "3")
    monkeypatch.setenv("WEB_CONNECTIONS", "50")
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["workers"], settings["worker_class"], settings["worker_connections"]) == (3, "gevent", 50)
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("WEB_WORKERS")
    monkeypatch.setenv("WEB_THREADS", "8")
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["workers"], settings["worker_class"], settings["threads"]) == (2, "gthread", 8)
    assert "worker_connections" not in settings


FROZEN_AFTER_INIT = """
import gc, runpy
runpy.run_path("gunicorn.conf.py")["post_worker_init"](None)
print(gc.get_freeze_count(), gc.get_threshold()[0])
"""


def test_a_web_worker_freezes_its_heap_once_the_app_is_loaded():
    """gunicorn's post_worker_init moves what is alive out of the collector's way and widens
    its young generation, as a Celery worker does (``worker.freeze_heap``)."""
    from worker import YOUNG_OBJECTS

    frozen, young = subprocess.run([sys.executable, "-c", FROZEN_AFTER_INIT], cwd=ROOT, capture_output=True,
                                   text=True, timeout=60, check=True).stdout.split()
    assert int(frozen) > 0 and int(young) == YOUNG_OBJECTS


@pytest.fixture
def server(app, session, tmp_path):
    """gunicorn with gunicorn.conf.py and one worker, on this run's database and Redis; its
    jobs go to a queue of its own that no worker reads (the rows are what is checked)."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("gevent workers serve PostgreSQL deployments")
    port = free_port()
    env = worker_env(app, WEB_WORKERS=1, SUBSCRIBE_ANSWER_SECONDS=1, SUBSCRIBE_RATE_LIMIT="1000 per minute",
                     CELERY_QUEUE=app.config["CELERY"]["task_default_queue"] + "-web",
                     TEMPLATE_RENDER_SECONDS=3, LANGUAGES="pl", BASE_URL=f"http://127.0.0.1:{port}",
                     IMPORT_DIR=str(tmp_path / "imports"), PYTHONUNBUFFERED=1)
    env.pop("WEB_WORKER_CLASS", None)
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--log-level", "info", "mailer:create_app()"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(base + "/"), "gunicorn", logs=tmp_path)
        assert "Using worker: gevent" in log.read_text()
        yield base
    finally:
        stop_process(process)


def _at_once(calls: list, then) -> tuple[list, float, object]:
    """Start ``calls`` in threads, and ``then()`` 0.3 s later; returns the calls' (answer,
    when) pairs, when ``then`` was answered and its answer."""
    results: list = []

    def run(call):
        answer = call()
        results.append((answer, time.monotonic()))

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    other = then()
    answered = time.monotonic()
    for thread in threads:
        thread.join(60)
    return results, answered, other


def test_held_sign_up_answers_do_not_hold_the_worker(server, app, session):
    """Twenty sign-ups, each answer held a second, on one worker: a page asked meanwhile is
    answered before any of them, and each sign-up is stored once, its confirmation owed."""
    list_id = make_list(session).id

    def sign_up(number: int):
        return lambda: requests.post(f"{server}/subscribe.json", timeout=30, headers={"Origin": server},
                                     json={"email": f"rownolegle{number}@example.org", "consent": True,
                                           "lists": [list_id], "name": "Zażółć Gęślą"})

    results, answered, page = _at_once([sign_up(n) for n in range(20)],
                                       lambda: requests.get(server + "/", timeout=30))
    assert page.status_code == 200
    assert [answer.status_code for answer, _ in results] == [200] * 20
    assert answered < min(when for _, when in results)
    session.expire_all()
    emails = session.scalars(sa.select(Subscriber.email).where(Subscriber.email.like("rownolegle%"))).all()
    assert sorted(emails) == sorted(f"rownolegle{n}@example.org" for n in range(20))
    assert session.scalar(sa.select(sa.func.count()).select_from(Notice)) == 20
    named = sa.select(Subscriber.name).where(Subscriber.email == "rownolegle7@example.org")
    assert session.scalar(named) == "Zażółć Gęślą"


def _signed_in(server: str, session) -> requests.Session:
    user = make_user(session, Role.ADMIN)
    browser = requests.Session()
    token = csrf(browser.get(f"{server}/admin/login", timeout=30).text)
    browser.post(f"{server}/admin/login", timeout=30,
                 data={"csrf_token": token, "email": user.email, "password": PASSWORD})
    return browser


def test_a_hostile_preview_does_not_stop_the_worker(server, session):
    """Two previews that would run for ever, each in its forked child, on one gevent worker:
    the home page answers while they run (the wait for the child yields), each ends in a 400."""
    make_event(session)
    session.commit()
    browser = _signed_in(server, session)
    form = browser.get(f"{server}/admin/templates/new", timeout=30).text
    hostile = {"csrf_token": csrf(form), "kind": "content", "text": "", "name": "x",
               "layout_id": re.search(r'<option value="(\d+)"', form).group(1), "html": STOPPED_BY_LIMITS["time"]}

    def attack():
        return browser.post(f"{server}/admin/templates/preview", data=hostile, timeout=60)

    results, answered, home = _at_once([attack, attack], lambda: requests.get(f"{server}/", timeout=30))
    assert home.status_code == 200
    assert [answer.status_code for answer, _ in results] == [400, 400]
    assert answered < min(when for _, when in results)


INSPECT_UNDER_GEVENT = """
import sys
from gevent import monkey
monkey.patch_all()
import gevent
from mailer.imports.upload import inspect
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(1) or gevent.sleep(0) for _ in iter(int, 1)])
gevent.sleep(0)  # the ticker starts, then waits for its turn
before = len(ticks)
info = inspect(sys.argv[1])
print(info["rows"], len(ticks) - before)
"""


def test_checking_a_large_upload_lets_other_requests_in(tmp_path):
    """The check of an uploaded CSV file, a second or more for a large one, gives the other
    greenlets of its gevent worker their turns while it runs (as a thread lets others run)."""
    path = tmp_path / "big.csv"
    path.write_text("email,name\n" + "".join(f"osoba{n}@example.org,Osoba {n}\n" for n in range(50_000)))
    out = subprocess.run([sys.executable, "-c", INSPECT_UNDER_GEVENT, str(path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert int(out[0]) == 50_000
    assert int(out[1]) >= 50_000 // YIELD_EVERY  # the others ran at each yield, not only at the end

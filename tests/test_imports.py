"""CSV import: upload checks, preview and mapping, the worker task, hostile files, 100k rows."""

import io
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, text

from mailer import audience, imports, suppression
from mailer.extensions import db
from mailer.models import ConsentRecord, ImportJob, ImportStatus, Role, Subscriber, Subscription, SubscriptionStatus
from tests.helpers_staff import csrf, login_as, make_list, make_subscriber


@pytest.fixture(autouse=True)
def import_dir(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_DIR", tmp_path / "imports")
    return tmp_path / "imports"


def upload(client, content: bytes, name: str = "lista.csv"):
    token = csrf(client, "/admin/imports")
    return client.post("/admin/imports", data={"csrf_token": token, "file": (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


def job_id_from(response) -> int:
    assert response.status_code == 302, response.data[-800:]
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def start(client, job_id: int, **options):
    token = csrf(client, f"/admin/imports/{job_id}")
    data = {"csrf_token": token, "email_col": "0", "name_col": "", "locale_col": "", "status": "pending",
            "consent_source": "", **options}
    return client.post(f"/admin/imports/{job_id}", data=data)


def wait_done(client, job_id: int, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds  # a guard against a hang, not a speed check
    while time.monotonic() < deadline:
        status = client.get(f"/admin/imports/{job_id}/status").get_json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"import {job_id} did not finish: {status}")


def count(session, model) -> int:
    db.session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


SAMPLE = ("\ufeffE-mail;Imię i nazwisko;Język\r\n"
          "anna@example.org;Anna Kowalska;pl\r\n"
          "  ANNA@Example.org ;Anna ponownie;pl\r\n"
          "nie-adres;Ktoś;pl\r\n"
          "jan@example.org;Jan Wiśniewski;en\r\n"
          "\r\n"
          "wymazana@example.org;Była;pl\r\n"
          "stary@example.org;Stary;pl\r\n"
          "zla\r\nlinia@example.org;x;pl\r\n"
          "formula@example.org;=HYPERLINK(\"http://evil\");xx\r\n").encode("utf-8")


def test_full_import_through_the_worker(client, session, celery_worker, import_dir):
    koncerty, wystawy = make_list(session, "Koncerty"), make_list(session, "Wystawy")
    make_subscriber(session, "stary@example.org", "Stary", [koncerty], status=SubscriptionStatus.UNSUBSCRIBED)
    suppression.suppress(session, "wymazana@example.org", "erased")
    session.commit()
    login_as(client, session, Role.ADMIN)
    job_id = job_id_from(upload(client, SAMPLE))
    page = client.get(f"/admin/imports/{job_id}?lang=pl").data.decode()
    assert "Anna Kowalska" in page and "Imię i nazwisko" in page  # the preview
    assert 'selected value="1"' in page  # the name column was guessed
    assert len(list(import_dir.iterdir())) == 1

    response = start(client, job_id, name_col="1", locale_col="2", status="confirmed",
                     consent_source="formularz papierowy 2025",
                     list_ids=[str(koncerty.id), str(wystawy.id)])
    assert response.status_code == 302
    result = wait_done(client, job_id)
    assert result["status"] == "done", result
    assert result["done"] == result["total"] == 9
    assert result["created"] == 4  # anna, jan, formula, "linia" (a quoted-less line break splits rows)
    assert result["suppressed"] == 1 and result["existing"] == 2  # anna twice; stary exists
    job = session.get(ImportJob, job_id)
    invalid_lines = [line for line, _ in job.invalid_rows]
    assert invalid_lines == [4, 9] and job.invalid_count == 2
    assert not list(import_dir.iterdir())  # the uploaded copy is gone

    anna = session.scalar(select(Subscriber).where(Subscriber.email == "anna@example.org"))
    assert anna.name == "Anna Kowalska" and anna.locale == "pl" and anna.attributes == {}
    assert {s.status for s in anna.subscriptions} == {SubscriptionStatus.CONFIRMED}
    jan = session.scalar(select(Subscriber).where(Subscriber.email == "jan@example.org"))
    assert jan.locale == "en" and len(jan.subscriptions) == 2
    consent = session.scalars(select(ConsentRecord).where(ConsentRecord.subscriber_id == jan.id)).all()
    assert {c.source for c in consent} == {"import"} and len(consent) == 2
    assert consent[0].consent_version == f"import:{job_id}"
    # the one who left stays unsubscribed from Koncerty, and is only added to Wystawy
    stary = session.scalar(select(Subscriber).where(Subscriber.email == "stary@example.org"))
    assert {s.list_id: s.status for s in stary.subscriptions} == {
        koncerty.id: SubscriptionStatus.UNSUBSCRIBED, wystawy.id: SubscriptionStatus.CONFIRMED}
    assert session.scalar(select(Subscriber.id).where(Subscriber.email == "wymazana@example.org")) is None
    # formula-looking names are stored as given and escaped on export
    rows = list(audience.export_rows(session, query="formula"))
    assert rows[0][1] == '=HYPERLINK("http://evil")'
    export = client.post("/admin/subscribers/export.csv", data={"q": "formula", "csrf_token": csrf(client, "/admin/")}
                         ).data.decode("utf-8-sig")
    assert "'=HYPERLINK" in export
    page = client.get(f"/admin/imports/{job_id}?lang=en").data.decode()
    assert "Invalid rows" in page and "formularz papierowy 2025" in page
    # running the task again changes nothing
    imports.run(session, job_id)
    assert count(session, Subscriber) == 5


def test_running_twice_is_harmless(client, session, import_dir):
    lst = make_list(session)
    login_as(client, session, Role.ADMIN)
    job_id = job_id_from(upload(client, b"email\na@example.org\nb@example.org\n"))
    assert start(client, job_id, list_ids=[str(lst.id)]).status_code == 302
    imports.run(session, job_id)  # a worker left running by another test may claim it first
    imports.run(session, job_id)
    assert wait_done(client, job_id)["status"] == "done"
    imports.run(session, job_id)
    assert count(session, Subscriber) == 2 and count(session, Subscription) == 2
    assert session.get(ImportJob, job_id).status == ImportStatus.DONE
    assert {s.status for s in session.scalars(select(Subscription))} == {SubscriptionStatus.PENDING}


def test_confirmed_needs_a_consent_source_and_a_list(client, session):
    lst = make_list(session)
    login_as(client, session, Role.ADMIN)
    job_id = job_id_from(upload(client, b"email\na@example.org\n"))
    response = start(client, job_id, status="confirmed", list_ids=[str(lst.id)])
    assert response.status_code == 400 and b"consent" in response.data
    assert start(client, job_id, status="pending").status_code == 400  # no list
    for options in ({"email_col": "7"}, {"email_col": "x"}, {"status": "unsubscribed"},
                    {"list_ids": ["99999"]}, {"list_ids": ["abc"]}, {"consent_source": "x" * 300}):
        assert start(client, job_id, **{"list_ids": [str(lst.id)], **options}).status_code == 400, options
    assert session.get(ImportJob, job_id).status == ImportStatus.UPLOADED
    assert count(session, Subscriber) == 0


HOSTILE = {
    "cp1250": ("email;imię\nżółw@example.org;Zażółć gęślą jaźń\n".encode("cp1250"), b"UTF-8"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), b"not a CSV"),
    "empty": (b"", b"empty"),
    "blank lines": (b"\n\n \n", b"empty"),
    "no email column": (b"name,city\nAnna,Krak\xc3\xb3w\n", b"No column"),
    "huge line": (b"email,name\na@example.org," + b"x" * 200_000 + b"\n", b"Line 2"),
    "too many columns": (b"email" + b",x" * 150 + b"\n", b"Line 1"),
    "broken utf-8 at the end": (b"email\n" + b"a@example.org\n" * 5000 + b"\xc5", b"UTF-8"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_are_refused_up_front(client, session, import_dir, name):
    content, message = HOSTILE[name]
    login_as(client, session, Role.ADMIN)
    client.get("/admin/imports?lang=en")
    response = upload(client, content)
    assert response.status_code == 400
    assert message in response.data.replace(b"&#34;", b'"'), response.data[-1500:]
    assert count(session, ImportJob) == 0
    assert not import_dir.exists() or not list(import_dir.iterdir())


def test_upload_without_a_file_or_token(client, session):
    login_as(client, session, Role.ADMIN)
    token = csrf(client, "/admin/imports")
    assert client.post("/admin/imports", data={"csrf_token": token}).status_code == 400
    response = client.post("/admin/imports", data={"file": (io.BytesIO(b"email\na@example.org\n"), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert count(session, ImportJob) == 0


def test_polish_message_for_a_wrong_encoding(client, session):
    login_as(client, session, Role.ADMIN)
    client.get("/admin/imports?lang=pl")
    response = upload(client, "email\nżółw@example.org\n".encode("cp1250"))
    assert response.status_code == 400 and b"kodowaniu UTF-8" in response.data


def test_one_hundred_thousand_rows(client, session, import_dir, tmp_path):
    lst = make_list(session)
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("email,name\n")
        for n in range(100_000):
            out.write(f"osoba{n}@example.org,Osoba {n}\n")
        out.write("osoba7@example.org,Powtórzona\n")
    login_as(client, session, Role.ADMIN)
    token = csrf(client, "/admin/imports")
    with open(path, "rb") as handle:
        response = client.post("/admin/imports", data={"csrf_token": token, "file": (handle, "big.csv")},
                               content_type="multipart/form-data")
    job_id = job_id_from(response)
    assert session.get(ImportJob, job_id).total_rows == 100_001
    assert start(client, job_id, name_col="1", list_ids=[str(lst.id)]).status_code == 302
    imports.run(session, job_id)  # the task body (a worker left running by another test may claim it)
    wait_done(client, job_id, seconds=600)
    progress = imports.progress(session, job_id)
    assert progress["status"] == "done" and progress["done"] == 100_001 and progress["percent"] == 100
    assert progress["created"] == 100_000 and progress["existing"] == 1
    assert count(session, Subscriber) == 100_000 and count(session, Subscription) == 100_000
    assert session.scalar(select(Subscriber.name).where(Subscriber.email == "osoba99999@example.org")) == "Osoba 99999"


def test_a_file_that_breaks_during_the_import_fails_with_its_line_in_the_page_language(
        client, session, import_dir):
    lst = make_list(session)
    login_as(client, session, Role.ADMIN)
    job_id = job_id_from(upload(client, b"email\na@example.org\nb@example.org\n"))
    imports.start(session, job_id, email_col=0, list_ids=[lst.id], status="pending")
    [stored] = import_dir.iterdir()
    stored.write_bytes(b"email\na@example.org\nb@example.org" + b",x" * 150 + b"\n")  # changed since
    session.commit()  # queued now, with the file broken
    imports.run(session, job_id)  # the task body (a worker left running by another test may claim it)
    assert wait_done(client, job_id)["status"] == "failed"
    session.rollback()
    job = session.get(ImportJob, job_id)
    assert job.status == ImportStatus.FAILED
    assert (job.error, job.error_params) == ("Line %(line)s has too many columns.", {"line": 3})
    assert "Wiersz 3 ma za dużo kolumn." in client.get(f"/admin/imports/{job_id}?lang=pl").get_data(as_text=True)
    assert "Line 3 has too many columns." in client.get(f"/admin/imports/{job_id}?lang=en").get_data(as_text=True)


def test_addresses_with_polish_letters_are_imported(client, session, import_dir):
    """The import accepts what the form accepts (one validation function): a local part with
    Polish letters, an IDN domain (stored as its A-label, shown in Polish letters)."""
    lst = make_list(session)
    login_as(client, session, Role.ADMIN)
    content = "email\nMałgorzata.Wiśniewska@example.pl\njan@żółw.pl\n".encode()
    job_id = job_id_from(upload(client, content))
    assert start(client, job_id, list_ids=[str(lst.id)]).status_code == 302
    imports.run(session, job_id)
    assert wait_done(client, job_id)["status"] == "done"
    db.session.expire_all()
    assert sorted(session.scalars(select(Subscriber.email))) == ["jan@xn--w-uga1v8h.pl",
                                                                  "małgorzata.wiśniewska@example.pl"]
    page = client.get("/admin/subscribers?q=zolw").get_data(as_text=True)
    assert "jan@żółw.pl" in page and "xn--" not in page


def test_values_that_copy_would_misread_are_stored_as_given(client, session, import_dir):
    """Backslashes, COPY's null marker, quotes, a tab inside a quoted cell and Polish letters
    in names and attributes come back exactly (PostgreSQL streams rows in COPY's text format)."""
    lst = make_list(session)
    login_as(client, session, Role.ADMIN)
    content = ('email,name,dzielnica,uwagi\n'
               'a@example.org,Jan \\N Kowalski\\,C:\\temp\\x,"cytat ""x"" \\n"\n'
               'b@example.org,"Zofia\tWójcik",\\.,"\\\\serwer\\ścieżka"\n'
               'c@example.org,,"tab\tw środku",\n').encode()
    job_id = job_id_from(upload(client, content))
    assert start(client, job_id, name_col="1", list_ids=[str(lst.id)],
                 attributes="3 = dzielnica\n4 = uwagi").status_code == 302
    imports.run(session, job_id)
    assert wait_done(client, job_id)["status"] == "done"
    db.session.expire_all()
    found = {s.email: (s.name, s.attributes, s.search_text) for s in session.scalars(select(Subscriber))}
    assert found["a@example.org"][:2] == ("Jan \\N Kowalski\\", {"dzielnica": "C:\\temp\\x",
                                                                   "uwagi": 'cytat "x" \\n'})
    assert found["b@example.org"][:2] == ("Zofia Wójcik", {"dzielnica": "\\.", "uwagi": "\\\\serwer\\ścieżka"})
    assert found["c@example.org"][:2] == ("", {"dzielnica": "tab w środku"})
    assert found["b@example.org"][2] == "b@example.org zofia wojcik"
    assert found["a@example.org"][2] == "a@example.org jan \\n kowalski\\"


def test_counts_across_chunks(client, session, import_dir, app, monkeypatch):
    """Chunks of three rows: an address repeated in another chunk, one already subscribed,
    a suppressed one, refused rows (their lines reported), a name with a control character;
    every row counted once and one subscription and consent record per new pair."""
    monkeypatch.setitem(app.config, "IMPORT_CHUNK", 3)
    lst, other = make_list(session, "Koncerty"), make_list(session, "Wystawy")
    make_subscriber(session, "byla@example.org", "Była", [lst])
    suppression.suppress(session, "nie@example.org", "erased")
    session.commit()
    login_as(client, session, Role.ADMIN)
    lines = ["email;imię", "a@example.org;A", "b@example.org;B", "zły adres;X", "a@example.org;A znowu",
             "byla@example.org;Była", "nie@example.org;Nie", "c@example.org;C\x07", "d@example.org;D",
             "B@EXAMPLE.ORG;B znowu", "e@example.org;E"]
    job_id = job_id_from(upload(client, ("\n".join(lines) + "\n").encode()))
    assert start(client, job_id, name_col="1", status="confirmed", consent_source="formularz 2025",
                 list_ids=[str(lst.id), str(other.id)]).status_code == 302
    imports.run(session, job_id)
    result = wait_done(client, job_id)
    assert result["status"] == "done" and result["done"] == result["total"] == 10
    assert (result["created"], result["existing"], result["suppressed"], result["invalid"]) == (4, 3, 1, 2)
    assert result["subscribed"] == 4 * 2 + 1  # byla was on Koncerty already: only Wystawy is new
    db.session.expire_all()
    job = session.get(ImportJob, job_id)
    assert [line for line, _ in job.invalid_rows] == [4, 8]
    assert sorted(session.scalars(select(Subscriber.email))) == [
        "a@example.org", "b@example.org", "byla@example.org", "d@example.org", "e@example.org"]
    records = session.scalars(select(ConsentRecord).where(ConsentRecord.source == "import")).all()
    assert len(records) == 9 and {r.consent_version for r in records} == {f"import:{job_id}"}
    assert len({r.consent_text for r in records}) == 1 and records[0].consent_text
    pairs = session.execute(select(Subscription.subscriber_id, Subscription.list_id)).all()
    assert len(pairs) == len(set(pairs)) == 4 * 2 + 2


def test_a_file_that_breaks_after_some_chunks_keeps_them(client, session, import_dir, app, monkeypatch):
    """The rows are read a chunk ahead: a broken line fails the job after the chunks before it
    were imported, and nothing of the chunk it is in."""
    monkeypatch.setitem(app.config, "IMPORT_CHUNK", 2)
    lst = make_list(session)
    login_as(client, session, Role.ADMIN)
    good = b"email\n" + b"".join(b"o%d@example.org\n" % n for n in range(7))
    job_id = job_id_from(upload(client, good))
    imports.start(session, job_id, email_col=0, list_ids=[lst.id], status="pending")
    [stored] = import_dir.iterdir()
    stored.write_bytes(good + b"z@example.org" + b",x" * 150 + b"\n")  # line 9, in the fourth chunk
    session.commit()
    imports.run(session, job_id)
    assert wait_done(client, job_id)["status"] == "failed"
    db.session.expire_all()
    job = session.get(ImportJob, job_id)
    assert (job.error, job.error_params) == ("Line %(line)s has too many columns.", {"line": 9})
    assert job.done_rows == 6 and count(session, Subscriber) == 6 and count(session, Subscription) == 6


def test_addresses_repeated_across_chunks_written_at_once_count_once(client, session, import_dir, app,
                                                                    monkeypatch):
    """Chunks of four rows, written by two connections at once on PostgreSQL, in which the same
    twenty addresses come again and again in other orders: each person created, subscribed
    and recorded once, every other row counted as existing, and no deadlock."""
    monkeypatch.setitem(app.config, "IMPORT_CHUNK", 4)
    lst = make_list(session)
    login_as(client, session, Role.ADMIN)
    addresses = [f"osoba{n}@example.org" for n in range(20)]
    lines = [address for turn in range(10) for address in (addresses if turn % 2 else addresses[::-1])]
    job_id = job_id_from(upload(client, ("email\n" + "\n".join(lines) + "\n").encode()))
    assert start(client, job_id, status="confirmed", consent_source="lista obecności",
                 list_ids=[str(lst.id)]).status_code == 302
    imports.run(session, job_id)
    result = wait_done(client, job_id)
    assert result["status"] == "done" and result["done"] == 200
    assert (result["created"], result["existing"], result["subscribed"]) == (20, 180, 20)
    assert count(session, Subscriber) == 20 and count(session, Subscription) == 20
    assert count(session, ConsentRecord) == 20


@contextmanager
def analyzed(app, monkeypatch):
    """The ANALYZE statements of the import run inside (PostgreSQL), whichever thread runs it,
    listed as they go; chunks of two rows, statistics worth gathering from four."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        if statement.startswith("ANALYZE subscribers"):
            seen.append(statement)

    monkeypatch.setattr(imports.bulk, "ANALYZE_FIRST", 4)
    monkeypatch.setitem(app.config, "IMPORT_CHUNK", 2)
    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


@pytest.mark.parametrize(("already", "rows", "mid_way", "at_the_end"), [
    (0, 24, True, True),  # a new table: gathered as it grows and at the end
    (400, 24, False, False),  # a table the statistics describe: 24 new rows change nothing
    (400, 60, False, True),  # grown by more than a tenth: gathered once, at the end
])
def test_an_import_keeps_the_planners_statistics_current_without_gathering_them_needlessly(
        client, session, import_dir, app, monkeypatch, already, rows, mid_way, at_the_end):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    lst = make_list(session)
    session.execute(text(
        "INSERT INTO subscribers (email, email_hash, name, locale, attributes, search_text, confirm_sent_today,"
        " created_at, updated_at) SELECT 'ktos' || g || '@example.org', md5(g::text), '', 'pl', '{}',"
        " 'ktos' || g, 0, now(), now() FROM generate_series(1, :n) AS g"), {"n": already})
    session.commit()
    session.execute(text("ANALYZE subscribers"))
    session.commit()
    # What the import reads before it starts leaves no transaction open while it runs.
    assert imports.bulk.known_rows(session) == already and not session().in_transaction()
    login_as(client, session, Role.ADMIN)
    job_id = job_id_from(upload(client, ("email\n" + "".join(f"nowy{n}@example.org\n" for n in range(rows))).encode()))
    # Set before the job is queued: the suite's worker (a thread of this process) may take it.
    with analyzed(app, monkeypatch) as seen:
        imports.start(session, job_id, email_col=0, list_ids=[lst.id], status="pending")
        session.commit()
        imports.run(session, job_id)
        assert wait_done(client, job_id)["created"] == rows
    if mid_way:
        assert len(seen) >= 2, seen
    else:
        assert len(seen) == int(at_the_end), seen
    known = imports.bulk.known_rows(session)
    assert (known >= already + rows) if at_the_end else (known == already), known

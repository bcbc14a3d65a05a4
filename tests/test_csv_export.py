"""The subscribers' CSV export: on PostgreSQL the database renders the cells
(``csv_export.sql_cell``, ``sql_iso``), elsewhere the csv module writes them; both must give
the same bytes, hostile values included (formula starts, quotes, commas, line breaks, Polish
letters, JSON written any way)."""

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer import audience, csv_export
from mailer.models import (
    ConsentRecord,
    MailingList,
    Role,
    Subscriber,
    SubscriberTag,
    Subscription,
    SubscriptionStatus,
)
from tests.helpers_staff import login_as, post

HOSTILE = ["=1+1", "+48 600 100 200", "-5", "@SUM(A1)", "\tx", "\rx", "'=już", "a,b", 'say "hi"', "two\nlines",
           "cr\rin", "crlf\r\n", '=HYPERLINK("http://evil","x")', "Zażółć gęślą jaźń", "ŁÓDŹ, Śląsk", " lead",
           "trail ", "\\.", "\\", "emoji 😀", "", "'", '"', ",", "=", "-", "—dash", "\u2028sep", "x\x7f"]
WHEN = [datetime(2026, 11, 29, 4, 5, 6, tzinfo=timezone.utc),  # no microseconds: isoformat leaves them out
        datetime(2026, 3, 1, 23, 59, 59, 10, tzinfo=timezone.utc),
        datetime(999, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc),
        datetime(2026, 6, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2, minutes=-30)))]  # the next day in UTC
RAW_ATTRIBUTES = [  # stored JSON as anything may have written it (PostgreSQL's json keeps the text)
    '{"district" : "Krowodrza", "birth_year" : 1980}', ' {"b":1, "a":2} ', '{"a":1,"a":"=dup"}',
    '{"\\u0141\\u00f3d\\u017a": "\\u017c\\u00f3\\u0142w, \\"x\\"\\n"}',
    '{"f": 1.50, "e": 1E3, "z": -0, "big": 123456789012345678901}',
    '{"n": null, "t": true, "f": false, "l": [1, {"k": "v"}], "o": {"b": 1, "a": 2}}', "{}", "null", "[]", '"=text"',
    "-5", '{"tab":"\\t", "c":"\\u0001"}', '{"emoji": "\\ud83d\\ude00"}']


@pytest.fixture
def hostile(session):
    """Subscribers, lists, tags and consent records with every awkward value, written past the
    checks the forms and the API make (old data, other tools)."""
    lists = [MailingList(name=f"Lista {n}", slug=slug, public=True)
             for n, slug in enumerate(["=lista", "a,b", "zwykła"])]
    session.add_all(lists)
    session.flush()
    statuses = list(SubscriptionStatus)
    for n, text in enumerate(HOSTILE):
        email = ("=" if n % 3 == 0 else "-" if n % 3 == 1 else "") + f"osoba{n}@example.org"
        subscriber = Subscriber(email=email, name=text, locale="@x" if n == 3 else "pl",
                                created_at=WHEN[n % len(WHEN)], attributes={"k": text} if n % 2 else {})
        session.add(subscriber)
        session.flush()
        for m, item in enumerate(lists[: n % 4]):
            session.add(Subscription(subscriber_id=subscriber.id, list_id=item.id, status=statuses[(n + m) % 3],
                                     created_at=WHEN[(n + m) % len(WHEN)],
                                     confirmed_at=WHEN[(n + 1) % len(WHEN)] if n % 2 else None,
                                     unsubscribed_at=WHEN[n % len(WHEN)] if n % 5 == 0 else None))
            session.add(ConsentRecord(subscriber_id=subscriber.id, list_id=item.id, action=text[:32] or "subscribe",
                                      source=HOSTILE[(n + 1) % len(HOSTILE)][:32], consent_version=text[:32],
                                      consent_text="" if n % 2 else "=abc" + str(n), created_at=WHEN[m]))
        for tag in (["=cmd", "a,b", 'x"y'] if n % 4 == 0 else ["prasa"] if n % 4 == 1 else []):
            session.add(SubscriberTag(subscriber_id=subscriber.id, tag=tag))
    session.commit()
    if session.get_bind().dialect.name == "postgresql":  # the stored text itself, as written elsewhere
        ids = session.scalars(sa.select(Subscriber.id).order_by(Subscriber.id)).all()
        for subscriber_id, raw in zip(ids, RAW_ATTRIBUTES, strict=False):
            session.execute(sa.text("UPDATE subscribers SET attributes = CAST(:raw AS json) WHERE id = :id"),
                            {"raw": raw, "id": subscriber_id})
        session.commit()
    return lists


def by_the_csv_module(session, consent: bool = False, **filters) -> str:
    header = audience.EXPORT_HEADER + (audience.CONSENT_HEADER if consent else [])
    return "".join(csv_export.stream(header, audience.export_rows(session, consent=consent, **filters)))


@pytest.mark.parametrize("consent", [False, True])
def test_the_export_is_the_csv_modules_bytes(session, hostile, consent):
    """Whatever renders the cells (PostgreSQL or the csv module), the bytes are the same, and
    they read back as the values with an apostrophe before each formula start."""
    for filters in [{}, {"list_id": hostile[1].id}, {"status": "pending"}, {"tag": "a,b"}, {"query": "osoba1"}]:
        expected = by_the_csv_module(session, consent, **filters)
        assert "".join(audience.export_csv(session, consent=consent, **filters)) == expected, filters
    text = "".join(audience.export_csv(session, consent=consent))
    assert text.startswith("\ufeffemail,name,locale,list,status,") and text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    names = {row[0]: row[1] for row in rows[1:]}
    assert names["'=osoba0@example.org"] == "'=1+1" and names["'-osoba4@example.org"] == "'\tx"
    assert names["osoba8@example.org"] == 'say "hi"' and names["'=osoba9@example.org"] == "two\nlines"
    assert names["osoba14@example.org"] == "ŁÓDŹ, Śląsk"
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    assert len(rows) == 1 + sum(max(1, n % 4) for n in range(len(HOSTILE)))


def test_the_route_streams_the_same_bytes(client, session, hostile):
    """The admin route sends exactly that text, in UTF-8 after a BOM, as a stream."""
    login_as(client, session, Role.ADMIN)
    response = post(client, "/admin/subscribers/export.csv", {"consent_columns": "1"}, page="/admin/subscribers")
    assert response.status_code == 200 and response.is_streamed
    assert response.data.decode("utf-8") == by_the_csv_module(session, consent=True)


def test_pieces_are_bounded(session, hostile, monkeypatch):
    """The text comes in pieces of a bounded number of rows, never the whole file at once."""
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 4)
    pieces = list(audience.export_csv(session, chunk=4))
    rows = sum(max(1, n % 4) for n in range(len(HOSTILE)))
    assert len(pieces) >= rows // 4 and "".join(pieces) == by_the_csv_module(session)


@pytest.mark.one_database("postgresql", "the SQL rendering is PostgreSQL's alone")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
                      | st.sampled_from(HOSTILE), min_size=1, max_size=8))
def test_sql_cell_is_text_cell(session, texts):
    cells = session.execute(sa.select(*(csv_export.sql_cell(sa.literal(t, sa.String)) for t in texts))).one()
    assert list(cells) == [csv_export.text_cell(t) for t in texts]
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_export.escape_cell(t) for t in [*texts, "end"]])
    assert ",".join(cells) + ",end\r\n" == buffer.getvalue()


@pytest.mark.one_database("postgresql", "the SQL rendering is PostgreSQL's alone")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                           timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=45))]))
       | st.sampled_from(WHEN))
def test_sql_iso_is_isoformat(session, moment):
    from mailer.models.types import UTCDateTime

    rendered = session.scalar(sa.select(csv_export.sql_iso(sa.literal(moment, UTCDateTime))))
    assert rendered == moment.astimezone(timezone.utc).isoformat()
    assert session.scalar(sa.select(csv_export.sql_iso(sa.null()))) == ""


@given(text=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00")) | st.sampled_from(HOSTILE))
def test_text_cell_is_what_the_csv_module_writes(text):
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["a", csv_export.escape_cell(text)])
    assert buffer.getvalue() == "a," + csv_export.text_cell(text) + "\r\n"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5), max_leaves=12)


@given(value=JSON_VALUES)
def test_attributes_are_written_as_json_dumps_writes_them(value):
    """The export's JSON (the C encoder called directly) is json.dumps's, sorted keys, letters
    as they are; from stored text with spaces around it too."""
    import json

    expected = json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    assert audience._json(value) == expected
    for raw in (json.dumps(value), f" {json.dumps(value, ensure_ascii=False)}\n"):
        assert audience._json_cell(raw) == (csv_export.text_cell(expected) if expected else "")

"""An audience for the audience benchmarks, made in set-based SQL on PostgreSQL: N subscribers
with Polish names (diacritics included), folded search text, attributes (district, year of
birth), tags on one in ten, subscriptions on two lists in every state, some suppressed and
bounced addresses, and sent deliveries of one old campaign for the engagement conditions."""

import sqlalchemy as sa

from mailer.extensions import db
from mailer.folding import subscriber_text
from mailer.models import MailingList

FIRST = ["Łukasz", "Zofia", "Jan", "Małgorzata", "Paweł", "Żaneta", "Michał", "Agnieszka", "Grzegorz",
         "Katarzyna", "Bartłomiej", "Jolanta", "Ścibor", "Ewa", "Jędrzej", "Anna", "Wojciech", "Urszula"]
LAST = ["Żółkiewski", "Kowalska", "Wiśniewski", "Nowak", "Wójcik", "Kamińska", "Lewandowski", "Zieliński",
        "Szymańska", "Woźniak", "Dąbrowski", "Kozłowska", "Jankowski", "Mazur", "Kwiatkowska", "Krawczyk",
        "Piotrowski", "Grabowska", "Pawłowski", "Michalska", "Król", "Wieczorek", "Jabłoński", "Majewska"]
DISTRICTS = ["Stare Miasto", "Krowodrza", "Podgórze", "Nowa Huta", "Dębniki", "Prądnik Biały", "Bieżanów"]
FOLD_FROM = "ĄĆĘŁŃÓŚŹŻąćęłńóśźż"
FOLD_TO = "acelnoszzacelnoszz"
DOMAIN = "example.org"


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def seed(count: int, first: int = 1) -> None:
    """``count`` subscribers numbered from ``first``, and what hangs on them."""
    name = (f"({_array(FIRST)})[1 + g % {len(FIRST)}] || ' ' || "
            f"({_array(LAST)})[1 + (g / {len(FIRST)}) % {len(LAST)}]")
    db.session.execute(sa.text(
        "INSERT INTO subscribers (email, email_hash, name, locale, attributes, search_text, confirm_sent_today,"
        " created_at, updated_at)"
        f" SELECT 'osoba' || g || '@{DOMAIN}', md5(g::text) || md5('x' || g::text), nm,"
        " CASE WHEN g % 10 = 0 THEN 'en' ELSE 'pl' END,"
        f" json_build_object('district', ({_array(DISTRICTS)})[1 + g % {len(DISTRICTS)}],"
        "   'birth_year', 1940 + g % 70),"
        f" lower(translate('osoba' || g || '@{DOMAIN}' || ' ' || nm, '{FOLD_FROM}', '{FOLD_TO}')),"
        " 0, now() - (g % 1000) * interval '1 hour', now()"
        f" FROM (SELECT g, {name} AS nm"
        " FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g) AS s"),
        {"first": first, "last": first + count - 1})
    db.session.commit()
    sample = db.session.execute(sa.text("SELECT email, name, search_text FROM subscribers ORDER BY id LIMIT 50")).all()
    assert all(row.search_text == subscriber_text(row.email, row.name) for row in sample), "SQL and Python fold differ"


def lists_and_rest(count: int) -> tuple[MailingList, MailingList]:
    """Two lists (everyone confirmed on the first; on the second every third, in all three
    states), tags, suppressions and bounces; VACUUM ANALYZE at the end."""
    everyone = MailingList(name="Wydarzenia w mieście", slug="wydarzenia", public=True)
    concerts = MailingList(name="Koncerty", slug="koncerty", public=True)
    db.session.add_all([everyone, concerts])
    db.session.flush()
    db.session.execute(sa.text(
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)"
        " SELECT id, :list, 'confirmed', created_at, created_at FROM subscribers"), {"list": everyone.id})
    db.session.execute(sa.text(
        "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)"
        " SELECT id, :list, CASE id % 9 WHEN 0 THEN 'pending' WHEN 3 THEN 'unsubscribed' ELSE 'confirmed' END,"
        " created_at, created_at FROM subscribers WHERE id % 3 = 0"), {"list": concerts.id})
    db.session.execute(sa.text(
        "INSERT INTO subscriber_tags (subscriber_id, tag, created_at)"
        " SELECT id, CASE WHEN id % 20 = 0 THEN 'wolontariusz' ELSE 'prasa' END, now()"
        " FROM subscribers WHERE id % 10 = 0"))
    db.session.execute(sa.text(
        "INSERT INTO suppressions (email_hash, reason, created_at)"
        " SELECT email_hash, 'bounced', now() FROM subscribers WHERE id % 200 = 0"))
    db.session.execute(sa.text(
        "INSERT INTO bounce_events (kind, source, matched_by, subscriber_id, status, diagnostic, feedback_type,"
        " report_key, raw_size, raw_sha256, raw_excerpt, created_at)"
        " SELECT 'hard', 'smtp', 'verp', id, '5.1.1', 'user unknown', '', md5('b' || id), 0, '', '', now()"
        " FROM subscribers WHERE id % 200 = 0"))
    db.session.commit()
    settle()
    return everyone, concerts


def settle() -> None:
    """VACUUM ANALYZE and CHECKPOINT, as bench.seed does: statistics and visibility map
    current, the load's dirty pages written out before a timing."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        conn.execute(sa.text("CHECKPOINT"))

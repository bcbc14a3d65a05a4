"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from mailer import create_app
from mailer.extensions import db
from tests.conftest import RUN_ID, pg_url


def fresh_database(database_url: str, tmp_path):
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'migrated.sqlite'}", None
    name = f"mailer_mig_{RUN_ID}"
    admin = sa.create_engine(pg_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return pg_url(name).render_as_string(hide_password=False), drop


def test_upgrade_matches_models_and_downgrade_empties(app_instance, database_url, tmp_path):
    url, drop = fresh_database(database_url, tmp_path)
    # The run's own settings (extensions such as the rate limiter are process-wide), another database.
    settings = {key: value for key, value in app_instance.config.items() if key.isupper()}
    app = create_app("test", {**settings, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            upgrade()
            with db.engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
                builtins = conn.execute(sa.text(
                    "SELECT name, kind, layout_id IS NOT NULL FROM templates WHERE builtin ORDER BY id")).all()
            assert diff == [], f"models and migrations differ: {diff}"
            if db.engine.dialect.name == "postgresql":  # what compare_metadata does not look at
                assert _access_methods(db.engine) == {
                    index.name: index.dialect_options["postgresql"]["using"] or "btree"
                    for table in db.metadata.tables.values() for index in table.indexes}
                assert _fill_factors(db.engine) == {
                    name: table.dialect_options["postgresql"]["with"].get("fillfactor")
                    for name, table in db.metadata.tables.items()
                    if table.dialect_options["postgresql"]["with"]}
            # The built-in email templates are data of revision 0003, as the files ship them.
            assert [tuple(row) for row in builtins] == [
                ("Układ podstawowy", "layout", False), ("Zapowiedź wydarzenia", "content", True),
                ("Przegląd wydarzeń", "content", True)]
            downgrade(revision="base")
            with db.engine.connect() as conn:
                assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
            db.engine.dispose()
    finally:
        if drop:
            drop()


def _access_methods(engine) -> dict[str, str]:
    """Each named index that is not a key's, with its access method (btree, hash, gin)."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT i.relname, am.amname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_am am ON am.oid = i.relam JOIN pg_namespace n ON n.oid = i.relnamespace"
            " WHERE n.nspname = 'public' AND i.relname LIKE 'ix\\_%'")).all())


def _fill_factors(engine) -> dict[str, int]:
    """Each table given a fill factor, with it."""
    with engine.connect() as conn:
        return {name: int(option.split("=")[1]) for name, options in conn.execute(sa.text(
            "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.reloptions IS NOT NULL")).all()
            for option in options if option.startswith("fillfactor=")}


# Values for the columns whose type the database forgets (enums stored as strings).
KNOWN = {"status": {"campaigns": "draft", "import_jobs": "done"}, "kind": {"templates": "content"},
         "role": {"users": "admin"}}


def _fill(conn) -> dict[str, int]:
    """A row in every table of the schema as it stands (parents first, each foreign key
    pointing at its parent's row); the count of rows per table."""
    meta = sa.MetaData()
    meta.reflect(conn)
    counts = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version":
            continue
        row = {}
        for column in table.columns:
            if column.foreign_keys:
                row[column.name] = 1
            elif column.nullable or column.server_default is not None:
                continue
            elif column.name in KNOWN and table.name in KNOWN[column.name]:
                row[column.name] = KNOWN[column.name][table.name]
            elif isinstance(column.type, sa.Boolean):
                row[column.name] = False
            elif isinstance(column.type, (sa.Integer, sa.Numeric)):
                row[column.name] = 1
            elif isinstance(column.type, sa.DateTime) or "time" in str(column.type).lower():
                row[column.name] = datetime(2026, 1, 1, tzinfo=timezone.utc)
            elif isinstance(column.type, sa.JSON) or "json" in str(column.type).lower():
                row[column.name] = {}
            else:
                row[column.name] = f"{table.name}-{column.name}"[: getattr(column.type, "length", None) or 64]
        conn.execute(table.insert().values(**row))
        counts[table.name] = conn.scalar(sa.select(sa.func.count()).select_from(table))
    return counts


def test_upgrades_keep_every_row(app_instance, database_url, tmp_path):
    """Every revision after the first keeps the rows it finds: a table rebuilt on SQLite must
    not cascade deletes to the tables that point at it."""
    url, drop = fresh_database(database_url, tmp_path)
    settings = {key: value for key, value in app_instance.config.items() if key.isupper()}
    app = create_app("test", {**settings, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            upgrade(revision="0001")
            with db.engine.begin() as conn:
                before = _fill(conn)
            upgrade()
            with db.engine.connect() as conn:
                after = {name: conn.scalar(sa.text(f'SELECT count(*) FROM "{name}"')) for name in before}
            assert {name: after[name] >= count for name, count in before.items()} == dict.fromkeys(before, True), after
            db.engine.dispose()
    finally:
        if drop:
            drop()


def test_idn_addresses_are_found_by_their_letters_after_0011(app_instance, database_url, tmp_path):
    """A subscriber stored as jan@xn--d-uga0v4h.pl before 0011 is found by "łódź" after it."""
    url, drop = fresh_database(database_url, tmp_path)
    settings = {key: value for key, value in app_instance.config.items() if key.isupper()}
    app = create_app("test", {**settings, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            upgrade(revision="0010")
            with db.engine.begin() as conn:
                table = sa.Table("subscribers", sa.MetaData(), autoload_with=conn)
                values = {"email": "jan@xn--d-uga0v4h.pl", "email_hash": "h1", "name": "Jan",
                          "search_text": "jan@xn--d-uga0v4h.pl jan", "attributes": "{}"}
                for column in table.columns:  # whatever else may not be NULL
                    if column.name not in values and not column.nullable and not column.primary_key:
                        integer = isinstance(column.type, sa.Integer)
                        values[column.name] = (datetime.now(timezone.utc) if column.name.endswith("_at")
                                               else 0 if integer else "pl" if column.name == "locale" else "x")
                conn.execute(table.insert().values(**values))
            upgrade()
            with db.engine.connect() as conn:
                text = conn.scalar(sa.text("SELECT search_text FROM subscribers"))
            assert "jan@lodz.pl" in text and "xn--d-uga0v4h" in text
            db.engine.dispose()
    finally:
        if drop:
            drop()

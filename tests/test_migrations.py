"""The Alembic migrations build exactly the schema the models describe, on both databases."""

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

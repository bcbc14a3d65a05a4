"""Unbound Flask extensions, wired to the app in ``create_app``."""

from typing import TYPE_CHECKING, cast

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
# The models' base. At run time Flask-SQLAlchemy's db.Model (made from Base); type checkers
# cannot follow that dynamic class, and see Base, of which it is a subclass.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
# db.session, typed as the Session it stands for: the scoped session forwards every Session
# method to the current request's or task's session. Views pass it to the domain functions.
db_session = cast(Session, db.session)
migrate = Migrate()
csrf = CSRFProtect()
babel = Babel()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)


# A pooled connection idle longer than this is tried before it is handed out (see below).
PING_IDLE_SECONDS = 1.0


def configure_engine(engine: Engine) -> None:
    """SQLite: WAL and a busy timeout so the web process and workers can share the file.
    Others: a connection that sat in the pool over PING_IDLE_SECONDS is tried (a round trip)
    before it is handed out, and replaced if the server dropped it (a restart, a failover);
    one used moments ago is not. SQLAlchemy's ``pool_pre_ping`` tries every one: with the
    cursor psycopg makes for it, a fifth of a web worker's CPU a sign-up (py-spy, GIL
    samples), and a round trip that every request waited for."""
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        import time

        from sqlalchemy.exc import DisconnectionError

        @event.listens_for(engine, "checkin")
        def _checked_in(_dbapi_connection, record):
            record.info["mailer.checked_in"] = time.monotonic()

        @event.listens_for(engine, "checkout")
        def _try_if_idle(dbapi_connection, record, _proxy):
            since = record.info.get("mailer.checked_in")  # none yet: connected just now
            if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
                return
            try:
                engine.dialect.do_ping(dbapi_connection)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError("the server dropped an idle connection") from exc  # the pool reconnects

        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

"""The newsletter and event-announcement service: ``create_app`` only."""

import os

from flask import Flask

from config import CONFIGS, ROOT


def create_app(config_name: str | None = None, overrides: dict | None = None) -> Flask:
    """Build the Flask app for ``config_name`` (default: ``MAILER_ENV`` or development)."""
    config = CONFIGS[config_name or os.environ.get("MAILER_ENV", "development")]()
    config.check()
    app = Flask(__name__, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"), instance_path=str(config.INSTANCE_DIR))
    app.config.from_object(config)
    app.config.update(overrides or {})
    os.makedirs(app.instance_path, exist_ok=True)
    if app.config["PROXY_FIX_HOPS"]:
        from .web.proxies import TrustedProxyFix

        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, app.config["PROXY_FIX_HOPS"], app.config["TRUSTED_PROXIES"])

    from . import cli, jobs
    from .extensions import babel, configure_engine, csrf, db, limiter, login_manager, migrate
    from .web import i18n, register_blueprints

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale)
    login_manager.init_app(app)
    limiter.init_app(app)
    jobs.init_app(app)
    register_blueprints(app)
    cli.init_app(app)
    return app

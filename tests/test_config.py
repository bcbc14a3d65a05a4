"""Configuration: the embedded default, and production's refusal of defaults."""

import subprocess
import sys

from config import ROOT


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    clean = {"PATH": "/usr/bin:/bin", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_the_default_secret():
    result = run_python("from mailer import create_app; create_app('production')",
                        {"MAILER_ENV": "production"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_secret(tmp_path):
    code = "from mailer import create_app; app = create_app('production'); print(app.config['SECRET_KEY'][:4])"
    result = run_python(code, {"SECRET_KEY": "x" * 40, "SUPPRESSION_KEY": "y" * 40, "INSTANCE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "xxxx"


def test_embedded_default_needs_no_server(tmp_path):
    code = ("from mailer import create_app; c = create_app().config; "
            "print(c['SQLALCHEMY_DATABASE_URI']); print(c['CELERY']['broker_url']); "
            "print(c['RATELIMIT_STORAGE_URI']); print(c['SMTP_URL'] or 'outbox')")
    result = run_python(code, {"INSTANCE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    db_url, broker, limits, mail = result.stdout.split()
    assert db_url == f"sqlite:///{tmp_path}/mailer.sqlite"
    assert broker == f"sqla+sqlite:///{tmp_path}/broker.sqlite"
    assert limits == "memory://" and mail == "outbox"


def test_environment_moves_it_to_real_servers(tmp_path):
    code = ("from mailer import create_app; c = create_app().config; "
            "print(c['SQLALCHEMY_DATABASE_URI']); print(c['CELERY']['broker_url']); print(c['RATELIMIT_STORAGE_URI'])")
    env = {"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": "postgresql://u@db.example/mailer",
           "REDIS_URL": "redis://cache.example:6379/2"}
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["postgresql+psycopg://u@db.example/mailer",
                                     "redis://cache.example:6379/2", "redis://cache.example:6379/2"]


def test_production_refuses_a_suppression_key_tied_to_the_secret(tmp_path):
    """Rotating SECRET_KEY must never forget who was erased or bounced: production needs a
    SUPPRESSION_KEY of its own, different from every SECRET_KEY in use."""
    code = "from mailer import create_app; create_app('production')"
    secret = {"SECRET_KEY": "x" * 40, "INSTANCE_DIR": str(tmp_path)}
    for extra in ({}, {"SUPPRESSION_KEY": "short"}, {"SUPPRESSION_KEY": "x" * 40},
                  {"SUPPRESSION_KEY": "z" * 40, "SECRET_KEY_FALLBACKS": "z" * 40}):
        result = run_python(code, {**secret, **extra})
        assert result.returncode != 0 and "SUPPRESSION_KEY" in result.stderr, extra


def test_rotating_the_secret_keeps_the_suppression_list(tmp_path):
    """The README's rotation: a new SECRET_KEY, the old one in SECRET_KEY_FALLBACKS, the same
    SUPPRESSION_KEY. An address erased before is still suppressed after."""
    code = ("from mailer import create_app; from mailer.subscribers import email_hash; "
            "app = create_app('production');\nwith app.app_context(): print(email_hash('erased@example.org'))")
    base = {"SUPPRESSION_KEY": "s" * 40, "INSTANCE_DIR": str(tmp_path)}
    before = run_python(code, {**base, "SECRET_KEY": "a" * 40})
    after = run_python(code, {**base, "SECRET_KEY": "b" * 40, "SECRET_KEY_FALLBACKS": "a" * 40})
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout

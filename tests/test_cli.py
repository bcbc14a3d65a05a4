"""The staff commands: users create, tokens create (and demo still works)."""

from sqlalchemy import select

from mailer import users
from mailer.models import ApiToken, Role, User


def run(app, *args, env=None, input=None):
    return app.test_cli_runner().invoke(args=list(args), env=env or {}, input=input)


def test_create_admin_with_password_from_env(app, session):
    result = run(app, "users", "create", "Kierownik@Example.org", "--role", "admin",
                 env={"MAILER_PASSWORD": "bardzo tajne hasło"})
    assert result.exit_code == 0, result.output
    user = session.scalar(select(User).where(User.email == "kierownik@example.org"))
    assert user.role == Role.ADMIN and user.password_hash.startswith("$argon2id$")
    assert users.authenticate(session, "kierownik@example.org", "bardzo tajne hasło") is not None


def test_create_editor_with_prompted_password(app, session):
    result = run(app, "users", "create", "redaktor@example.org", "--role", "editor",
                 env={"MAILER_PASSWORD": ""}, input="hasło z pytania\nhasło z pytania\n")
    assert result.exit_code == 0, result.output
    assert session.scalar(select(User.role).where(User.email == "redaktor@example.org")) == Role.EDITOR


def test_bad_input_exits_non_zero_with_a_message(app, session):
    env = {"MAILER_PASSWORD": "bardzo tajne hasło"}
    result = run(app, "users", "create", "nie-adres", "--role", "admin", env=env)
    assert result.exit_code != 0 and "not valid" in result.output
    result = run(app, "users", "create", "a@example.org", "--role", "root", env=env)
    assert result.exit_code != 0 and "root" in result.output
    result = run(app, "users", "create", "a@example.org", "--role", "admin", env={"MAILER_PASSWORD": "krótkie"})
    assert result.exit_code != 0 and "10 characters" in result.output
    assert run(app, "users", "create", "a@example.org", "--role", "admin", env=env).exit_code == 0
    result = run(app, "users", "create", "a@example.org", "--role", "editor", env=env)
    assert result.exit_code != 0 and "exists" in result.output
    assert session.scalar(select(User.role).where(User.email == "a@example.org")) == Role.ADMIN


def test_tokens_create_prints_a_working_token(app, session):
    users.create_user(session, "cms@example.org", "bardzo tajne hasło", Role.EDITOR)
    session.commit()
    result = run(app, "tokens", "create", "cms@example.org", "--name", "CMS")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("mlr_")
    assert users.user_for_token(session, token).email == "cms@example.org"
    assert session.scalar(select(ApiToken.name)) == "CMS"
    assert token not in (session.scalar(select(ApiToken.token_hash)) or "")


def test_tokens_create_refuses_unknown_or_inactive_users(app, session):
    result = run(app, "tokens", "create", "nikt@example.org")
    assert result.exit_code != 0 and "No staff member" in result.output
    user = users.create_user(session, "byly@example.org", "bardzo tajne hasło", Role.EDITOR)
    user.active = False
    session.commit()
    result = run(app, "tokens", "create", "byly@example.org")
    assert result.exit_code != 0 and "deactivated" in result.output
    assert session.scalar(select(ApiToken.id)) is None


def test_demo_still_works(app, session):
    result = run(app, "demo")
    assert result.exit_code == 0 and "admin@example.org" in result.output
    assert "Demo admin: admin@example.org / " in demo_banner(app)


def demo_banner(app) -> str:
    from pathlib import Path

    from mailer import demo

    return demo.banner("http://127.0.0.1:5000", Path(app.instance_path))


def test_the_demo_password_is_kept_until_changed(app, session, tmp_path):
    from mailer import demo

    email, first = demo.seed(session, tmp_path)
    stored = tmp_path / demo.PASSWORD_FILE
    assert first and stored.read_text().strip() == first and stored.stat().st_mode & 0o777 == 0o600
    assert demo.seed(session, tmp_path) == (email, first)  # the same on every start
    assert users.authenticate(session, email, first) is not None
    stored.chmod(0o644)
    demo.seed(session, tmp_path)
    assert stored.stat().st_mode & 0o777 == 0o600
    admin = session.scalar(select(User).where(User.email == email))
    users.set_password(admin, "moje własne hasło")  # changed at /admin/account
    session.commit()
    assert demo.seed(session, tmp_path) == (email, None)  # never shown nor reset again
    assert not stored.exists()
    assert users.authenticate(session, email, "moje własne hasło") is not None
    assert "its password was changed" in demo.banner("http://127.0.0.1:5000", tmp_path)

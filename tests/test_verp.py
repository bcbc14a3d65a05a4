"""Signed return paths (mailer/verp.py): built, read back, refused when forged."""

from mailer.verp import DELIVERY, SUBSCRIBER, ReturnPath, Verp

CONFIG = {"MAIL_DOMAIN": "Miasto.Example.PL", "SECRET_KEY": "secret-one"}


def test_round_trip_and_case_insensitivity():
    verp = Verp(CONFIG)
    path = verp.return_path(DELIVERY, 123456789)
    assert path.startswith("bounces+d") and path.endswith("@miasto.example.pl")
    assert verp.read(path) == ReturnPath(DELIVERY, 123456789)
    assert verp.read(path.upper()) == ReturnPath(DELIVERY, 123456789)  # MTAs may change the case
    assert verp.read(f"<{path}>") == ReturnPath(DELIVERY, 123456789)
    assert verp.read(verp.return_path(SUBSCRIBER, 7)) == ReturnPath(SUBSCRIBER, 7)


def test_forged_altered_or_foreign_paths_are_refused():
    verp = Verp(CONFIG)
    path = verp.return_path(DELIVERY, 42)
    local, domain = path.split("@")
    token = local.split("+")[1]
    assert verp.read(path.replace(token, token.replace("d", "s", 1))) is None  # kind changed
    assert verp.read(f"bounces+d43-{token.split('-')[1]}@{domain}") is None  # id changed
    assert verp.read(path.replace(domain, "elsewhere.example")) is None
    assert verp.read(f"bounces@{domain}") is None and verp.read("") is None and verp.read(None) is None
    assert Verp({**CONFIG, "SECRET_KEY": "another"}).read(path) is None


def test_old_secret_still_verifies_after_a_rotation():
    old = Verp(CONFIG).return_path(DELIVERY, 5)
    rotated = Verp({**CONFIG, "SECRET_KEY": "secret-two", "SECRET_KEY_FALLBACKS": ["secret-one"]})
    assert rotated.read(old) == ReturnPath(DELIVERY, 5)
    assert Verp(CONFIG).read(rotated.return_path(DELIVERY, 5)) is None


def test_configured_bounce_address():
    verp = Verp({**CONFIG, "BOUNCE_ADDRESS": "zwroty@bounce.miasto.example.pl"})
    path = verp.return_path(DELIVERY, 1)
    assert path.startswith("zwroty+") and path.endswith("@bounce.miasto.example.pl")
    assert verp.address == "zwroty@bounce.miasto.example.pl"

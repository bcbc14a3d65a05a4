"""The README's settings table says what config.py does: every variable it lists is read,
with the default it states, so the two cannot drift apart again (the README once said
`SMTP_MAX_CONNECTIONS` was unlimited by default while config.py set 4)."""

import re
from pathlib import Path

import pytest

import mailer
from config import Config

ROOT = Path(__file__).resolve().parent.parent
SOURCES = "".join((ROOT / path).read_text(encoding="utf-8") for path in ["config.py", "mailer/__init__.py"])

# Variables whose setting has another name (or is derived) in the configuration.
DERIVED = {
    "STAFF_SESSION_HOURS": lambda c: c.PERMANENT_SESSION_LIFETIME // 3600,
    "DEFAULT_LOCALE": lambda c: c.BABEL_DEFAULT_LOCALE,
    "PORT": lambda c: int(c.BASE_URL.rsplit(":", 1)[1]),
    "DATABASE_URL": lambda c: c.SQLALCHEMY_DATABASE_URI,
    "MAILER_ENV": lambda c: re.search(r'os\.environ\.get\("MAILER_ENV", "(\w+)"\)',
                                      Path(mailer.__file__).read_text(encoding="utf-8")).group(1),
}


def split_cell(cell: str) -> list[str]:
    """Comma-separated values, commas inside `code` kept."""
    parts, current, in_code = [], "", False
    for char in cell:
        if char == "`":
            in_code = not in_code
        if char == "," and not in_code:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def settings_table() -> list[tuple[str, str]]:
    """(variable, stated default) for each variable of the README's Configuration table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) > 30
    pairs = []
    for row in rows:
        names_cell, default_cell = [cell.strip() for cell in row.strip("|").split(" | ")[:2]]
        names = re.findall(r"`([A-Z0-9_*]+)`", names_cell)
        defaults = split_cell(default_cell)
        assert len(defaults) in (1, len(names)), f"{row}: give one default, or one per variable"
        for index, name in enumerate(names):
            pairs.append((name, defaults[index] if len(defaults) > 1 else defaults[0]))
    return pairs


def actual(name: str):
    config = Config({})  # nothing set in the environment
    if name in DERIVED:
        return DERIVED[name](config)
    return getattr(config, name)


def matches(stated: str, value) -> bool:
    literal = stated.split(" (", 1)[0].strip()
    if literal in {"none", "off"}:
        return value in ("", None, [], False, 0)
    if literal == "on":
        return value is True
    if literal == "unlimited":
        return value == 0  # config.py: 0 means no limit
    if re.fullmatch(r"`?-?\d+(\.\d+)?`?", literal):
        return not isinstance(value, (bool, str)) and float(literal.strip("`")) == float(value)
    if literal.startswith("`") and literal.endswith("`"):
        code = literal[1:-1]
        if re.search(r"\b[A-Z][A-Z0-9_]{2,}\b", code):  # "`bounces@MAIL_DOMAIN`", "`SECRET_KEY`": derived
            return value in ("", None) or re.sub(r"\$([A-Z_]+)", lambda m: str(actual(m.group(1))), code) == value
        shown = ",".join(value) if isinstance(value, list) else str(value)
        return shown == code
    return True  # a description in words ("a development key", "SQLite in `instance/`")


SETTINGS = [(name, stated) for name, stated in settings_table() if "*" not in name]


@pytest.mark.parametrize("name, stated", SETTINGS, ids=[name for name, _ in SETTINGS])
def test_readme_states_the_default_config_uses(name, stated):
    assert f'"{name}"' in SOURCES or f"'{name}'" in SOURCES, f"{name} is documented but never read"
    value = actual(name)
    assert matches(stated, value), f"README says {name} defaults to {stated!r}; config.py gives {value!r}"


@pytest.mark.parametrize("stated, value, expected", [
    ("unlimited", 4, False), ("4", 4, True), ("`2525`", 2525, True), ("off", False, True), ("on", False, False),
    ("none (outbox folder)", "", True), ("`pl`", "en", False),
    ("`127.0.0.1/8,::1/128`", ["127.0.0.1/8", "::1/128"], True),
    ("`SECRET_KEY` (not in production)", "", True), ("0.25", 0.25, True), ("3", 0.25, False),
])
def test_the_comparison_itself(stated, value, expected):
    assert matches(stated, value) is expected

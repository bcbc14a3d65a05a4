"""The Polish catalogues are complete: every entry translated (no empty msgstr, no fuzzy
one), and every string the code and the templates mark for translation is in one of them
(found with Babel's own extraction, as ``pybabel extract`` would)."""

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = sorted(ROOT.glob("translations/*/pl/LC_MESSAGES/messages.po"))
# What marks a string in this project: Flask-Babel's functions, under their usual aliases.
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None,
            "lazy_ngettext": (1, 2), "pgettext": ((1, "c"), 2), "lazy_pgettext": ((1, "c"), 2),
            "_lp": ((1, "c"), 2), "N_": None}
METHODS = [("mailer/**.py", "python"), ("worker/**.py", "python"),
           ("templates/**.html", "jinja2.ext:babel_extract"), ("templates/**.txt", "jinja2.ext:babel_extract")]


def read(path: Path):
    with open(path, "rb") as handle:
        return read_po(handle, locale="pl")


def catalogued() -> set[str]:
    return {message.id if isinstance(message.id, str) else message.id[0]
            for path in CATALOGUES for message in read(path) if message.id}


def marked() -> dict[str, str]:
    """msgid (the singular of a plural) -> where it is marked."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), METHODS, keywords=KEYWORDS, comment_tags=(), strip_comment_tags=True):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parts[-4])
def test_every_entry_is_translated(path):
    catalogue = read(path)
    problems = []
    for message in catalogue:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, (list, tuple)) else [message.string]
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        elif not all(strings) or (message.pluralizable and len(strings) < catalogue.num_plurals):
            problems.append(f"untranslated: {message.id!r}")
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_every_marked_string_is_in_a_catalogue():
    found = marked()
    assert len(found) > 300  # the extraction sees the code and the templates
    missing = {msgid: where for msgid, where in found.items() if msgid not in catalogued()}
    assert not missing, "add these to a translations/<area>/pl catalogue:\n" + "\n".join(
        f"{msgid!r}  ({where})" for msgid, where in sorted(missing.items(), key=lambda item: item[1]))


def test_one_message_one_translation():
    """Catalogues are merged at run time, so a message two areas translate differently is
    shown one way or the other by chance: such a message needs a context (pgettext) instead."""
    seen: dict[tuple, tuple[str, str]] = {}
    clashes = []
    for path in CATALOGUES:
        for message in read(path):
            if not message.id:
                continue
            key = (message.context, message.id if isinstance(message.id, str) else message.id[0])
            strings = message.string if isinstance(message.string, str) else tuple(message.string)
            if key in seen and seen[key][0] != strings:
                clashes.append(f"{key[1]!r}: {seen[key][0]!r} ({seen[key][1]}) vs {strings!r} ({path.parts[-4]})")
            seen.setdefault(key, (strings, path.parts[-4]))
    assert not clashes, "\n".join(clashes)

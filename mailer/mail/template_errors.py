"""Jinja's syntax errors in words staff can act on, in their language.

Jinja writes its messages in English ("unexpected end of template", "expected token 'end of
print statement', got 'y'", "Encountered unknown tag 'foo'"). ``describe`` turns the common
ones into a catalogue message id with language-neutral parameters (the line, a tag's name, the
characters expected), so the web layer translates them like any domain error; an unknown
message keeps Jinja's text behind the generic one. The line number is always kept.
"""

import re
from typing import Any

from jinja2 import TemplateSyntaxError

from ..errors import InvalidInput

# Jinja's names of tokens, as the characters a person types.
_TOKENS = {
    "end of print statement": "}}", "end of statement block": "%}", "begin of print statement": "{{",
    "begin of statement block": "{%", "end of template": "—", "(": "(", ")": ")",
    "[": "[", "]": "]", "{": "{", "}": "}", ",": ",", ":": ":", "|": "|", "=": "=",
}

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Unexpected end of template\. Jinja was looking for the following tags: .*?"
                r"The innermost block that needs to be closed is '(?P<block>\w+)'\."),
     "Template syntax error on line %(line)s: the “%(block)s” block is not closed; end it with "
     "{%% end%(block)s %%}."),
    (re.compile(r"Encountered unknown tag '(?P<tag>[^']+)'\. Jinja was looking for the following tags: .*?"
                r"The innermost block that needs to be closed is '(?P<block>\w+)'\."),
     "Template syntax error on line %(line)s: “%(tag)s” does not close the open “%(block)s” block "
     "(close it with {%% end%(block)s %%} first)."),
    (re.compile(r"Encountered unknown tag '(?P<tag>[^']+)'\.?"),
     "Template syntax error on line %(line)s: unknown tag “%(tag)s” (or a closing tag without its "
     "opening one)."),
    (re.compile(r"[Uu]nexpected end of template.*"),
     "Template syntax error on line %(line)s: the template ends too early (a tag or an expression "
     "is not closed)."),
    (re.compile(r"expected token 'name', got '(?P<found>[^']+)'"),
     "Template syntax error on line %(line)s: a name is missing before “%(found)s”."),
    (re.compile(r"expected token '(?P<expected>[^']+)', got '(?P<found>[^']+)'"),
     "Template syntax error on line %(line)s: expected “%(expected)s” but found “%(found)s”."),
    (re.compile(r"unexpected '(?P<found>[^']+)', expected '(?P<expected>[^']+)'"),
     "Template syntax error on line %(line)s: expected “%(expected)s” but found “%(found)s”."),
    (re.compile(r"Expected an expression, got '(?P<found>[^']+)'"),
     "Template syntax error on line %(line)s: a value is missing before “%(found)s”."),
    (re.compile(r"unexpected '(?P<found>[^']+)'"),
     "Template syntax error on line %(line)s: unexpected “%(found)s”."),
    (re.compile(r"unexpected char '(?P<found>.+)' at \d+"),
     "Template syntax error on line %(line)s: unexpected character “%(found)s” (an unclosed quote?)."),
    (re.compile(r"Missing end of comment tag"),
     "Template syntax error on line %(line)s: a comment {# is not closed with #}."),
]
GENERIC = "Template syntax error on line %(line)s: %(detail)s"


def _token(name: str) -> str:
    return _TOKENS.get(name, name)


def describe(error: TemplateSyntaxError) -> tuple[str, dict[str, Any]]:
    """A message id and its parameters for ``error`` (Jinja's text kept for unknown ones)."""
    text = error.message or ""
    line = error.lineno
    for pattern, msgid in _RULES:
        match = pattern.fullmatch(text.strip())
        if match:
            params = dict(match.groupdict())
            for key in ("expected", "found"):
                if key in params:
                    params[key] = _token(params[key])
            return msgid, {"line": line, **params}
    return GENERIC, {"line": line, "detail": text}


def invalid_input(error: TemplateSyntaxError, field: str) -> InvalidInput:
    """``error`` as the domain error the template's ``field`` is refused with."""
    msgid, params = describe(error)
    return InvalidInput(msgid, field, **params)

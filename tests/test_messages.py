"""Every message a domain error can carry has a Polish translation, and is a literal the
catalogues can hold (an f-string would only match its catalogue entry by accident)."""

import ast
import re
from pathlib import Path

from babel.messages.pofile import read_po

from mailer import campaign_states, errors, lookups
from mailer.mail import template_errors
from mailer.web.api import spec

ROOT = Path(__file__).resolve().parent.parent
# Calls whose message is not a literal, and why that is fine (checked otherwise, or not ours).
NOT_LITERAL = {
    # their messages are checked below, one by one (lookups.MISSING, spec's tables)
    ("mailer/lookups.py", "NotFound"),
    ("mailer/web/api/spec.py", "InvalidInput"),
    ("mailer/campaign_states.py", "Conflict"),  # campaign_states.MOVES, checked below
    ("mailer/mail/template_errors.py", "InvalidInput"),  # template_errors._RULES, checked below
    # the lead's rewrite of the mail layer replaces this one (it is caught and re-raised with
    # a literal message by email_templates.safe_compile in every path staff can reach)
    ("mailer/mail/render.py", "InvalidInput"),
}


def error_classes() -> set[str]:
    found, todo = set(), [errors.DomainError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def module_constants(tree: ast.Module) -> dict[str, str]:
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def raised_messages() -> tuple[dict[str, list[str]], list[str]]:
    """msgid -> where it is used; and the calls whose message is not a literal."""
    names = error_classes()
    messages: dict[str, list[str]] = {}
    odd = []
    for path in sorted((ROOT / "mailer").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = module_constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in names:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                messages.setdefault(first.value, []).append(f"{relative}:{node.lineno}")
            elif isinstance(first, ast.Name) and first.id in constants:
                messages.setdefault(constants[first.id], []).append(f"{relative}:{node.lineno}")
            elif (relative, name) not in NOT_LITERAL:
                odd.append(f"{relative}:{node.lineno} {ast.unparse(first)[:60]}")
    tables = {"mailer/lookups.py MISSING": lookups.MISSING.values(),
              "mailer/campaign_states.py MOVES": [why for _, _, why in campaign_states.MOVES.values()],
              "mailer/mail/template_errors.py": [msgid for _, msgid in template_errors._RULES] + [template_errors.GENERIC],
              "mailer/web/api/spec.py": [*spec.BODY_MESSAGES.values(), *spec.PARAMETER_MESSAGES.values(),
                                         spec.DATETIME_MESSAGE, spec.PARAMETER_MESSAGE, spec.UNKNOWN_MESSAGE]}
    for where, values in tables.items():
        for message in values:
            messages.setdefault(message, []).append(where)
    return messages, odd


def polish_catalogue() -> dict[str, str]:
    translated = {}
    for path in sorted(ROOT.glob("translations/*/pl/LC_MESSAGES/messages.po")):
        with open(path, "rb") as handle:
            for message in read_po(handle):
                if message.id and message.string and not message.fuzzy:
                    translated[message.id] = message.string
    return translated


def test_domain_error_messages_are_literals():
    _messages, odd = raised_messages()
    assert not odd, "domain errors whose message is not a literal msgid:\n" + "\n".join(odd)


def test_every_domain_error_message_has_a_polish_translation():
    messages, _odd = raised_messages()
    assert len(messages) > 100  # the scan finds them
    catalogue = polish_catalogue()
    missing = {msgid: where for msgid, where in messages.items() if msgid not in catalogue}
    assert not missing, "add these to a translations/<area>/pl catalogue:\n" + "\n".join(
        f"{msgid!r}  ({', '.join(where)})" for msgid, where in sorted(missing.items()))


def test_placeholders_survive_translation():
    catalogue = polish_catalogue()
    messages, _odd = raised_messages()
    for msgid in messages:
        if msgid in catalogue and "%(" in msgid:
            params = {name: "x" for name in re.findall(r"%\((\w+)\)s", msgid)}
            assert catalogue[msgid] % params, msgid

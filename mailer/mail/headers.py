"""The list headers every mail to a subscriber carries (RFC 2369, 2919, 8058), from plain values."""

from dataclasses import dataclass

from .message import check_header_value, encoded_words


@dataclass(frozen=True)
class ListSettings:
    label: str  # the list's name, shown by mail clients
    slug: str
    namespace: str  # List-Id domain (LIST_ID_NAMESPACE, default MAIL_DOMAIN)
    mailto: str = ""  # UNSUBSCRIBE_MAILTO: also offered in List-Unsubscribe
    feedback_sender: str = ""  # FEEDBACK_ID_SENDER
    feedback_kind: str = "notice"  # campaign<id> or notice: no subscriber in it


def list_id(label: str, slug: str, namespace: str) -> str:
    """``List-Id: Label <slug.namespace>``, folded; a non-ASCII label becomes encoded words
    (each at most 75 characters). Raises InvalidInput on CR/LF in the label."""
    check_header_value(label)
    phrase = label.replace('"', "'").replace("\\", "")
    phrase = f'"{phrase}"' if phrase.isascii() else encoded_words(phrase)
    return f"{phrase}\r\n <{slug}.{namespace}>"


def list_headers(settings: ListSettings) -> tuple[list[tuple[str, str]], str]:
    """The fixed list headers (List-Unsubscribe-Post, List-Id, Feedback-ID when a sender id
    is set) and what follows each recipient's ``<url>`` in List-Unsubscribe (an optional
    mailto). The URL itself is the recipient's (``Skeleton.render``)."""
    headers = [
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("List-Id", list_id(settings.label, settings.slug, settings.namespace)),
    ]
    if settings.feedback_sender:
        headers.append(("Feedback-ID", f"{settings.feedback_kind}:{settings.slug}:newsletter:"
                                       f"{settings.feedback_sender}"))
    suffix = f", <mailto:{settings.mailto}?subject=unsubscribe>" if settings.mailto else ""
    return headers, suffix

"""The list headers every mail to a subscriber carries (RFC 2369, 2919, 8058)."""

from email.header import Header

from .message import check_header_value


def list_id(label: str, slug: str, namespace: str) -> str:
    """``List-Id: Label <slug.namespace>``; a non-ASCII label becomes an encoded word."""
    check_header_value(label)
    phrase = label.replace('"', "'")
    if phrase.isascii():
        phrase = f'"{phrase}"'
    else:
        phrase = Header(phrase, "utf-8").encode(maxlinelen=76, linesep="\r\n")
    return f"{phrase} <{slug}.{namespace}>"


def list_headers(config, *, unsubscribe_url: str, label: str, slug: str,
                 campaign_id: int | None = None) -> list[tuple[str, str]]:
    """List-Unsubscribe (one http(s) URI, then an optional mailto), its One-Click twin,
    List-Id, and Feedback-ID when a sender id is configured (no subscriber in it)."""
    unsubscribe = f"<{unsubscribe_url}>"
    if config.get("UNSUBSCRIBE_MAILTO"):
        unsubscribe += f", <mailto:{config['UNSUBSCRIBE_MAILTO']}?subject=unsubscribe>"
    headers = [
        ("List-Unsubscribe", unsubscribe),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("List-Id", list_id(label, slug, config["LIST_ID_NAMESPACE"])),
    ]
    if config.get("FEEDBACK_ID_SENDER"):
        kind = f"campaign{campaign_id}" if campaign_id else "notice"
        headers.append(("Feedback-ID", f"{kind}:{slug}:newsletter:{config['FEEDBACK_ID_SENDER']}"))
    return headers

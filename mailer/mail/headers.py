"""The list headers every mail to a subscriber carries (RFC 2369, 2919, 8058)."""

from .message import check_header_value, encoded_words


def list_id(label: str, slug: str, namespace: str) -> str:
    """``List-Id: Label <slug.namespace>``, folded; a non-ASCII label becomes encoded words
    (each at most 75 characters). Raises InvalidInput on CR/LF in the label."""
    check_header_value(label)
    phrase = label.replace('"', "'").replace("\\", "")
    phrase = f'"{phrase}"' if phrase.isascii() else encoded_words(phrase)
    return f"{phrase}\r\n <{slug}.{namespace}>"


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
        ("List-Id", list_id(label, slug, config.get("LIST_ID_NAMESPACE") or config["MAIL_DOMAIN"])),
    ]
    if config.get("FEEDBACK_ID_SENDER"):
        kind = f"campaign{campaign_id}" if campaign_id else "notice"
        headers.append(("Feedback-ID", f"{kind}:{slug}:newsletter:{config['FEEDBACK_ID_SENDER']}"))
    return headers

"""Absolute links put in mail. Built from BASE_URL, not the request, so workers can make them."""

from flask import current_app

from . import tokens


def absolute(path: str) -> str:
    return current_app.config["BASE_URL"] + path


def unsubscribe_url(subscriber_id: int, campaign_id: int | None = None) -> str:
    """Short on purpose: it must fit a List-Unsubscribe header unencoded."""
    return absolute(f"/u/{tokens.unsubscribe_token(subscriber_id, campaign_id)}")


def confirm_url(token: str) -> str:
    return absolute(f"/confirm/{token}")


def view_url(campaign_id: int, subscriber_id: int) -> str:
    """The 'view in browser' page of one recipient's copy of a campaign."""
    return absolute(f"/m/{tokens.sign(tokens.VIEW, [campaign_id, subscriber_id])}")


def manage_url(subscriber_id: int) -> str:
    """The subscriber's preference centre (expires after PREFERENCES_LINK_DAYS)."""
    return absolute(f"/p/{tokens.manage_token(subscriber_id)}")


def erase_url(token: str) -> str:
    return absolute(f"/p/erase/{token}")

"""Codes shown to staff, in the page's language: each kind of stored code (a consent
record's action and source, an import's state, a campaign's, delivery's or subscription's
status, a suppression's reason, a bounce's kind) maps to a translated label here, once. A
code not listed (a new bounce channel, an old row) is shown as stored."""

from collections.abc import Callable

from flask import Flask
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _lp

CONSENT_ACTIONS = {
    "subscribe": _l("subscribed"),
    "confirm": _l("confirmed"),
    "unsubscribe": _l("unsubscribed"),
    "complaint": _l("spam complaint: consent withdrawn"),
    "admin-add": _l("added to the list by staff"),
    "staff-added": _l("added by staff, who confirmed the consent"),
    "import-pending": _l("imported, waiting for confirmation"),
    "import-confirmed": _l("imported as confirmed"),
    "import-unsubscribed": _l("imported as unsubscribed"),
    "lifted-bounced": _l("suppression after a bounce lifted by a confirmed sign-up"),
    "lifted-soft_bounced": _l("suppression after bounces lifted by a confirmed sign-up"),
    "lifted-complaint": _l("suppression after a complaint lifted by a confirmed new consent"),
    "lifted-erased": _l("suppression after erasure lifted by a confirmed sign-up"),
}

CONSENT_SOURCES = {
    "form": _l("sign-up form"),
    "embed": _l("form embedded on another site"),
    "api": _l("API"),
    "admin": _l("staff"),
    "import": _l("CSV import"),
    "one-click": _l("one-click unsubscribe from the mail program"),
    "complaint": _l("spam complaint"),
    "imap": _l("returned mail (mailbox)"),
    "pipe": _l("returned mail (delivered to the server)"),
    "lmtp": _l("returned mail (delivered to the server)"),
    "smtp": _l("returned mail (delivered to the server)"),
    "webhook": _l("mail provider's report"),
}

IMPORT_STATUSES = {
    "uploaded": _l("uploaded"), "queued": _l("waiting in the queue"), "running": _l("running"),
    "done": _l("done"), "failed": _lp("import", "failed"),
}

DELIVERY_STATUSES = {
    "queued": _l("waiting to be sent"), "sent": _l("sent"), "failed": _l("failed"),
    "bounced": _l("bounced"), "skipped": _l("skipped"),
    "dropped": _l("not needed any more"),  # a notice no longer needed (mailer.notices)
}

CAMPAIGN_STATUSES = {
    "draft": _l("draft"), "scheduled": _l("scheduled"), "sending": _l("sending"), "paused": _l("paused"),
    "sent": _l("sent"), "cancelled": _l("cancelled"),
}

SUPPRESSION_REASONS = {
    "bounced": _l("the address does not exist (bounced)"), "soft_bounced": _l("repeated temporary bounces"),
    "complaint": _l("marked a message as spam"), "erased": _l("personal data erased"),
}

BOUNCE_KINDS = {
    "hard": _l("address unknown"), "soft": _l("temporary failure"), "block": _l("refused by policy"),
    "complaint": _l("spam complaint"),
}

SUBSCRIPTION_STATUSES = {
    "pending": _l("pending"), "confirmed": _l("confirmed"), "unsubscribed": _l("unsubscribed"),
}


def _label(labels: dict) -> Callable[[object], str]:
    def label(code: object) -> str:
        key = str(getattr(code, "value", code))
        return str(labels[key]) if key in labels else key
    return label


consent_action_label = _label(CONSENT_ACTIONS)
consent_source_label = _label(CONSENT_SOURCES)
import_status_label = _label(IMPORT_STATUSES)
delivery_status_label = _label(DELIVERY_STATUSES)
subscription_status_label = _label(SUBSCRIPTION_STATUSES)
status_label = _label(CAMPAIGN_STATUSES)  # a campaign's
suppression_reason_label = _label(SUPPRESSION_REASONS)
bounce_kind_label = _label(BOUNCE_KINDS)


def init_app(app: Flask) -> None:
    for name in ("consent_action_label", "consent_source_label", "import_status_label",
                 "delivery_status_label", "subscription_status_label", "status_label",
                 "suppression_reason_label", "bounce_kind_label"):
        app.add_template_global(globals()[name], name)

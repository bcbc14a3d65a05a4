"""Thin tasks: they take ids, open a session (the app context is already pushed) and call
the domain. Each is safe to run twice: the database, not the queue, records what was done."""

from celery import shared_task

from mailer import campaigns, sending, subscriptions
from mailer.extensions import db


@shared_task(name="mailer.send_confirmation", autoretry_for=(OSError,), retry_backoff=True,
             retry_jitter=True, max_retries=5)
def send_confirmation(subscriber_id: int) -> None:
    subscriptions.send_confirmation(db.session, subscriber_id)


@shared_task(name="mailer.send_welcome", autoretry_for=(OSError,), retry_backoff=True,
             retry_jitter=True, max_retries=5)
def send_welcome(subscriber_id: int) -> None:
    subscriptions.send_welcome(db.session, subscriber_id)


@shared_task(name="mailer.purge_pending")
def purge_pending() -> None:
    subscriptions.purge_pending(db.session)
    db.session.commit()


@shared_task(name="mailer.tick")
def tick() -> None:
    sending.tick(db.session)


@shared_task(name="mailer.start_campaign")
def start_campaign(campaign_id: int) -> None:
    sending.start(db.session, campaign_id)


@shared_task(name="mailer.send_batch", bind=True, max_retries=50)
def send_batch(self, campaign_id: int, batch: int) -> None:
    """Rows put back after a 4xx are retried by retrying this task once they are due
    (backoff with jitter, capped well under the broker's visibility timeout)."""
    retry_in = sending.send_batch(db.session, campaign_id, batch)
    if retry_in is not None:
        raise self.retry(countdown=max(0.2, retry_in))


@shared_task(name="mailer.send_test", autoretry_for=(OSError,), retry_backoff=True,
             retry_jitter=True, max_retries=3)
def send_test(campaign_id: int, addresses: list[str]) -> None:
    """A test copy; retried when the mail server is unreachable or answers 4xx (a repeated
    test copy is harmless)."""
    campaigns.send_test(db.session, campaign_id, addresses)


@shared_task(name="mailer.import_csv")
def import_csv(job_id: int) -> None:
    from mailer import imports

    imports.run(db.session, job_id)


@shared_task(name="mailer.poll_bounce_mailbox", expires=300)
def poll_bounce_mailbox() -> None:
    """Read the bounce mailbox (BOUNCE_MAILBOX_URL); each message is committed before it is
    deleted, so a failed poll leaves the rest for the next one."""
    from flask import current_app

    from mailer.bounces import mailbox

    if current_app.config["BOUNCE_MAILBOX_URL"]:
        mailbox.poll(db.session, current_app.config)


@shared_task(name="mailer.confirm_sns_subscription", autoretry_for=(OSError,), retry_backoff=True,
             retry_jitter=True, max_retries=5)
def confirm_sns_subscription(url: str) -> None:
    """Visit an SNS SubscribeURL (checked against SES_SNS_URL_PATTERN again)."""
    from flask import current_app

    from mailer.bounces import sns

    sns.confirm_subscription(url, current_app.config["SES_SNS_URL_PATTERN"])


@shared_task(name="mailer.purge_webhook_nonces")
def purge_webhook_nonces() -> None:
    from mailer.bounces import webhooks

    webhooks.purge_nonces(db.session)
    db.session.commit()

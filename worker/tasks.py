"""Thin tasks: they take ids, open a session (the app context is already pushed) and call
the domain. Each is safe to run twice: the database, not the queue, records what was done."""

from celery import shared_task

from mailer import campaigns, imports, jobs, notices, sending, subscriptions
from mailer.extensions import db_session


@shared_task(name="mailer.send_notices")
def send_notices() -> None:
    notices.send(db_session)


@shared_task(name="mailer.purge_pending")
def purge_pending() -> None:
    subscriptions.purge_pending(db_session)
    db_session.commit()


@shared_task(name="mailer.tick")
def tick() -> None:
    """Beat, every few seconds: relay jobs the broker may have lost, launch schedules,
    revive stalled campaigns, send notices whose turn came."""
    jobs.relay(db_session)
    sending.tick(db_session)
    notices.tick(db_session)


@shared_task(name="mailer.start_campaign")
def start_campaign(campaign_id: int) -> None:
    sending.start(db_session, campaign_id)


@shared_task(name="mailer.send_campaign")
def send_campaign(campaign_id: int) -> None:
    """One sender of the campaign; it goes on in a new task when it has to wait (a batch due
    for a retry, a back-off, the rate limit) or its time is up: one task, never a storm."""
    then = sending.send(db_session, campaign_id)
    if then is not None:
        jobs.send_now("mailer.send_campaign", campaign_id, countdown=min(then, sending.MAX_COUNTDOWN))


@shared_task(name="mailer.send_test", autoretry_for=(OSError,), retry_backoff=True,
             retry_jitter=True, max_retries=3)
def send_test(campaign_id: int, addresses: list[str]) -> None:
    """A test copy; retried when the mail server is unreachable or answers 4xx (a repeated
    test copy is harmless)."""
    campaigns.send_test(db_session, campaign_id, addresses)


@shared_task(name="mailer.import_csv")
def import_csv(job_id: int) -> None:
    imports.run(db_session, job_id)


@shared_task(name="mailer.poll_bounce_mailbox", expires=300)
def poll_bounce_mailbox() -> None:
    """Read the bounce mailbox (BOUNCE_MAILBOX_URL); each message is committed before it is
    deleted, so a failed poll leaves the rest for the next one."""
    from flask import current_app

    from mailer.bounces import mailbox

    if current_app.config["BOUNCE_MAILBOX_URL"]:
        mailbox.poll(db_session, current_app.config)


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

    webhooks.purge_nonces(db_session)
    db_session.commit()


@shared_task(name="mailer.bulk_action")
def bulk_action(action_id: int) -> None:
    """A bulk action on a search or segment result, chunk by chunk (goes on where it stopped)."""
    from mailer import bulk_actions

    bulk_actions.run(db_session, action_id)


@shared_task(name="mailer.refresh_summary")
def refresh_summary() -> None:
    """The dashboard's audience figures, counted in the background."""
    from mailer import stats

    stats.refresh_summary(db_session)


@shared_task(name="mailer.count_recipients")
def count_recipients(campaign_id: int) -> None:
    """How many a campaign would reach now, kept for its page."""
    from mailer import recipients

    recipients.count_now(db_session, campaign_id)

"""Configuration classes that read the environment into types.

With nothing set the service runs embedded: SQLite and a SQLite-backed Celery
broker in ``instance/``, mail written to ``instance/outbox``. ``DATABASE_URL``,
``REDIS_URL``, ``SMTP_URL``, ``SECRET_KEY`` and ``BASE_URL`` move it to real servers.

The environment is read when a configuration is made (``CONFIGS[name]()``, as
``create_app`` does), never at import: a test or the bench may set variables, or pass
``overrides`` to ``create_app``, at any time before it builds an app.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DEFAULT_SECRET = "dev-only-secret-change-me"


class Environment:
    """Typed reads of a mapping of environment variables (empty means unset)."""

    def __init__(self, values: Mapping[str, str]):
        self.values = values

    def text(self, name: str, default: str = "") -> str:
        return self.values.get(name) or default

    def integer(self, name: str, default: int) -> int:
        value = self.values.get(name)
        return int(value) if value else default

    def number(self, name: str, default: float) -> float:
        value = self.values.get(name)
        return float(value) if value else default

    def flag(self, name: str, default: bool) -> bool:
        value = self.values.get(name)
        return value.strip().lower() in {"1", "true", "yes", "on"} if value else default

    def names(self, name: str) -> list[str]:
        """A comma-separated list."""
        return [part.strip() for part in self.text(name).split(",") if part.strip()]


def sqlalchemy_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common short forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    """Every setting, as upper-case attributes that ``app.config.from_object`` copies."""

    TESTING = False
    DEMO = False

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = Environment(os.environ if environ is None else environ)
        instance = Path(env.text("INSTANCE_DIR", str(ROOT / "instance")))
        self.INSTANCE_DIR = instance

        self.SECRET_KEY = env.text("SECRET_KEY", DEFAULT_SECRET)
        # Old keys still verify tokens after a rotation; SECRET_KEY signs new ones.
        self.SECRET_KEY_FALLBACKS = env.names("SECRET_KEY_FALLBACKS")
        self.SUPPRESSION_KEY = env.text("SUPPRESSION_KEY")  # defaults to SECRET_KEY
        self.BASE_URL = env.text("BASE_URL", f"http://127.0.0.1:{env.integer('PORT', 5000)}").rstrip("/")

        self.SQLALCHEMY_DATABASE_URI = sqlalchemy_url(
            env.text("DATABASE_URL", f"sqlite:///{instance / 'mailer.sqlite'}"))
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}
        self.DATABASE_POOL_SIZE = env.integer("DATABASE_POOL_SIZE", 32)
        if not self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            # Only connections idle a while are tried before use (mailer.extensions.configure_engine).
            self.SQLALCHEMY_ENGINE_OPTIONS["pool_pre_ping"] = False
            # Connections a process keeps open: at least its web threads, or those past it are
            # opened and closed request by request (a PostgreSQL backend forked each time: 124
            # of 965 sign-ups at 16 threads with the default 5).
            self.SQLALCHEMY_ENGINE_OPTIONS["pool_size"] = self.DATABASE_POOL_SIZE

        self.REDIS_URL = env.text("REDIS_URL")
        # Distinguishes the keys and queues of one deployment (or test run) in a shared Redis.
        self.REDIS_PREFIX = env.text("REDIS_PREFIX", "mailer")
        self.CELERY: dict[str, Any] = {
            "broker_url": self.REDIS_URL or f"sqla+sqlite:///{instance / 'broker.sqlite'}",
            "task_ignore_result": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_default_queue": env.text("CELERY_QUEUE", "mailer"),
            "broker_connection_retry_on_startup": True,
            "beat_schedule_filename": str(instance / "celerybeat-schedule"),
            "timezone": "Europe/Warsaw",
            # Redis redelivers an unacknowledged task after this; no ETA may exceed it. The
            # embedded broker (kombu's SQLAlchemy transport) passes these options on to
            # create_engine, which refuses a visibility_timeout: none without Redis.
            "broker_transport_options": {"visibility_timeout": 3600} if self.REDIS_URL else {},
            # A request publishing a job to a broker that is down gives up within a second
            # (the job is in the database: the relay publishes it later).
            "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0.2,
                                          "interval_step": 0.2, "interval_max": 0.5},
            "broker_connection_timeout": 2,
        }

        # Mail
        self.SMTP_URL = env.text("SMTP_URL")  # smtp://user:pass@host:port?starttls=1 or smtps://...
        self.OUTBOX_DIR = Path(env.text("OUTBOX_DIR", str(instance / "outbox")))
        self.MAIL_FROM = env.text("MAIL_FROM", "newsletter@example.org")
        self.MAIL_FROM_NAME = env.text("MAIL_FROM_NAME", "Urząd Miasta — Wydarzenia")
        self.MAIL_DOMAIN = env.text("MAIL_DOMAIN", self.MAIL_FROM.rpartition("@")[2])
        self.LIST_ID_NAMESPACE = env.text("LIST_ID_NAMESPACE")  # default: MAIL_DOMAIN
        self.FEEDBACK_ID_SENDER = env.text("FEEDBACK_ID_SENDER")
        self.UNSUBSCRIBE_MAILTO = env.text("UNSUBSCRIBE_MAILTO")
        self.DKIM_DOMAIN = env.text("DKIM_DOMAIN")  # default: MAIL_DOMAIN
        self.DKIM_RSA_KEY_FILE = env.text("DKIM_RSA_KEY_FILE")
        self.DKIM_RSA_SELECTOR = env.text("DKIM_RSA_SELECTOR", "rsa")
        self.DKIM_ED25519_KEY_FILE = env.text("DKIM_ED25519_KEY_FILE")
        self.DKIM_ED25519_SELECTOR = env.text("DKIM_ED25519_SELECTOR", "ed")

        # Subscribing
        self.ORGANISATION_NAME = env.text("ORGANISATION_NAME", "Urząd Miasta")
        self.CONSENT_TEXT_VERSION = env.text("CONSENT_TEXT_VERSION", "2026-11")
        self.CONFIRM_MAX_AGE = env.integer("CONFIRM_MAX_AGE_HOURS", 72) * 3600
        # Preference-centre links (in every mail) open the page for this many days; an older
        # one offers to send a new link. Erasure confirmation links last ERASE_LINK_HOURS.
        self.PREFERENCES_LINK_DAYS = env.integer("PREFERENCES_LINK_DAYS", 90)
        self.ERASE_LINK_HOURS = env.integer("ERASE_LINK_HOURS", 48)
        self.CONFIRM_COOLDOWN = env.integer("CONFIRM_COOLDOWN_MINUTES", 15) * 60
        self.CONFIRM_MAX_PER_DAY = env.integer("CONFIRM_MAX_PER_DAY", 3)
        self.PENDING_MAX_PER_HOUR = env.integer("PENDING_MAX_PER_HOUR", 1000)
        self.PURGE_PENDING_AFTER_DAYS = env.integer("PURGE_PENDING_AFTER_DAYS", 30)
        self.SUBSCRIBE_RATE_LIMIT = env.text("SUBSCRIBE_RATE_LIMIT", "10 per minute;50 per day")
        # Per mailbox (plus-tags and Gmail's dots folded: one inbox, one budget), every route.
        self.SUBSCRIBE_ADDRESS_RATE_LIMIT = env.text("SUBSCRIBE_ADDRESS_RATE_LIMIT", "3 per hour;6 per day")
        # Every subscribe answer takes at least this long, so its timing does not tell whether
        # the address was new, subscribed or erased: above the slowest outcome (its outcomes
        # differed by 6 to 21 ms), and low, because a held answer holds a web thread: with T
        # threads the form answers at most T / this many sign-ups a second (bench/README).
        self.SUBSCRIBE_ANSWER_SECONDS = env.number("SUBSCRIBE_ANSWER_SECONDS", 0.05)
        self.LOGIN_RATE_LIMIT = env.text("LOGIN_RATE_LIMIT", "10 per minute")
        # Failed sign-ins per staff account, from any address (a password-guessing botnet).
        self.LOGIN_ACCOUNT_RATE_LIMIT = env.text("LOGIN_ACCOUNT_RATE_LIMIT", "5 per minute;20 per hour")
        self.LOGIN_2FA_SECONDS = env.integer("LOGIN_2FA_SECONDS", 300)  # to enter the second factor
        # A staff session ends this long after its last request (the signed cookie's age).
        self.PERMANENT_SESSION_LIFETIME = env.integer("STAFF_SESSION_HOURS", 12) * 3600
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.RATELIMIT_KEY_PREFIX = self.REDIS_PREFIX
        self.RATELIMIT_HEADERS_ENABLED = True
        self.PROXY_FIX_HOPS = env.integer("PROXY_FIX_HOPS", 0)
        # Only connections from these addresses may set X-Forwarded-* (the proxies themselves);
        # a client reaching the app directly cannot choose its own IP.
        self.TRUSTED_PROXIES = env.names("TRUSTED_PROXIES") or ["127.0.0.1/8", "::1/128"]
        # Sites whose pages may POST /subscribe.json (the embed snippet): any other origin,
        # or a request without one, is refused.
        self.EMBED_ORIGINS = [origin.rstrip("/") for origin in env.names("EMBED_ORIGINS")]

        # Staff templates render in a child process within these limits (mailer/mail/render.py).
        self.TEMPLATE_RENDER_SECONDS = env.number("TEMPLATE_RENDER_SECONDS", 3)
        self.TEMPLATE_MAX_OUTPUT_KB = env.integer("TEMPLATE_MAX_OUTPUT_KB", 1024)
        self.TEMPLATE_MEMORY_MB = env.integer("TEMPLATE_MEMORY_MB", 256)
        self.TEMPLATE_PREVIEW_RATE_LIMIT = env.text("TEMPLATE_PREVIEW_RATE_LIMIT", "60 per minute")
        # Renders past a limit per staff member; then their renders wait (429).
        self.TEMPLATE_LIMIT_STRIKES = env.text("TEMPLATE_LIMIT_STRIKES", "5 per 10 minutes")

        # JSON API: requests per token, and the largest request body accepted.
        self.API_RATE_LIMIT = env.text("API_RATE_LIMIT", "300 per minute")
        self.API_MAX_BODY = env.integer("API_MAX_BODY_KB", 256) * 1024

        # Staff passwords: argon2id costs (argon2-cffi's defaults: 3 passes over 64 MiB, 4 lanes).
        self.PASSWORD_TIME_COST = env.integer("PASSWORD_TIME_COST", 3)
        self.PASSWORD_MEMORY_KIB = env.integer("PASSWORD_MEMORY_KIB", 65536)
        self.PASSWORD_PARALLELISM = env.integer("PASSWORD_PARALLELISM", 4)

        # Sending
        self.BATCH_SIZE = env.integer("BATCH_SIZE", 500)
        self.RATE_PER_SECOND = env.number("RATE_PER_SECOND", 0)  # 0: unlimited
        self.RATE_PER_HOUR = env.integer("RATE_PER_HOUR", 0)
        self.SMTP_MAX_CONNECTIONS = env.integer("SMTP_MAX_CONNECTIONS", 4)
        # The sending engine (mailer.sending, mailer.dispatch)
        self.SEND_SENDERS = env.integer("SEND_SENDERS", 4)  # sender tasks queued per campaign
        self.SEND_SENDER_SECONDS = env.integer("SEND_SENDER_SECONDS", 120)  # then a fresh task goes on
        self.SEND_LEASE_SECONDS = env.integer("SEND_LEASE_SECONDS", 15)  # a dead sender's batch is free after
        self.SEND_STALL_SECONDS = env.integer("SEND_STALL_SECONDS", 30)  # tick re-queues senders after
        self.SEND_MAX_ATTEMPTS = env.integer("SEND_MAX_ATTEMPTS", 5)  # 4xx answers before a row is failed
        self.SEND_RETRY_BASE_SECONDS = env.number("SEND_RETRY_BASE_SECONDS", 30)  # doubled per attempt
        self.SEND_RETRY_MAX_SECONDS = env.number("SEND_RETRY_MAX_SECONDS", 900)
        self.SEND_PAUSE_AFTER_FAILURES = env.integer("SEND_PAUSE_AFTER_FAILURES", 50)  # permanent, in a row
        self.SEND_PAUSE_AFTER_SECONDS = env.integer("SEND_PAUSE_AFTER_SECONDS", 1800)  # nothing accepted

        # Bounces and complaints (mailer/bounces): where returned mail and provider reports
        # come in, and what they do. Every message goes out with a signed return path
        # (mailer/verp.py) under BOUNCE_ADDRESS.
        self.BOUNCE_ADDRESS = env.text("BOUNCE_ADDRESS")  # default: bounces@MAIL_DOMAIN
        # Feedback-loop (ARF) reports arrive at addresses registered with the providers.
        self.BOUNCE_FEEDBACK_ADDRESSES = env.names("BOUNCE_FEEDBACK_ADDRESSES")
        self.BOUNCE_SMTP_HOST = env.text("BOUNCE_SMTP_HOST", "127.0.0.1")
        self.BOUNCE_SMTP_PORT = env.integer("BOUNCE_SMTP_PORT", 2525)
        self.BOUNCE_SMTP_LMTP = env.flag("BOUNCE_SMTP_LMTP", False)  # speak LMTP (LHLO) instead of SMTP
        self.BOUNCE_MAX_MESSAGE_KB = env.integer("BOUNCE_MAX_MESSAGE_KB", 2048)  # larger is refused
        self.BOUNCE_KEEP_RAW_KB = env.integer("BOUNCE_KEEP_RAW_KB", 16)  # the start of each report, kept
        # imaps://user:pass@host/INBOX, imap://...?starttls=1; &move=Folder (else deleted), &cafile=
        self.BOUNCE_MAILBOX_URL = env.text("BOUNCE_MAILBOX_URL")
        self.BOUNCE_MAILBOX_POLL_SECONDS = env.integer("BOUNCE_MAILBOX_POLL_SECONDS", 60)
        self.BOUNCE_MAILBOX_BATCH = env.integer("BOUNCE_MAILBOX_BATCH", 200)  # messages read per poll
        # Reports that name no signed return path are matched by the returned Message-ID, then
        # by the recipient's latest message within this many days; BOUNCE_REQUIRE_VERP: never.
        self.BOUNCE_MATCH_DAYS = env.integer("BOUNCE_MATCH_DAYS", 30)
        self.BOUNCE_REQUIRE_VERP = env.flag("BOUNCE_REQUIRE_VERP", False)
        # Soft bounces: this many (separate messages) within the window suppress the address.
        self.BOUNCE_SOFT_LIMIT = env.integer("BOUNCE_SOFT_LIMIT", 3)
        self.BOUNCE_SOFT_WINDOW_DAYS = env.integer("BOUNCE_SOFT_WINDOW_DAYS", 30)
        # A sending campaign pauses itself when, after BOUNCE_PAUSE_MIN_SENT messages, the
        # share of them that bounced or drew a complaint passes these (0 turns a check off).
        self.BOUNCE_PAUSE_MIN_SENT = env.integer("BOUNCE_PAUSE_MIN_SENT", 200)
        self.BOUNCE_PAUSE_RATE = env.number("BOUNCE_PAUSE_RATE", 0.05)
        self.COMPLAINT_PAUSE_RATE = env.number("COMPLAINT_PAUSE_RATE", 0.003)
        # Provider webhooks under /webhooks/<provider>; each is off until configured.
        self.WEBHOOK_MAX_BODY_KB = env.integer("WEBHOOK_MAX_BODY_KB", 512)
        self.WEBHOOK_MAX_AGE_SECONDS = env.integer("WEBHOOK_MAX_AGE_SECONDS", 900)  # older signatures: stale
        self.SES_SNS_TOPIC_ARNS = env.names("SES_SNS_TOPIC_ARNS")  # only these topics are accepted
        # Where SNS signing certificates and subscription links may point (https, an SNS host).
        self.SES_SNS_URL_PATTERN = env.text("SES_SNS_URL_PATTERN",
                                            r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
        self.POSTMARK_WEBHOOK_USER = env.text("POSTMARK_WEBHOOK_USER")
        self.POSTMARK_WEBHOOK_PASSWORD = env.text("POSTMARK_WEBHOOK_PASSWORD")
        self.SENDGRID_WEBHOOK_PUBLIC_KEY = env.text("SENDGRID_WEBHOOK_PUBLIC_KEY")  # base64, as SendGrid shows it
        self.MAILGUN_WEBHOOK_SIGNING_KEY = env.text("MAILGUN_WEBHOOK_SIGNING_KEY")

        # Jobs (mailer.jobs) and beat
        self.TICK_SECONDS = env.number("TICK_SECONDS", 5)
        self.JOB_RELAY_SECONDS = env.integer("JOB_RELAY_SECONDS", 300)  # published again if unfinished

        # Web
        self.BABEL_DEFAULT_LOCALE = env.text("DEFAULT_LOCALE", "pl")
        self.BABEL_DEFAULT_TIMEZONE = env.text("DEFAULT_TIMEZONE", "Europe/Warsaw")
        # One catalog folder per area (translations/<area>/pl/LC_MESSAGES/messages.po); merged.
        self.BABEL_TRANSLATION_DIRECTORIES = ";".join(
            str(path) for path in sorted((ROOT / "translations").glob("*")) if path.is_dir())
        self.LANGUAGES = ["pl", "en"]
        self.MAX_CONTENT_LENGTH = env.integer("MAX_UPLOAD_MB", 64) * 1024 * 1024
        # Staff imports: uploaded CSV files wait here until imported.
        self.IMPORT_DIR = Path(env.text("IMPORT_DIR", str(instance / "imports")))
        self.IMPORT_CHUNK = env.integer("IMPORT_CHUNK", 5000)  # rows per transaction
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.BASE_URL.startswith("https://")
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.WTF_CSRF_TIME_LIMIT = None

    def check(self) -> None:
        """Raise RuntimeError for a setting that must not be used; production overrides it."""


class DevelopmentConfig(Config):
    DEMO = True


class TestConfig(Config):
    TESTING = True

    def __init__(self, environ: Mapping[str, str] | None = None):
        super().__init__(environ)
        self.SECRET_KEY = "test-secret"
        # The cheapest argon2id the library accepts: a staff login costs a millisecond, not
        # half a second (tests log in hundreds of times; the cost is not what they test).
        self.PASSWORD_TIME_COST, self.PASSWORD_MEMORY_KIB, self.PASSWORD_PARALLELISM = 1, 8, 1


class ProductionConfig(Config):
    def check(self) -> None:
        """Raise RuntimeError when a default that must not reach production is set: the
        development SECRET_KEY, or no SUPPRESSION_KEY of its own (the hashes of erased and
        bounced addresses would then hang on SECRET_KEY, and rotating it would forget them)."""
        if self.SECRET_KEY == DEFAULT_SECRET or len(self.SECRET_KEY) < 16:
            raise RuntimeError("Set SECRET_KEY to a long random value before running in production.")
        if not self.SUPPRESSION_KEY or len(self.SUPPRESSION_KEY) < 16:
            raise RuntimeError("Set SUPPRESSION_KEY to a long random value of its own before running in "
                               "production (it keys the suppression list; never rotate it).")
        if self.SUPPRESSION_KEY in (self.SECRET_KEY, *self.SECRET_KEY_FALLBACKS):
            raise RuntimeError("SUPPRESSION_KEY must differ from SECRET_KEY: SECRET_KEY is rotated, "
                               "the suppression key never is.")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}

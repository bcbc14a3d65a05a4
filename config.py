"""Configuration classes that read the environment into types.

With nothing set the service runs embedded: SQLite and a SQLite-backed Celery
broker in ``instance/``, mail written to ``instance/outbox``. ``DATABASE_URL``,
``REDIS_URL``, ``SMTP_URL``, ``SECRET_KEY`` and ``BASE_URL`` move it to real servers.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_SECRET = "dev-only-secret-change-me"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in env_str(name, default).split(",") if part.strip()]


def sqlalchemy_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common short forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    INSTANCE_DIR = Path(env_str("INSTANCE_DIR", str(ROOT / "instance")))

    SECRET_KEY = env_str("SECRET_KEY", DEFAULT_SECRET)
    # Old keys still verify tokens after a rotation; SECRET_KEY signs new ones.
    SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
    SUPPRESSION_KEY = env_str("SUPPRESSION_KEY")  # defaults to SECRET_KEY
    BASE_URL = env_str("BASE_URL", f"http://127.0.0.1:{env_int('PORT', 5000)}").rstrip("/")

    SQLALCHEMY_DATABASE_URI = sqlalchemy_url(
        env_str("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'mailer.sqlite'}")
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    REDIS_URL = env_str("REDIS_URL")
    # Distinguishes the keys and queues of one deployment (or test run) in a shared Redis.
    REDIS_PREFIX = env_str("REDIS_PREFIX", "mailer")
    CELERY = {
        "broker_url": REDIS_URL or f"sqla+sqlite:///{INSTANCE_DIR / 'broker.sqlite'}",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": env_str("CELERY_QUEUE", "mailer"),
        "broker_connection_retry_on_startup": True,
        "beat_schedule_filename": str(INSTANCE_DIR / "celerybeat-schedule"),
        "timezone": "Europe/Warsaw",
        # Redis redelivers an unacknowledged task after this; no ETA may exceed it.
        "broker_transport_options": {"visibility_timeout": 3600},
    }
    # Visitor side (embedded broker): kombu's SQLAlchemy transport passes these options to
    # create_engine, which refuses visibility_timeout (a Redis option): none without Redis.
    if not REDIS_URL:
        CELERY["broker_transport_options"] = {}

    # Mail
    SMTP_URL = env_str("SMTP_URL")  # smtp://user:pass@host:port?starttls=1 or smtps://...
    OUTBOX_DIR = Path(env_str("OUTBOX_DIR", str(INSTANCE_DIR / "outbox")))
    MAIL_FROM = env_str("MAIL_FROM", "newsletter@example.org")
    MAIL_FROM_NAME = env_str("MAIL_FROM_NAME", "Urząd Miasta — Wydarzenia")
    MAIL_DOMAIN = env_str("MAIL_DOMAIN", MAIL_FROM.rpartition("@")[2])
    LIST_ID_NAMESPACE = env_str("LIST_ID_NAMESPACE")  # default: MAIL_DOMAIN
    FEEDBACK_ID_SENDER = env_str("FEEDBACK_ID_SENDER")
    UNSUBSCRIBE_MAILTO = env_str("UNSUBSCRIBE_MAILTO")
    DKIM_DOMAIN = env_str("DKIM_DOMAIN")  # default: MAIL_DOMAIN
    DKIM_RSA_KEY_FILE = env_str("DKIM_RSA_KEY_FILE")
    DKIM_RSA_SELECTOR = env_str("DKIM_RSA_SELECTOR", "rsa")
    DKIM_ED25519_KEY_FILE = env_str("DKIM_ED25519_KEY_FILE")
    DKIM_ED25519_SELECTOR = env_str("DKIM_ED25519_SELECTOR", "ed")

    # Subscribing
    ORGANISATION_NAME = env_str("ORGANISATION_NAME", "Urząd Miasta")
    CONSENT_TEXT_VERSION = env_str("CONSENT_TEXT_VERSION", "2026-11")
    CONFIRM_MAX_AGE = env_int("CONFIRM_MAX_AGE_HOURS", 72) * 3600
    CONFIRM_COOLDOWN = env_int("CONFIRM_COOLDOWN_MINUTES", 15) * 60
    CONFIRM_MAX_PER_DAY = env_int("CONFIRM_MAX_PER_DAY", 3)
    PENDING_MAX_PER_HOUR = env_int("PENDING_MAX_PER_HOUR", 1000)
    PURGE_PENDING_AFTER_DAYS = env_int("PURGE_PENDING_AFTER_DAYS", 30)
    SUBSCRIBE_RATE_LIMIT = env_str("SUBSCRIBE_RATE_LIMIT", "10 per minute;50 per day")
    SUBSCRIBE_ADDRESS_RATE_LIMIT = env_str("SUBSCRIBE_ADDRESS_RATE_LIMIT", "5 per hour")
    LOGIN_RATE_LIMIT = env_str("LOGIN_RATE_LIMIT", "10 per minute")
    RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
    RATELIMIT_KEY_PREFIX = REDIS_PREFIX
    RATELIMIT_HEADERS_ENABLED = True
    PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 0)
    # Visitor side (subscribe embeds): origins allowed to POST /subscribe.json from a browser.
    EMBED_ORIGINS = env_list("EMBED_ORIGINS")

    # JSON API (api helper): requests per token, and the largest request body accepted.
    API_RATE_LIMIT = env_str("API_RATE_LIMIT", "300 per minute")
    API_MAX_BODY = env_int("API_MAX_BODY_KB", 256) * 1024

    # Sending
    BATCH_SIZE = env_int("BATCH_SIZE", 500)
    RATE_PER_SECOND = env_float("RATE_PER_SECOND", 0)  # 0: unlimited
    RATE_PER_HOUR = env_int("RATE_PER_HOUR", 0)
    SMTP_MAX_CONNECTIONS = env_int("SMTP_MAX_CONNECTIONS", 4)
    # Sending engine (issue 4): chunking, leases, retries, self-pause.
    SEND_CHUNK_SIZE = env_int("SEND_CHUNK_SIZE", 250)  # rows claimed, sent and committed together
    SEND_LEASE_SECONDS = env_int("SEND_LEASE_SECONDS", 300)  # a claimed row is re-claimable after
    SEND_STALL_SECONDS = env_int("SEND_STALL_SECONDS", 120)  # tick re-enqueues a silent campaign
    SEND_MAX_ATTEMPTS = env_int("SEND_MAX_ATTEMPTS", 5)  # 4xx answers before a row is failed
    SEND_RETRY_BASE_SECONDS = env_float("SEND_RETRY_BASE_SECONDS", 30)  # doubled per attempt
    SEND_RETRY_MAX_SECONDS = env_float("SEND_RETRY_MAX_SECONDS", 900)
    SEND_PAUSE_AFTER_FAILURES = env_int("SEND_PAUSE_AFTER_FAILURES", 50)  # consecutive

    # Bounces and complaints (issue 11): where returned mail and provider reports come in,
    # and what they do. Every returned mail is addressed to a signed return path
    # (mailer/verp.py) under BOUNCE_ADDRESS.
    BOUNCE_ADDRESS = env_str("BOUNCE_ADDRESS")  # default: bounces@MAIL_DOMAIN
    # Feedback-loop (ARF) reports arrive at addresses registered with the providers.
    BOUNCE_FEEDBACK_ADDRESSES = env_list("BOUNCE_FEEDBACK_ADDRESSES")
    BOUNCE_SMTP_HOST = env_str("BOUNCE_SMTP_HOST", "127.0.0.1")
    BOUNCE_SMTP_PORT = env_int("BOUNCE_SMTP_PORT", 2525)
    BOUNCE_SMTP_LMTP = env_bool("BOUNCE_SMTP_LMTP", False)  # speak LMTP (LHLO) instead of SMTP
    BOUNCE_MAX_MESSAGE_KB = env_int("BOUNCE_MAX_MESSAGE_KB", 2048)  # larger returned mail is refused
    BOUNCE_KEEP_RAW_KB = env_int("BOUNCE_KEEP_RAW_KB", 16)  # the start of each report, kept with it
    # imaps://user:pass@host/INBOX, imap://...?starttls=1; &move=Folder (else deleted), &cafile=
    BOUNCE_MAILBOX_URL = env_str("BOUNCE_MAILBOX_URL")
    BOUNCE_MAILBOX_POLL_SECONDS = env_int("BOUNCE_MAILBOX_POLL_SECONDS", 60)
    BOUNCE_MAILBOX_BATCH = env_int("BOUNCE_MAILBOX_BATCH", 200)  # messages read per poll
    # Reports that name no signed return path are matched by the returned Message-ID, then by
    # the recipient's latest message within this many days; BOUNCE_REQUIRE_VERP turns that off.
    BOUNCE_MATCH_DAYS = env_int("BOUNCE_MATCH_DAYS", 30)
    BOUNCE_REQUIRE_VERP = env_bool("BOUNCE_REQUIRE_VERP", False)
    # Soft bounces: this many (separate messages) within the window suppress the address.
    BOUNCE_SOFT_LIMIT = env_int("BOUNCE_SOFT_LIMIT", 3)
    BOUNCE_SOFT_WINDOW_DAYS = env_int("BOUNCE_SOFT_WINDOW_DAYS", 30)
    # A sending campaign pauses itself when, after BOUNCE_PAUSE_MIN_SENT messages, the share
    # of them that bounced or drew a complaint passes these (0 turns a check off).
    BOUNCE_PAUSE_MIN_SENT = env_int("BOUNCE_PAUSE_MIN_SENT", 200)
    BOUNCE_PAUSE_RATE = env_float("BOUNCE_PAUSE_RATE", 0.05)
    COMPLAINT_PAUSE_RATE = env_float("COMPLAINT_PAUSE_RATE", 0.003)
    # Provider webhooks under /webhooks/<provider>; each is off until configured.
    WEBHOOK_MAX_BODY_KB = env_int("WEBHOOK_MAX_BODY_KB", 512)
    WEBHOOK_MAX_AGE_SECONDS = env_int("WEBHOOK_MAX_AGE_SECONDS", 900)  # signed timestamps older are stale
    SES_SNS_TOPIC_ARNS = env_list("SES_SNS_TOPIC_ARNS")  # only these topics are accepted
    # Where SNS signing certificates and subscription links may point (https, an SNS host).
    SES_SNS_URL_PATTERN = env_str("SES_SNS_URL_PATTERN",
                                  r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
    POSTMARK_WEBHOOK_USER = env_str("POSTMARK_WEBHOOK_USER")
    POSTMARK_WEBHOOK_PASSWORD = env_str("POSTMARK_WEBHOOK_PASSWORD")
    SENDGRID_WEBHOOK_PUBLIC_KEY = env_str("SENDGRID_WEBHOOK_PUBLIC_KEY")  # base64 (as SendGrid shows it)
    MAILGUN_WEBHOOK_SIGNING_KEY = env_str("MAILGUN_WEBHOOK_SIGNING_KEY")

    # Web
    BABEL_DEFAULT_LOCALE = env_str("DEFAULT_LOCALE", "pl")
    BABEL_DEFAULT_TIMEZONE = env_str("DEFAULT_TIMEZONE", "Europe/Warsaw")
    # One catalog folder per area (translations/<area>/pl/LC_MESSAGES/messages.po); merged.
    BABEL_TRANSLATION_DIRECTORIES = ";".join(
        str(path) for path in sorted((ROOT / "translations").glob("*")) if path.is_dir()
    )
    LANGUAGES = ["pl", "en"]
    MAX_CONTENT_LENGTH = env_int("MAX_UPLOAD_MB", 64) * 1024 * 1024
    # Staff imports (staff-accounts): uploaded CSV files wait here until imported.
    IMPORT_DIR = Path(env_str("IMPORT_DIR", str(INSTANCE_DIR / "imports")))
    IMPORT_CHUNK = env_int("IMPORT_CHUNK", 1000)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = BASE_URL.startswith("https://")
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None
    DEMO = False


class DevelopmentConfig(Config):
    DEMO = True


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret"


class ProductionConfig(Config):
    @classmethod
    def check(cls) -> None:
        """Raise RuntimeError when a default that must not reach production is set."""
        if cls.SECRET_KEY == DEFAULT_SECRET or len(cls.SECRET_KEY) < 16:
            raise RuntimeError("Set SECRET_KEY to a long random value before running in production.")


CONFIGS = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}

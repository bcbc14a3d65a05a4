"""The inbound endpoint the MTA hands returned mail to: SMTP or LMTP (aiosmtpd), its own process.

``flask --app mailer bounces serve`` listens on BOUNCE_SMTP_HOST:BOUNCE_SMTP_PORT. It is no
open sink: RCPT is accepted only for the bounce address (``bounces@domain``), its signed
return paths (``bounces+<token>@domain``; a token whose signature fails is refused at RCPT)
and the feedback-loop addresses in BOUNCE_FEEDBACK_ADDRESSES; everything else gets 550.
Messages over BOUNCE_MAX_MESSAGE_KB are refused (552) by aiosmtpd itself.

Each message is handed to ``handling.receive_mail`` and committed before the server answers
250, on a worker thread so the event loop keeps serving. A database failure answers 451: the
MTA keeps the message and tries again, so nothing is lost. Under LMTP each recipient gets
its own answer (RFC 2033), all the same since one message is one report.
"""

import asyncio
import logging
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from flask import Flask

from ..extensions import db_session
from ..verp import Verp
from . import handling

log = logging.getLogger(__name__)
MAX_RECIPIENTS = 50


class BounceHandler:
    """aiosmtpd handler: RCPT filtering and DATA hand-off."""

    def __init__(self, app: Flask, protocol: str = "smtp"):
        self.app = app
        self.protocol = protocol
        self.verp = Verp(app.config)
        self.feedback = {a.strip().lower() for a in app.config["BOUNCE_FEEDBACK_ADDRESSES"]}
        self.outcomes: list[str] = []  # what each message came to (for logs and tests)

    def accepts(self, address: str) -> str | None:
        """None when ``address`` may receive here, else the SMTP refusal."""
        address = (address or "").strip().lower()
        local, _, domain = address.rpartition("@")
        if address in self.feedback:
            return None
        if domain != self.verp.domain:
            return "550 5.7.1 Relaying denied: this server only takes returned mail"
        if local == self.verp.local.lower():
            return None
        if handling.looks_like_ours(self.verp, address):
            if self.verp.read(address) is None:
                return "550 5.1.1 Unknown or altered return path"
            return None
        return "550 5.1.1 No such mailbox here"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        refusal = self.accepts(address)
        if refusal:
            log.info("bounce endpoint refused RCPT %s", address)
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            verdict = await loop.run_in_executor(None, self.process, data, list(envelope.rcpt_tos))
        except Exception:
            log.exception("bounce endpoint could not process a message")
            reply = "451 4.3.0 Temporary failure, try again later"
        else:
            reply = "250 2.0.0 Received" if verdict != handling.FORGED else \
                "550 5.7.1 The return path in this report is not ours"
        if self.protocol == "lmtp":
            return "\r\n".join([reply] * len(envelope.rcpt_tos))
        return reply

    def process(self, data: bytes, recipients: list[str]) -> str:
        """One message, in its own app context and transaction."""
        with self.app.app_context():
            try:
                outcome = handling.receive_mail(db_session, data, source=self.protocol,
                                                envelope_to=recipients)
                db_session.commit()
            except Exception:
                db_session.rollback()
                raise
        log.info("bounce endpoint: %s %s", outcome.verdict, ",".join(outcome.kinds))
        self.outcomes.append(outcome.verdict)
        return outcome.verdict


class BounceController(Controller):
    """aiosmtpd's threaded controller, speaking LMTP when asked."""

    def __init__(self, handler: BounceHandler, **kwargs):
        self.lmtp = handler.protocol == "lmtp"
        super().__init__(handler, **kwargs)

    def factory(self):
        server_class = LMTP if self.lmtp else SMTP
        return server_class(self.handler, **self.SMTP_kwargs)


def make_server(app: Flask, host: str | None = None, port: int | None = None,
                lmtp: bool | None = None) -> BounceController:
    """The endpoint, not started yet (``start()``/``stop()``)."""
    config = app.config
    lmtp = config["BOUNCE_SMTP_LMTP"] if lmtp is None else lmtp
    handler = BounceHandler(app, "lmtp" if lmtp else "smtp")
    return BounceController(
        handler, hostname=host or config["BOUNCE_SMTP_HOST"], port=port or config["BOUNCE_SMTP_PORT"],
        data_size_limit=config["BOUNCE_MAX_MESSAGE_KB"] * 1024, decode_data=False,
        server_hostname=Verp(config).domain, enable_SMTPUTF8=True, ident="mailer bounce receiver")


def serve(app: Flask, host: str | None = None, port: int | None = None, lmtp: bool | None = None,
          stop: threading.Event | None = None) -> None:
    """Run the endpoint until SIGTERM/SIGINT (or ``stop`` is set)."""
    import signal

    stop = stop or threading.Event()
    server = make_server(app, host, port, lmtp)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    server.start()
    try:
        stop.wait()
    finally:
        server.stop()

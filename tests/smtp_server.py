"""A real SMTP server for the tests (aiosmtpd), with scripted failures.

``replies`` maps a recipient to the reply its RCPT gets (``"550 5.1.1 No such user"``);
``refuse_all`` is a reply every RCPT gets while set (a relay saying "try later");
``drop_after`` closes the connection after that many accepted messages (once);
``drop_every`` closes it at every n-th message's answer, after keeping the message
(``keep_dropped``: the client never hears that it was accepted) or not; ``delay``
slows every DATA down (so a worker can be killed mid-batch); ``arrivals`` records when each
message came (for counting messages per rate-limit window). It offers PIPELINING (RFC 2920;
aiosmtpd reads commands from a buffered stream, so pipelined input works) unless
``pipelining`` is turned off, to test clients that wait for every reply.
"""

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool = False  # came over TLS (STARTTLS or implicit)
    login: str = ""  # the AUTH user, if any

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class Handler:
    messages: list[Received] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    delay: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pipelining: bool = True
    refuse_all: str = ""
    drop_every: int = 0
    keep_dropped: bool = True
    dropped: int = 0  # connections closed by drop_every

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse_all or self.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            if self.drop_after is not None and len(self.messages) >= self.drop_after:
                self.drop_after = None
                server.transport.close()  # the client sees the connection drop mid-batch
                return "421 4.4.2 Connection dropped"
            login = session.auth_data.login.decode() if session.authenticated else ""
            drop = bool(self.drop_every) and (len(self.messages) + self.dropped + 1) % self.drop_every == 0
            if drop:
                self.dropped += 1
                server.transport.close()  # the answer never reaches the client
                if not self.keep_dropped:
                    return "421 4.4.2 Connection dropped"
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content,
                                          tls=server.transport.get_extra_info("ssl_object") is not None,
                                          login=login))
            self.arrivals.append(time.monotonic())
        return "250 2.0.0 Message accepted"


def authenticator_for(user: str, password: str):
    """An aiosmtpd ``authenticator`` that accepts one login. ``handled=False``: aiosmtpd
    answers a refusal itself (535); ``auth_data`` stays on the session (Received.login)."""
    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login, auth_data.password) == (user.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return check


class SMTPServer:
    """``options`` go to aiosmtpd's Controller: ``tls_context`` (STARTTLS), ``ssl_context``
    (implicit TLS), ``authenticator``, ``auth_required``, ``require_starttls``..."""

    def __init__(self, **options):
        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     decode_data=False, data_size_limit=10 * 1024 * 1024, **options)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()
            self.handler.replies.clear()
            self.handler.arrivals.clear()
            self.handler.drop_after = None
            self.handler.delay = 0.0
            self.handler.pipelining = True
            self.handler.refuse_all = ""
            self.handler.drop_every = 0
            self.handler.keep_dropped = True
            self.handler.dropped = 0

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def count(self) -> int:
        """How many messages arrived (without copying them)."""
        with self.handler.lock:
            return len(self.handler.messages)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.recipients]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least ``count`` messages arrived; raise AssertionError if they do not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if len(messages) >= count:
                return messages
            time.sleep(0.05)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")

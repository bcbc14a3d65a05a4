"""A real IMAP server for the tests: Debian's Dovecot, started with a generated configuration
in a temporary folder, on free ports of 127.0.0.1 (plain IMAP, and IMAPS with a certificate
made here), one mailbox user; stopped and removed afterwards. ``make test`` installs it
(``system-test-deps``)."""

import datetime
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.smtp_server import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "zwroty"
PASSWORD = "tajne-haslo"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
  mailbox Processed {{
    auto = create
  }}
}}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
"""


def available() -> bool:
    return os.path.exists(DOVECOT) and os.geteuid() == 0


def _certificate(root: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    os.chmod(root / "key.pem", 0o600)


class Dovecot:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
        os.chmod(self.root, 0o755)  # the mail processes run as the dovecot user
        self.port, self.tls_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None

    @property
    def cafile(self) -> str:
        return str(self.root / "cert.pem")

    def url(self, tls: bool = False, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        scheme, port = ("imaps", self.tls_port) if tls else ("imap", self.port)
        return f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}/INBOX" + (f"?{query}" if query else "")

    def start(self) -> None:
        account = pwd.getpwnam("dovecot")
        for folder in ("run", "state", "mail"):
            (self.root / folder).mkdir()
        os.chown(self.root / "mail", account.pw_uid, account.pw_gid)
        _certificate(self.root)
        config = self.root / "dovecot.conf"
        config.write_text(CONFIG.format(root=self.root, password=PASSWORD, uid=account.pw_uid,
                                        gid=account.pw_gid, port=self.port, tls_port=self.tls_port))
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not start: {self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

"""Debian's Dovecot as the tests' IMAP server: an instance of its own on free ports of
127.0.0.1, with its own configuration, a Maildir in a temporary folder, and a
certificate from the test's CA.

It runs beside (never instead of) a system Dovecot: its own base_dir, log file and ports.
The master runs as root, as Dovecot's privilege separation wants; the mail user is
`nobody`, who owns the Maildir. Messages are put in and looked at over IMAP, as a real
mail server's delivery and a person's mail program would.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.smtpserver import free_port
from tests.support.tls import TestCa
from tests.support.waiting import PATIENCE_SECONDS, wait_until

USER = "bounces"
PASSWORD = "geheim-imap-wachtwoord"
SERVER_NAME = "imap.rvjeugdzorg.test"

_CONFIG = """\
base_dir = {folder}/run
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
{tls}
auth_mechanisms = plain login
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={folder}/home mail=maildir:{folder}/Maildir
}}
first_valid_uid = 1
mail_location = maildir:{folder}/Maildir
{capability}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
{imaps}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
# What Dovecot offers, but MOVE: the reader then copies, flags and expunges instead.
_WITHOUT_MOVE = (
    "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
    "UIDPLUS NAMESPACE CHILDREN"
)


@dataclass
class Dovecot:
    """A running instance: its ports, its CA, and IMAP access for the test itself."""

    folder: Path
    imap_port: int
    imaps_port: int
    ca: TestCa

    def client(self) -> imaplib.IMAP4:
        """A logged-in IMAP session (over STARTTLS) for the test to put and look."""
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        connection = _Imap4To("127.0.0.1", self.imap_port, timeout=PATIENCE_SECONDS)
        connection.starttls(ssl_context=context)
        connection.login(USER, PASSWORD)
        return connection

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message in `folder`, new and unread, as the mail server delivers it."""
        with self.session() as imap:
            typ, data = imap.append(folder, "", None, raw)
            assert typ == "OK", data

    def create(self, folder: str) -> None:
        with self.session() as imap:
            typ, data = imap.create(folder)
            assert typ == "OK", data

    def contents(self, folder: str = "INBOX") -> list[tuple[bytes, set[str]]]:
        """Each message in `folder` (oldest first): its bytes and its flags."""
        with self.session() as imap:
            typ, data = imap.select(folder, readonly=True)
            assert typ == "OK", data
            typ, data = imap.uid("SEARCH", "ALL")
            uids = b" ".join(item for item in data if isinstance(item, bytes)).split()
            found = []
            for uid in uids:
                typ, parts = imap.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
                [(head, raw), *_rest] = [part for part in parts if isinstance(part, tuple)]
                flags = head.decode().partition("FLAGS (")[2].partition(")")[0].split()
                found.append((raw, set(flags)))
            return found

    def folders(self) -> set[str]:
        with self.session() as imap:
            _typ, data = imap.list()
            return {
                line.decode().rsplit(" ", 1)[1].strip('"')
                for line in data
                if isinstance(line, bytes)
            }

    @contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        imap = self.client()
        try:
            yield imap
        finally:
            imap.logout()

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


class _Imap4To(imaplib.IMAP4):
    """imaplib to 127.0.0.1, checking the certificate against the server's name."""

    def __init__(self, address: str, port: int, *, timeout: float) -> None:
        self._address = address
        super().__init__(SERVER_NAME, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self._address, self.port), timeout)


_TLS = """\
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2"""
_IMAPS = """\
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}"""


@contextmanager
def running_dovecot(
    folder: Path, ca: TestCa, *, with_move: bool = True, tls: bool = True
) -> Iterator[Dovecot]:
    """A Dovecot of the test's own, stopped again on leaving; `tls=False` offers no TLS
    at all (no STARTTLS, no IMAPS port), `with_move=False` offers no MOVE."""
    if shutil.which("dovecot") is None:
        pytest.skip("needs Debian's dovecot-imapd (make mail-servers; .ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("Dovecot's privilege separation needs root (as in CI)")
    cert, key = ca.issue(SERVER_NAME)
    # Dovecot's mail user (`nobody`) must reach the Maildir: a folder of its own under
    # /tmp, not below pytest's (root's, 0700) temporary folders. `folder` points at it.
    home = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    home.chmod(0o755)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(home, target_is_directory=True)
    folder = home
    for path in (folder / "run", folder / "home", folder / "Maildir"):
        path.mkdir(parents=True, exist_ok=True)
    shutil.chown(folder / "Maildir", "nobody", "nogroup")
    shutil.chown(folder / "home", "nobody", "nogroup")
    key.chmod(0o600)
    server = Dovecot(folder, free_port(), free_port(), ca)
    config = folder / "dovecot.conf"
    config.write_text(
        _CONFIG.format(
            folder=folder,
            password=PASSWORD,
            imap_port=server.imap_port,
            tls=_TLS.format(cert=cert, key=key) if tls else "ssl = no",
            imaps=_IMAPS.format(port=server.imaps_port) if tls else "",
            capability="" if with_move else _WITHOUT_MOVE,
        )
    )
    # Not through pipes: the master it leaves running would hold them open.
    with (folder / "start.log").open("wb") as start_log:
        started = subprocess.run(
            ["dovecot", "-c", str(config)], stdout=start_log, stderr=start_log, check=False
        )
    assert started.returncode == 0, (folder / "start.log").read_text(errors="replace")
    pid_file = folder / "run" / "master.pid"
    try:
        wait_until(lambda: _listening(server.imap_port), what="Dovecot to listen")
        if tls:
            wait_until(lambda: _listening(server.imaps_port), what="Dovecot to listen (IMAPS)")
        yield server
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not _alive(pid), what="Dovecot to stop")
        shutil.rmtree(home, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

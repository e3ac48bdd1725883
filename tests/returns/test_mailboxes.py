"""Mailbox readers: a real Maildir on disk, and the IMAP reader (imaplib) over a real
socket against a small IMAP server of this file's own on 127.0.0.1."""

from __future__ import annotations

import imaplib
import mailbox
import re
import socketserver
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import IMAP_PASSWORD_ENV, settings_from_mapping
from newsletter.core.errors import ConfigError
from newsletter.returns.mailboxes import (
    ImapMailbox,
    IncomingMessage,
    MailboxError,
    MaildirMailbox,
    open_return_mailbox,
)

DSN = b"From: MAILER-DAEMON@example.org\nSubject: failure\nMessage-ID: <1@x>\n\nbody\r\nline\n"
OTHER = b"From: someone@example.org\nSubject: hello\n\nhoi\n"


@pytest.fixture
def maildir_path(tmp_path: Path) -> Path:
    path = tmp_path / "returns"
    mailbox.Maildir(path, create=True).close()
    return path


def keys_in(path: Path) -> list[str]:
    return list(mailbox.Maildir(path, create=False).iterkeys())


def test_a_maildir_lists_new_and_seen_messages_oldest_first(maildir_path: Path) -> None:
    box = mailbox.Maildir(maildir_path, create=False)
    first = box.add(DSN)
    seen = mailbox.MaildirMessage(OTHER)
    seen.set_subdir("cur")
    seen.add_flag("S")
    second = box.add(seen)
    reader = MaildirMailbox(maildir_path)
    messages = list(reader.new_messages())
    assert [m.key for m in messages] == [first, second]
    assert messages[0].raw == DSN


def test_filing_moves_byte_for_byte_into_subfolders_and_deletes_nothing(
    maildir_path: Path,
) -> None:
    box = mailbox.Maildir(maildir_path, create=False)
    box.add(DSN)
    box.add(OTHER)
    reader = MaildirMailbox(maildir_path)
    handled, unknown = list(reader.new_messages())
    reader.file_handled(handled)
    reader.file_unknown(unknown)
    reader.close()
    assert keys_in(maildir_path) == []
    assert [box.get_folder("handled").get_bytes(k) for k in keys_in(maildir_path / ".handled")] == [
        DSN
    ]
    assert [box.get_folder("unknown").get_bytes(k) for k in keys_in(maildir_path / ".unknown")] == [
        OTHER
    ]
    # Maildir++ subfolders: mail programs show them as folders.
    assert (maildir_path / ".handled" / "maildirfolder").exists()
    # The subfolders' messages are not new messages of the mailbox.
    assert list(MaildirMailbox(maildir_path).new_messages()) == []


def test_a_message_filed_by_someone_else_meanwhile_is_skipped(maildir_path: Path) -> None:
    box = mailbox.Maildir(maildir_path, create=False)
    box.add(DSN)
    gone = box.add(OTHER)
    reader = MaildirMailbox(maildir_path)
    messages = reader.new_messages()
    next(messages)
    box.remove(gone)
    assert list(messages) == []


def test_a_missing_maildir_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MailboxError) as caught:
        MaildirMailbox(tmp_path / "nope")
    assert str(caught.value) == f"return mailbox not found: {tmp_path / 'nope'} (bounces.maildir)"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "new").mkdir()
    with pytest.raises(MailboxError, match=r"is not a Maildir: it has no cur/, tmp/$"):
        MaildirMailbox(tmp_path / "plain")


def test_a_folder_that_cannot_be_written_is_a_mailbox_error(maildir_path: Path) -> None:
    mailbox.Maildir(maildir_path, create=False).add(DSN)
    (maildir_path / ".handled").write_text("a file where the folder should be")
    reader = MaildirMailbox(maildir_path)
    [message] = reader.new_messages()
    with pytest.raises(MailboxError, match=r"cannot file .* into .*/\.handled: "):
        reader.file_handled(message)
    assert keys_in(maildir_path) == [message.key]  # still there


def test_open_return_mailbox_follows_the_settings(tmp_path: Path, maildir_path: Path) -> None:
    relative = settings_from_mapping({"bounces": {"maildir": "returns"}}, base_dir=tmp_path, env={})
    with open_return_mailbox(relative) as opened:
        assert isinstance(opened, MaildirMailbox) and opened.path == maildir_path
    unset = settings_from_mapping({}, base_dir=tmp_path, env={})
    with (
        pytest.raises(ConfigError, match="no return mailbox is set up"),
        open_return_mailbox(unset),
    ):
        pass


def test_imap_without_a_password_is_a_config_error(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {"bounces": {"imap_host": "127.0.0.1", "imap_user": "bounces"}}, base_dir=tmp_path, env={}
    )
    missing = f"{IMAP_PASSWORD_ENV} is not set"
    with pytest.raises(ConfigError, match=missing), open_return_mailbox(settings):
        pass


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_an_unreachable_imap_server_is_one_line(tmp_path: Path, security: str) -> None:
    from tests.support.smtpserver import free_port

    port = free_port()
    settings = settings_from_mapping(
        {
            "bounces": {
                "imap_host": "127.0.0.1",
                "imap_port": port,
                "imap_user": "bounces",
                "imap_security": security,
                "imap_timeout_seconds": 2,
            }
        },
        base_dir=tmp_path,
        env={IMAP_PASSWORD_ENV: "geheim"},
    )
    with pytest.raises(MailboxError) as caught, open_return_mailbox(settings):
        pass
    message = str(caught.value)
    assert message.startswith(f"IMAP 127.0.0.1:{port}: ") and "\n" not in message
    assert "geheim" not in message


def test_incoming_messages_are_plain_values() -> None:
    assert IncomingMessage("k", b"x") == IncomingMessage("k", b"x")


# -- IMAP: a small IMAP4rev1 server on 127.0.0.1 ---------------------------------------
#
# Just what the reader uses: LOGIN, SELECT, CAPABILITY and UID SEARCH, FETCH, STORE,
# COPY, MOVE and EXPUNGE, over a real socket, so that imaplib parses real answers.


_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


def _unquoted(word: str) -> str:
    if word.startswith('"'):
        return re.sub(r"\\(.)", r"\1", word[1:-1])
    return word


@dataclass
class StoredMessage:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)


class SmallImapServer:
    """Folders of messages behind one login; `with_move=False` leaves MOVE out."""

    def __init__(self, *, with_move: bool = True, keywords: bool = True) -> None:
        self.folders: dict[str, list[StoredMessage]] = {"INBOX": []}
        self.next_uid = 1
        self.commands: list[str] = []
        self.capabilities = "IMAP4rev1 UIDPLUS" + (" MOVE" if with_move else "")
        self.keywords = keywords
        self.lock = threading.Lock()
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server.serve(self.rfile, self.wfile)

        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._tcp.daemon_threads = True
        self.port = self._tcp.server_address[1]
        self._thread = threading.Thread(target=self._tcp.serve_forever, daemon=True)

    def __enter__(self) -> SmallImapServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._tcp.shutdown()
        self._tcp.server_close()

    def deliver(self, raw: bytes, folder: str = "INBOX") -> int:
        with self.lock:
            uid = self.next_uid
            self.next_uid += 1
            self.folders.setdefault(folder, []).append(StoredMessage(uid, raw))
            return uid

    def serve(self, rfile: Any, wfile: Any) -> None:
        wfile.write(b"* OK small IMAP server ready\r\n")
        selected = None
        while line := rfile.readline():
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            words = [_unquoted(word) for word in _WORD.findall(rest)]
            command = words[0].upper()
            self.commands.append(" ".join(words))
            if command == "CAPABILITY":
                wfile.write(f"* CAPABILITY {self.capabilities}\r\n".encode())
            elif command == "LOGIN":
                if words[1:] != ["bounces", "geheim"]:
                    wfile.write(f"{tag} NO [AUTHENTICATIONFAILED] wrong\r\n".encode())
                    continue
            elif command == "SELECT":
                selected = words[1]
                if selected not in self.folders:
                    wfile.write(f"{tag} NO no such folder\r\n".encode())
                    continue
                wfile.write(f"* {len(self.folders[selected])} EXISTS\r\n".encode())
            elif command == "LOGOUT":
                wfile.write(f"* BYE\r\n{tag} OK LOGOUT\r\n".encode())
                return
            elif command == "UID" and selected is not None:
                answer = self.uid_command(selected, words[1].upper(), words[2:], wfile)
                if answer:
                    wfile.write(f"{tag} {answer}\r\n".encode())
                    continue
            else:
                wfile.write(f"{tag} BAD unknown command\r\n".encode())
                continue
            wfile.write(f"{tag} OK done\r\n".encode())

    def uid_command(self, folder: str, command: str, args: list[str], wfile: Any) -> str:
        with self.lock:
            messages = self.folders[folder]
            if command == "SEARCH":
                found = [m.uid for m in messages if "\\Deleted" not in m.flags]
                for index, word in enumerate(args):
                    if word.upper() == "UNKEYWORD":
                        found = [
                            m.uid
                            for m in messages
                            if m.uid in found and args[index + 1] not in m.flags
                        ]
                wfile.write(("* SEARCH " + " ".join(map(str, found))).rstrip().encode() + b"\r\n")
                return ""
            [message] = [m for m in messages if m.uid == int(args[0])] or [None]
            if message is None:
                return ""
            if command == "FETCH":
                wfile.write(
                    f"* 1 FETCH (UID {message.uid} BODY[] {{{len(message.raw)}}}\r\n".encode()
                    + message.raw
                    + b")\r\n"
                )
            elif command == "STORE":
                flags = " ".join(args[2:]).strip("()").split()
                if not self.keywords and any(not flag.startswith("\\") for flag in flags):
                    return "NO [CANNOT] keywords are not allowed here"
                message.flags.update(flags)
            elif command in ("COPY", "MOVE"):
                if args[1] not in self.folders:
                    return "NO [TRYCREATE] no such folder"
                self.folders[args[1]].append(StoredMessage(message.uid, message.raw))
                if command == "MOVE":
                    messages.remove(message)
            elif command == "EXPUNGE" and "\\Deleted" in message.flags:
                messages.remove(message)
            return ""


def imap_mailbox(server: SmallImapServer, **folders: str) -> ImapMailbox:
    connection = imaplib.IMAP4("127.0.0.1", server.port, timeout=5)
    connection.login("bounces", "geheim")
    try:
        return ImapMailbox(connection, **folders)
    except MailboxError:
        connection.logout()
        raise


def test_imap_messages_are_read_and_flagged_in_place() -> None:
    with SmallImapServer() as server:
        first = server.deliver(DSN)
        server.deliver(OTHER)
        reader = imap_mailbox(server)
        handled, unknown = list(reader.new_messages())
        assert (handled.key, handled.raw) == (str(first), DSN)
        reader.file_handled(handled)
        reader.file_unknown(unknown)
        assert list(reader.new_messages()) == []
        reader.close()
        inbox = server.folders["INBOX"]
        assert [m.flags for m in inbox] == [
            {"\\Seen", "$NewsletterHandled"},
            {"\\Seen", "$NewsletterUnknown"},
        ]
        assert "LOGOUT" in server.commands


@pytest.mark.parametrize("with_move", [True, False])
def test_imap_messages_move_to_the_configured_folders(with_move: bool) -> None:
    with SmallImapServer(with_move=with_move) as server:
        server.folders.update({"Verwerkt": [], "Onbekend": []})
        server.deliver(DSN)
        server.deliver(OTHER)
        reader = imap_mailbox(
            server, folder="INBOX", handled_folder="Verwerkt", unknown_folder="Onbekend"
        )
        handled, unknown = list(reader.new_messages())
        reader.file_handled(handled)
        reader.file_unknown(unknown)
        assert list(reader.new_messages()) == []
        reader.close()
        assert [m.raw for m in server.folders["Verwerkt"]] == [DSN]
        assert [m.raw for m in server.folders["Onbekend"]] == [OTHER]
        assert server.folders["INBOX"] == []  # moved, or copied and expunged one by one
        used = {command.split()[1] for command in server.commands if command.startswith("UID")}
        assert ("MOVE" in used) == with_move


def test_imap_refusals_are_mailbox_errors_with_the_servers_reason() -> None:
    with SmallImapServer(keywords=False) as server:
        server.deliver(DSN)
        reader = imap_mailbox(server, handled_folder="Bestaat-niet")
        [message] = reader.new_messages()
        with pytest.raises(MailboxError, match=r"IMAP filing of UID 1 failed: .*no such folder"):
            reader.file_handled(message)
        with pytest.raises(MailboxError, match=r"keywords are not allowed"):
            reader.file_unknown(message)
        reader.close()
        with pytest.raises(MailboxError, match="IMAP select Nergens failed: no such folder"):
            imap_mailbox(server, folder="Nergens")


def test_imap_connect_insists_on_tls_before_the_password(tmp_path: Path) -> None:
    with SmallImapServer() as server:
        server.deliver(DSN)

        def settings(password: str) -> Any:
            return settings_from_mapping(
                {
                    "bounces": {
                        "imap_host": "127.0.0.1",
                        "imap_port": server.port,
                        "imap_user": "bounces",
                        "imap_security": "starttls",
                    }
                },
                base_dir=tmp_path,
                env={IMAP_PASSWORD_ENV: password},
            )

        # STARTTLS is required: a server without it is refused before any password goes.
        refused = pytest.raises(MailboxError, match="TLS not supported")
        with refused, open_return_mailbox(settings("geheim")):
            pass
        assert not any(command.startswith("LOGIN") for command in server.commands)

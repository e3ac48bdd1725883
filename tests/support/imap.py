"""A small IMAP4rev1 server on 127.0.0.1, and the return-mailbox reader logged in to it.

Just what the reader uses: LOGIN, SELECT, CAPABILITY and UID SEARCH, FETCH, STORE,
COPY, MOVE and EXPUNGE, over a real socket, so that imaplib parses real answers.
"""

from __future__ import annotations

import imaplib
import re
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

from newsletter.returns.mailboxes import ImapMailbox, MailboxError
from tests.support.waiting import PATIENCE_SECONDS

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
    connection = imaplib.IMAP4("127.0.0.1", server.port, timeout=PATIENCE_SECONDS)
    connection.login("bounces", "geheim")
    try:
        return ImapMailbox(connection, **folders)
    except MailboxError:
        connection.logout()
        raise

"""The return mailbox as its processing sees it: new messages in, each filed when done.

Two kinds, chosen by `[bounces]`: a Maildir folder on this machine, whose handled
messages move to its `.handled` subfolder and not-understood ones to `.unknown`; or an
IMAP mailbox, whose messages move to the configured folders or get a keyword where they
are. Nothing is ever deleted: a message leaves the new ones only by being filed.
"""

from __future__ import annotations

import imaplib
import mailbox
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from newsletter.core.config import IMAP_PASSWORD_ENV, Settings
from newsletter.core.errors import ConfigError, MailboxError
from newsletter.core.tls import client_context

MAILDIR_HANDLED = "handled"
MAILDIR_UNKNOWN = "unknown"
# Keywords for messages filed in place (no IMAP folder configured for them).
IMAP_HANDLED_KEYWORD = "$NewsletterHandled"
IMAP_UNKNOWN_KEYWORD = "$NewsletterUnknown"
# The setting that names each keyword's folder, for an error that says what to change.
_TARGET_SETTINGS = {
    IMAP_HANDLED_KEYWORD: "bounces.imap_handled_folder",
    IMAP_UNKNOWN_KEYWORD: "bounces.imap_unknown_folder",
}


@dataclass(frozen=True)
class IncomingMessage:
    """One message as delivered: the mailbox's own key for it, and its bytes."""

    key: str
    raw: bytes


class ReturnMailbox(Protocol):
    """What `process_return_mailbox` needs of a mailbox."""

    def new_messages(self) -> Iterator[IncomingMessage]:
        """Every message not filed yet, oldest first."""
        ...

    def file_handled(self, message: IncomingMessage) -> None:
        """File a message that was acted on (or had been before)."""
        ...

    def file_unknown(self, message: IncomingMessage) -> None:
        """Set a message aside for a person: it was not understood."""
        ...

    def close(self) -> None: ...


@contextmanager
def open_return_mailbox(settings: Settings) -> Iterator[ReturnMailbox]:
    """The mailbox `[bounces]` names, closed again on leaving."""
    config = settings.bounces
    opened: ReturnMailbox
    if config.maildir is not None:
        path = (
            config.maildir if config.maildir.is_absolute() else settings.base_dir / config.maildir
        )
        opened = MaildirMailbox(path)
    elif config.imap_host is not None:
        opened = ImapMailbox.connect(settings)
    else:
        raise ConfigError("bounces: no return mailbox is set up (set maildir or imap_host)")
    try:
        yield opened
    finally:
        opened.close()


# -- Maildir --------------------------------------------------------------------------


class MaildirMailbox:
    """A Maildir's own messages (new/ and cur/); filed into its `.handled` and `.unknown`
    subfolders (Maildir++), which are made when first needed."""

    def __init__(self, path: Path) -> None:
        try:
            if not path.is_dir():
                raise MailboxError(f"return mailbox not found: {path} (bounces.maildir)")
            missing = [name for name in ("cur", "new", "tmp") if not (path / name).is_dir()]
        except OSError as exc:
            # Postfix makes a Maildir 0700 for the mail user: say whose access is missing.
            raise MailboxError(
                f"cannot read the Maildir {path}: {exc.strerror} (the user running "
                "newsletter needs to read and write it)"
            ) from exc
        if missing:
            raise MailboxError(
                f"{path} is not a Maildir: it has no {', '.join(f'{m}/' for m in missing)}"
            )
        self.path = path
        self._maildir = mailbox.Maildir(path, factory=None, create=False)
        self._folders: dict[str, mailbox.Maildir] = {}

    def new_messages(self) -> Iterator[IncomingMessage]:
        try:
            keys = sorted(self._maildir.keys(), key=_arrival_order)
        except OSError as exc:
            raise MailboxError(
                f"cannot read the Maildir {self.path}: {exc.strerror} (the user running "
                "newsletter needs to read and write it)"
            ) from exc
        for key in keys:
            try:
                raw = self._maildir.get_bytes(key)
            except KeyError:
                continue  # filed by another run in the meantime
            except OSError as exc:
                raise MailboxError(f"cannot read {key} in {self.path}: {exc.strerror}") from exc
            yield IncomingMessage(key=key, raw=raw)

    def file_handled(self, message: IncomingMessage) -> None:
        self._move(message, MAILDIR_HANDLED)

    def file_unknown(self, message: IncomingMessage) -> None:
        self._move(message, MAILDIR_UNKNOWN)

    def _move(self, message: IncomingMessage, folder_name: str) -> None:
        # A copy into the folder first, then the original goes: a crash in between
        # leaves two copies (the next run sees it was handled), never none.
        try:
            folder = self._folders.get(folder_name)
            if folder is None:
                folder = self._maildir.add_folder(folder_name)
                self._folders[folder_name] = folder
            folder.add(message.raw)
            self._maildir.discard(message.key)
        except OSError as exc:
            raise MailboxError(
                f"cannot file {message.key} into {self.path}/.{folder_name}: {exc.strerror}"
            ) from exc

    def close(self) -> None:
        self._maildir.close()


_MAILDIR_TIME = re.compile(r"(\d+)\.(?:[^.]*?M(\d+))?")


def _arrival_order(key: str) -> tuple[int, int, str]:
    """Maildir names start with the arrival time: seconds, then (after an M) microseconds
    in most writers' names; an unusual name goes last, by name."""
    match = _MAILDIR_TIME.match(key)
    if match is None:
        return (2**63, 0, key)
    return (int(match[1]), int(match[2] or 0), key)


# -- IMAP -----------------------------------------------------------------------------


def _quoted(name: str) -> str:
    """An IMAP quoted string (folder names are printable ASCII, as [bounces] checks)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# How imaplib shows the server's words in its errors: as the repr of bytes.
_BYTES_REPR = re.compile(r"""\bb(['"])(.*?)\1""")


def _short(data: object) -> str:
    """An IMAP server's answer as one short line of text, for an error message."""
    if isinstance(data, list | tuple):
        data = b" ".join(item for item in data if isinstance(item, bytes))
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    text = _BYTES_REPR.sub(lambda found: found[2], text)
    return " ".join(text.split())[:200] or "no reason given"


_FETCHED_UID = re.compile(rb"\bUID (\d+)")


class ImapMailbox:
    """One folder of an IMAP mailbox, on a connection that is logged in already.

    Handled and not-understood messages move to the configured folders (MOVE, or COPY
    and a \\Deleted flag where the server has no MOVE), or, with no folder configured,
    keep their place and get a keyword, which the search for new messages skips.
    """

    def __init__(
        self,
        connection: imaplib.IMAP4,
        *,
        folder: str = "INBOX",
        handled_folder: str = "",
        unknown_folder: str = "",
    ) -> None:
        self._imap = connection
        self._folder = folder
        self._targets = {IMAP_HANDLED_KEYWORD: handled_folder, IMAP_UNKNOWN_KEYWORD: unknown_folder}
        self._check(*connection.select(_quoted(folder)), f"select {folder}")
        typ, data = connection.capability()
        self._capabilities = set(_short(data).upper().split()) if typ == "OK" else set()
        for keyword, setting in _TARGET_SETTINGS.items():
            if self._targets[keyword]:
                self._make_folder(self._targets[keyword], setting)

    def _make_folder(self, name: str, setting: str) -> None:
        """Create folder `name` unless it exists; MailboxError naming it when it cannot be."""
        reason: object
        try:
            # STATUS, not LIST: a name may hold LIST's wildcards (* and %).
            typ, _found = self._imap.status(_quoted(name), "(MESSAGES)")
            if typ == "OK":
                return
            typ, reason = self._imap.create(_quoted(name))
        except (imaplib.IMAP4.error, OSError) as exc:
            typ, reason = "NO", str(exc)
        if typ != "OK":
            raise MailboxError(
                f"IMAP folder {name} does not exist and could not be made ({_short(reason)}); "
                f"create it, or change {setting}"
            )

    @classmethod
    def connect(cls, settings: Settings) -> ImapMailbox:
        """Connect, log in with `NEWSLETTER_IMAP_PASSWORD` and select `[bounces] imap_folder`."""
        config = settings.bounces
        if config.imap_host is None or config.imap_user is None:
            raise ConfigError("bounces: imap_host and imap_user are needed for IMAP")
        if settings.imap_password is None or not settings.imap_password.get_secret_value():
            raise ConfigError(f"{IMAP_PASSWORD_ENV} is not set; the IMAP login needs it")
        port = config.imap_port or (993 if config.imap_security == "tls" else 143)
        where = f"IMAP {config.imap_host}:{port}"
        name = config.imap_tls_server_name or config.imap_host
        connection: imaplib.IMAP4 | None = None
        try:
            context = client_context(settings)
            timeout = config.imap_timeout_seconds
            if config.imap_security == "tls":
                connection = _ImapSslAt(
                    config.imap_host, name, port, ssl_context=context, timeout=timeout
                )
            else:
                connection = _ImapAt(config.imap_host, name, port, timeout=timeout)
                connection.starttls(ssl_context=context)
            connection.login(config.imap_user, settings.imap_password.get_secret_value())
            return cls(
                connection,
                folder=config.imap_folder,
                handled_folder=config.imap_handled_folder,
                unknown_folder=config.imap_unknown_folder,
            )
        except (imaplib.IMAP4.error, OSError) as exc:
            if connection is not None:
                _logout_quietly(connection)
            raise MailboxError(f"{where}: {_short(str(exc))}") from exc
        except MailboxError as exc:
            if connection is not None:
                _logout_quietly(connection)
            raise MailboxError(f"{where}: {exc}") from exc

    def _check(self, typ: str, data: object, doing: str) -> None:
        if typ != "OK":
            raise MailboxError(f"IMAP {doing} failed: {_short(data)}")

    def _uid(self, doing: str, command: str, *args: str) -> list[object]:
        try:
            typ, data = self._imap.uid(command, *args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError(f"IMAP {doing} failed: {_short(str(exc))}") from exc
        self._check(typ, data, doing)
        return list(data)

    def new_messages(self) -> Iterator[IncomingMessage]:
        found = self._uid(
            "search",
            "SEARCH",
            "UNDELETED",
            "UNKEYWORD",
            IMAP_HANDLED_KEYWORD,
            "UNKEYWORD",
            IMAP_UNKNOWN_KEYWORD,
        )
        uids = b" ".join(item for item in found if isinstance(item, bytes)).split()
        for uid in sorted(uids, key=int):
            key = uid.decode("ascii")
            raw = self._fetch(key)
            if raw is not None:
                yield IncomingMessage(key=key, raw=raw)

    def _fetch(self, uid: str) -> bytes | None:
        for item in self._uid(f"fetch of UID {uid}", "FETCH", uid, "(UID BODY.PEEK[])"):
            # A literal comes as (b'1 (UID 7 BODY[] {123}', b'...bytes...').
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                match = _FETCHED_UID.search(item[0]) if isinstance(item[0], bytes) else None
                if match is None or match[1].decode("ascii") == uid:
                    return item[1]
        return None  # expunged by someone else in the meantime

    def file_handled(self, message: IncomingMessage) -> None:
        self._file(message.key, IMAP_HANDLED_KEYWORD)

    def file_unknown(self, message: IncomingMessage) -> None:
        self._file(message.key, IMAP_UNKNOWN_KEYWORD)

    def _file(self, uid: str, keyword: str) -> None:
        target = self._targets[keyword]
        doing = f"filing of UID {uid}"
        if not target:
            # Handled mail is marked read; mail kept for a person stays unread, so that
            # whoever looks at the mailbox notices it.
            read = "\\Seen " if keyword == IMAP_HANDLED_KEYWORD else ""
            self._uid(doing, "STORE", uid, "+FLAGS.SILENT", f"({read}{keyword})")
        elif "MOVE" in self._capabilities:
            self._uid(doing, "MOVE", uid, _quoted(target))
        else:
            self._uid(doing, "COPY", uid, _quoted(target))
            # \Deleted is enough for the search to skip it; expunge only this one.
            self._uid(doing, "STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
            if "UIDPLUS" in self._capabilities:
                self._uid(doing, "EXPUNGE", uid)

    def close(self) -> None:
        _logout_quietly(self._imap)


class _ImapAt(imaplib.IMAP4):
    """IMAP to `address`, whose certificate must carry `name` (imaplib's `host`): the
    server may be reached by an address or an alias that is not on its certificate."""

    def __init__(self, address: str, name: str, port: int, *, timeout: float) -> None:
        self._address = address
        super().__init__(name, port, timeout=timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return socket.create_connection((self._address, self.port), timeout)


class _ImapSslAt(imaplib.IMAP4_SSL):
    """`_ImapAt` with TLS from the first byte (port 993)."""

    def __init__(
        self, address: str, name: str, port: int, *, ssl_context: ssl.SSLContext, timeout: float
    ) -> None:
        self._address = address
        super().__init__(name, port, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        raw = socket.create_connection((self._address, self.port), timeout)
        wrapped: ssl.SSLSocket = self.ssl_context.wrap_socket(raw, server_hostname=self.host)
        return wrapped


def _logout_quietly(connection: imaplib.IMAP4) -> None:
    # Going away anyway: the server drops the session on its own.
    with suppress(imaplib.IMAP4.error, OSError):
        connection.logout()

"""Mailbox readers: a real Maildir on disk, and the IMAP reader (imaplib) over a real
socket against a small IMAP server on 127.0.0.1 (tests/support/imap.py)."""

from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import IMAP_PASSWORD_ENV, settings_from_mapping
from newsletter.core.errors import ConfigError
from newsletter.returns.mailboxes import (
    IncomingMessage,
    MailboxError,
    MaildirMailbox,
    open_return_mailbox,
)
from tests.support.imap import SmallImapServer, imap_mailbox

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


# -- IMAP, against a small IMAP4rev1 server on 127.0.0.1 -------------------------------


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

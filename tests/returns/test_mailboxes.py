"""Mailbox readers: a real Maildir on disk, and the IMAP reader (imaplib) against Debian's
Dovecot on 127.0.0.1, over STARTTLS and TLS with a certificate of the test's own CA."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from newsletter.core.config import IMAP_PASSWORD_ENV, Settings, settings_from_mapping
from newsletter.core.errors import ConfigError
from newsletter.returns.mailboxes import (
    IncomingMessage,
    MailboxError,
    MaildirMailbox,
    open_return_mailbox,
)
from tests.support.dovecot import PASSWORD, SERVER_NAME, USER, Dovecot, running_dovecot
from tests.support.tls import TestCa

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


# -- IMAP, against Debian's Dovecot on 127.0.0.1 (tests/support/dovecot.py) -------------


@pytest.fixture
def dovecot(tmp_path: Path, test_ca: TestCa) -> Iterator[Dovecot]:
    with running_dovecot(tmp_path / "dovecot", test_ca) as server:
        yield server


def imap_settings(
    server: Dovecot, tmp_path: Path, *, security: str = "starttls", **bounces: object
) -> Settings:
    port = server.imap_port if security == "starttls" else server.imaps_port
    return settings_from_mapping(
        {
            "bounces": {
                "imap_host": "127.0.0.1",
                "imap_port": port,
                "imap_security": security,
                "imap_tls_server_name": SERVER_NAME,
                "imap_user": USER,
                **bounces,
            },
            "tls": {"ca_file": str(server.ca.cert)},
        },
        base_dir=tmp_path,
        env={IMAP_PASSWORD_ENV: PASSWORD},
    )


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_imap_messages_are_read_and_flagged_in_place(
    dovecot: Dovecot, tmp_path: Path, security: str
) -> None:
    dovecot.deliver(DSN)
    dovecot.deliver(OTHER)
    with open_return_mailbox(imap_settings(dovecot, tmp_path, security=security)) as reader:
        handled, unknown = list(reader.new_messages())
        assert handled.raw.replace(b"\r\n", b"\n") == DSN.replace(b"\r\n", b"\n")
        reader.file_handled(handled)
        reader.file_unknown(unknown)
        assert list(reader.new_messages()) == []
    [(_, handled_flags), (_, unknown_flags)] = dovecot.contents()
    assert handled_flags == {"\\Seen", "$NewsletterHandled"}
    # Kept for a person: unread, so that whoever opens the mailbox sees it.
    assert unknown_flags == {"$NewsletterUnknown"}


@pytest.mark.parametrize("with_move", [True, False], ids=["MOVE", "COPY"])
def test_imap_messages_move_to_the_configured_folders_made_when_missing(
    tmp_path: Path, test_ca: TestCa, with_move: bool
) -> None:
    with running_dovecot(tmp_path / "dovecot", test_ca, with_move=with_move) as server:
        server.deliver(DSN)
        server.deliver(OTHER)
        settings = imap_settings(
            server, tmp_path, imap_handled_folder="Verwerkt", imap_unknown_folder="Onbekend"
        )
        with open_return_mailbox(settings) as reader:
            handled, unknown = list(reader.new_messages())
            reader.file_handled(handled)
            reader.file_unknown(unknown)
            assert list(reader.new_messages()) == []
        assert {"Verwerkt", "Onbekend"} <= server.folders()
        [(moved_dsn, _)] = server.contents("Verwerkt")
        [(kept, kept_flags)] = server.contents("Onbekend")
        assert b"Subject: failure" in moved_dsn and b"Subject: hello" in kept
        assert "\\Seen" not in kept_flags
        assert server.contents("INBOX") == []  # moved, or copied and expunged one by one


def test_a_folder_that_cannot_be_made_is_named(dovecot: Dovecot, tmp_path: Path) -> None:
    settings = imap_settings(dovecot, tmp_path, imap_handled_folder="Verwerkt/Oud")
    with pytest.raises(MailboxError) as caught, open_return_mailbox(settings):
        pass
    message = str(caught.value)
    assert "IMAP folder Verwerkt/Oud does not exist and could not be made" in message
    assert "bounces.imap_handled_folder" in message and "\n" not in message


def test_a_wrong_password_is_one_line_of_text(dovecot: Dovecot, tmp_path: Path) -> None:
    settings = imap_settings(dovecot, tmp_path)
    wrong = settings.model_copy(update={"imap_password": SecretStr("fout")})
    with pytest.raises(MailboxError) as caught, open_return_mailbox(wrong):
        pass
    message = str(caught.value)
    assert message.startswith(f"IMAP 127.0.0.1:{dovecot.imap_port}: ")
    assert "Authentication failed" in message
    assert "b'" not in message and "\n" not in message and "fout" not in message


@pytest.mark.parametrize(
    "change",
    [{"tls": {}}, {"bounces": {"imap_tls_server_name": "ander.rvjeugdzorg.test"}}],
    ids=["unknown CA", "wrong name"],
)
def test_a_server_that_fails_the_tls_check_gets_no_password(
    dovecot: Dovecot, tmp_path: Path, change: dict[str, dict[str, object]]
) -> None:
    settings = imap_settings(dovecot, tmp_path)
    data = settings.model_dump(by_alias=True, exclude_none=True)
    for section, values in change.items():
        data[section] = {**data[section], **values} if values else {}
    failing = settings_from_mapping(data, base_dir=tmp_path, env={IMAP_PASSWORD_ENV: PASSWORD})
    with (
        pytest.raises(MailboxError, match="certificate verify failed"),
        open_return_mailbox(failing),
    ):
        pass
    assert f"user=<{USER}>" not in dovecot.log()


def test_imap_connect_insists_on_tls_before_the_password(tmp_path: Path, test_ca: TestCa) -> None:
    # A server that offers no STARTTLS is refused before any password goes.
    with running_dovecot(tmp_path / "dovecot", test_ca, tls=False) as server:
        settings = imap_settings(server, tmp_path)
        with pytest.raises(MailboxError, match="TLS not supported"), open_return_mailbox(settings):
            pass
        log = server.log()
        assert "no auth attempts" in log and f"user=<{USER}>" not in log

"""The [bounces] section: a Maildir or an IMAP mailbox, the soft-bounce limit, and the
IMAP password from the environment only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import IMAP_PASSWORD_ENV, Settings, load_settings, settings_from_mapping
from newsletter.core.errors import ConfigError


def build(bounces: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    return settings_from_mapping({"bounces": bounces}, base_dir=Path("/srv"), env=env or {})


def error_of(bounces: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        build(bounces)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    return message


def test_defaults_leave_the_return_mailbox_off() -> None:
    config = Settings().bounces
    assert config.maildir is None and config.imap_host is None
    assert (config.soft_bounce_limit, config.soft_bounce_days) == (3, 30)
    assert (config.imap_security, config.imap_folder) == ("tls", "INBOX")


def test_a_maildir_or_an_imap_mailbox() -> None:
    assert build({"maildir": "/var/mail/bounces"}).bounces.maildir == Path("/var/mail/bounces")
    imap = build(
        {"imap_host": "imap.example.org", "imap_user": "bounces", "imap_security": "starttls"},
        env={IMAP_PASSWORD_ENV: "geheim"},
    )
    assert imap.bounces.imap_host == "imap.example.org"
    assert imap.imap_password is not None and imap.imap_password.get_secret_value() == "geheim"
    assert "geheim" not in repr(imap) and "geheim" not in imap.model_dump_json()


@pytest.mark.parametrize(
    ("bounces", "expected"),
    [
        (
            {"maildir": "m", "imap_host": "imap.example.org", "imap_user": "u"},
            "bounces: set maildir or imap_host, not both",
        ),
        ({"imap_host": "imap.example.org"}, "bounces: imap_host is set: imap_user is required"),
        ({"imap_security": "none"}, "bounces.imap_security: Input should be 'tls' or 'starttls'"),
        ({"soft_bounce_limit": 0}, "bounces.soft_bounce_limit: Input should be greater than"),
        ({"soft_bounce_days": "thirty"}, "bounces.soft_bounce_days: Input should be a valid"),
        ({"imap_folder": "Inbox\r\nA001 LOGOUT"}, "bounces.imap_folder: String should match"),
        ({"imap_host": "imap example"}, "bounces.imap_host: String should match"),
        ({"mailbox": "m"}, "bounces.mailbox: unknown key"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(bounces: dict[str, Any], expected: str) -> None:
    assert expected in error_of(bounces)


def test_the_imap_password_never_comes_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text('imap_password = "geheim"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="imap_password: unknown key"):
        load_settings(path, env={})
    path.write_text('[bounces]\nimap_password = "geheim"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bounces\.imap_password: unknown key"):
        load_settings(path, env={})

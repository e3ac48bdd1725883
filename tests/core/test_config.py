"""Settings: defaults, validation, one-line errors naming the key, secrets from the env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from newsletter.core.config import Settings, load_settings
from newsletter.core.errors import ConfigError
from tests.support.paths import ROOT

EXAMPLE = ROOT / "newsletter.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env={})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_example_file_is_valid_and_carries_the_networks_defaults() -> None:
    settings = load_settings(EXAMPLE, env={})
    assert settings.site.name == "Radicale vernieuwing jeugdzorg"
    assert settings.site.contact_email == "rvjeugdzorg@loc.nl"
    assert settings.site.contact_phone == "030 284 3200"
    assert settings.site.timezone == "Europe/Amsterdam"
    assert settings.sender.from_ == "Radicale vernieuwing jeugdzorg <rvjeugdzorg@loc.nl>"
    assert {theme.name for theme in settings.themes.values()} >= {
        "Opstarten beweging",
        "Mensen en initiatieven",
        "Doe je mee?",
    }


def test_example_file_spells_out_every_default() -> None:
    # What the example shows for a key must be what you get when you leave it out.
    example = load_settings(EXAMPLE, env={})
    defaults = Settings()
    for section in (
        "feed",
        "smtp",
        "delivery",
        "dkim",
        "tls",
        "database",
        "subscribers",
        "web",
        "schedule",
    ):
        if section == "feed":
            assert example.feed.model_dump(exclude={"urls"}) == defaults.feed.model_dump(
                exclude={"urls"}
            )
        else:
            assert getattr(example, section) == getattr(defaults, section)
    assert example.themes == defaults.themes


def test_example_file_names_every_key() -> None:
    # Set or commented out, every key is there with what it does: the one place a
    # sysadmin looks.
    text = EXAMPLE.read_text(encoding="utf-8")
    sections = re.split(r"^\[([a-z_.]+)\]$", text, flags=re.MULTILINE)
    by_section = dict(zip(sections[1::2], sections[2::2], strict=True))
    missing = []
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if name == "themes" or not isinstance(model, type) or not issubclass(model, BaseModel):
            continue
        body = by_section.get(name, "")
        for key, key_field in model.model_fields.items():
            spelled = key_field.alias or key
            if not re.search(rf"^#? ?{re.escape(spelled)} = ", body, flags=re.MULTILINE):
                missing.append(f"{name}.{spelled}")
    assert not missing, f"newsletter.example.toml does not name: {missing}"


def test_missing_file_names_the_path_and_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.toml") as caught:
        load_settings(tmp_path / "nope.toml", env={})
    assert caught.value.exit_code == 2


def test_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[site]\nname = "Elders"\n')
    settings = load_settings(None, env={"NEWSLETTER_CONFIG": str(path)})
    assert settings.site.name == "Elders"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[smtp]\nhots = 'x'\n").endswith("smtp.hots: unknown key")


def test_unknown_section_is_named(tmp_path: Path) -> None:
    assert "smpt: unknown key" in load_error(tmp_path, "[smpt]\nhost = 'x'\n")


def test_wrong_type_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[smtp]\nport = 'twenty-five'\n")
    assert "smtp.port:" in message and "integer" in message


def test_out_of_range_is_named(tmp_path: Path) -> None:
    assert "smtp.port:" in load_error(tmp_path, "[smtp]\nport = 70000\n")


def test_bad_url_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[site]\nbase_url = 'ftp://example.org'\n")
    assert message.endswith("site.base_url: not an http(s) URL: 'ftp://example.org'")


def test_bad_feed_scheme_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[feed]\nurls = ['gopher://example.org/feed']\n")
    assert "feed.urls.0: unsupported scheme 'gopher'" in message


def test_bad_security_value_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[smtp]\nsecurity = 'ssl'\n")
    assert "smtp.security:" in message and "'starttls'" in message


def test_bad_timezone_and_sender_are_both_reported(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, "[site]\ntimezone = 'Mars/Olympus'\n[sender]\nfrom = 'not an address'\n"
    )
    assert "site.timezone: unknown time zone 'Mars/Olympus'" in message
    assert "sender.from: not an e-mail address" in message


def test_sender_with_line_break_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[sender]\nfrom = "A <a@b.nl>\\nBcc: x@y.nl"\n')
    assert "sender.from: contains a line break" in message


def test_unsupported_database_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[database]\nurl = 'mysql://x@localhost/db'\n")
    assert message.startswith(f"{tmp_path / 'newsletter.toml'}: database.url: use sqlite")


def test_invalid_toml_gives_the_line(tmp_path: Path) -> None:
    assert "invalid TOML" in load_error(tmp_path, "[site\nname = 1\n")


def test_theme_slug_must_be_simple(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[themes.'Doe mee!']\nname = 'Doe mee'\n")
    assert "themes.Doe mee!" in message


def test_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    settings = load_settings(
        path,
        env={
            "NEWSLETTER_SECRET_KEY": "s3cret-0123456789abcdef0123456789",
            "NEWSLETTER_SMTP_PASSWORD": "pw",
        },
    )
    assert settings.require_secret_key() == "s3cret-0123456789abcdef0123456789"
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "pw"
    assert "s3cret-0123456789abcdef0123456789" not in repr(settings)
    assert "secret_key: unknown key" in load_error(tmp_path, "secret_key = 'in the file'\n")


SHORT_KEY_LINE = (
    "NEWSLETTER_SECRET_KEY is too short (3 bytes, at least 32); make one with: "
    'python -c "import secrets; print(secrets.token_urlsafe(32))"'
)


def test_a_short_secret_key_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    # With "k3y" the key was recovered from one unsubscribe link in half a second.
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, ""), env={"NEWSLETTER_SECRET_KEY": "k3y"})
    assert str(caught.value) == SHORT_KEY_LINE
    # 32 bytes, counted as UTF-8: 31 characters of which one takes two bytes is enough.
    settings = load_settings(write(tmp_path, ""), env={"NEWSLETTER_SECRET_KEY": "é" + "k" * 30})
    assert settings.require_secret_key() == "é" + "k" * 30
    with pytest.raises(ConfigError, match="too short \\(31 bytes"):
        load_settings(write(tmp_path, ""), env={"NEWSLETTER_SECRET_KEY": "k" * 31})


def test_a_short_secret_key_given_in_code_is_refused_where_it_is_used() -> None:
    settings = Settings(secret_key="k3y")
    with pytest.raises(ConfigError) as caught:
        settings.require_secret_key()
    assert str(caught.value) == SHORT_KEY_LINE


def test_missing_secret_key_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY is not set"):
        settings.require_secret_key()


def test_relative_paths_are_anchored_at_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "[feed]\nurls = ['feeds/site.xml']\n")
    settings = load_settings(path, env={})
    assert settings.database_url == f"sqlite:///{tmp_path / 'newsletter.db'}"
    assert settings.feed_sources == [str(tmp_path / "feeds" / "site.xml")]


# -- [web] embed_origins -------------------------------------------------------------------


def test_embed_origins_are_kept_as_plain_origins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[web]\nembed_origins = ['https://www.RVjeugdzorg.nl/', 'http://127.0.0.1:8080',"
        " 'https://example.org:443', 'http://[::1]:81']\n",
    )
    settings = load_settings(path, env={})
    assert settings.web.embed_origins == [
        "https://www.rvjeugdzorg.nl",
        "http://127.0.0.1:8080",
        "https://example.org",
        "http://[::1]:81",
    ]
    assert Settings().web.embed_origins == []


@pytest.mark.parametrize(
    "value",
    [
        "www.rvjeugdzorg.nl",
        "ftp://www.rvjeugdzorg.nl",
        "https://www.rvjeugdzorg.nl/praat-mee",
        "https://www.rvjeugdzorg.nl?x=1",
        "https://user@www.rvjeugdzorg.nl",
        "https://www.rvjeugdzorg.nl:99999",
        "https://",
        "*",
        "null",
    ],
)
def test_a_bad_embed_origin_is_named(tmp_path: Path, value: str) -> None:
    message = load_error(tmp_path, f"[web]\nembed_origins = ['https://ok.example', '{value}']\n")
    assert message.endswith(
        f"web.embed_origins.1: not an origin (scheme://host[:port], no path): {value!r}"
    )


# -- [site] image_hosts and postal_address ------------------------------------------------


def test_image_hosts_are_host_names(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, '[site]\nimage_hosts = ["Beeld.RVJeugdzorg.nl", "loc.nl"]\n'), env={}
    )
    assert settings.site.image_hosts == ["beeld.rvjeugdzorg.nl", "loc.nl"]
    assert Settings().site.image_hosts == []
    for bad in ("https://beeld.rvjeugdzorg.nl", "beeld.rvjeugdzorg.nl/foto", "*.loc.nl", ""):
        message = load_error(tmp_path, f'[site]\nimage_hosts = ["{bad}"]\n')
        assert "site.image_hosts.0:" in message


def test_the_postal_address_is_one_line(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, '[site]\npostal_address = "  Postbus 123,  3500 AA Utrecht "\n'), env={}
    )
    assert settings.site.postal_address == "Postbus 123, 3500 AA Utrecht"
    assert Settings().site.postal_address == ""
    message = load_error(tmp_path, '[site]\npostal_address = "Postbus 123\\n3500 AA Utrecht"\n')
    assert "site.postal_address: one line, without line breaks" in message

"""Settings: one TOML file plus secrets from the environment, validated once at start.

The file is found at `--config PATH`, else `$NEWSLETTER_CONFIG`, else `./newsletter.toml`.
Every section and key is checked by pydantic; unknown keys are errors, so a typo never
silently falls back to a default. Secrets are never read from the file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from newsletter.core.config_values import (
    Crontab,
    EmailAddress,
    FeedSource,
    HostName,
    HttpUrl,
    Mailbox,
    Origin,
    Slug,
    TimeZoneName,
)
from newsletter.core.errors import ConfigError

DEFAULT_CONFIG_NAME = "newsletter.toml"
CONFIG_ENV = "NEWSLETTER_CONFIG"
SECRET_KEY_ENV = "NEWSLETTER_SECRET_KEY"  # noqa: S105 (a variable name)
SMTP_PASSWORD_ENV = "NEWSLETTER_SMTP_PASSWORD"  # noqa: S105 (a variable name)
IMAP_PASSWORD_ENV = "NEWSLETTER_IMAP_PASSWORD"  # noqa: S105 (a variable name)

# The key signs every unsubscribe and preference link: a short one is guessed from a single
# link in under a second, and then anyone can unsubscribe or read anyone's preferences.
MIN_SECRET_KEY_BYTES = 32
MAKE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'  # noqa: S105


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SiteSettings(_Section):
    name: str = Field("Radicale vernieuwing jeugdzorg", min_length=1, max_length=120)
    supporter: str = Field("LOC Waardevolle zorg", max_length=120)
    base_url: HttpUrl = "http://127.0.0.1:8000"
    website_url: HttpUrl = "https://www.rvjeugdzorg.nl"
    join_url: HttpUrl = "https://www.rvjeugdzorg.nl/praat-mee"
    language: Literal["nl"] = "nl"
    timezone: TimeZoneName = "Europe/Amsterdam"
    contact_email: Mailbox = "rvjeugdzorg@loc.nl"
    contact_phone: str = Field("030 284 3200", max_length=40)
    # Hosts besides those of website_url and base_url that the mail may load images
    # from (a media server, say); an image from any other host is left out.
    image_hosts: list[HostName] = Field(default_factory=list, max_length=20)

    # The sender's postal address, on one line ("Postbus 123, 3500 AA Utrecht"): shown in
    # the footer of every mail when set, so that readers know who sends it.
    postal_address: str = Field("", max_length=150)

    @field_validator("image_hosts")
    @classmethod
    def _lower_case_hosts(cls, value: list[str]) -> list[str]:
        return [host.lower() for host in value]

    @field_validator("postal_address")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\x00\u2028\u2029"):
            raise ValueError("one line, without line breaks")
        return " ".join(value.split())


class FeedSettings(_Section):
    urls: list[FeedSource] = Field(default_factory=list)
    max_articles: int = Field(8, ge=1, le=50)
    min_new_articles: int = Field(1, ge=0, le=50)
    excerpt_words: int = Field(60, ge=10, le=300)
    timeout_seconds: float = Field(20.0, gt=0, le=300)
    max_bytes: int = Field(5_000_000, ge=10_000, le=100_000_000)


class SenderSettings(_Section):
    from_: Mailbox = Field("Radicale vernieuwing jeugdzorg <rvjeugdzorg@loc.nl>", alias="from")
    reply_to: Mailbox | None = None


class SmtpSettings(_Section):
    host: str = Field("localhost", min_length=1)
    port: int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    max_connections: int = Field(4, ge=1, le=64)
    rate_per_second: float = Field(0.0, ge=0, description="0 means no limit")
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    # What EHLO says this machine is. Empty: its fully qualified name when that has a dot,
    # else the domain of [sender] from (relays refuse a name without a dot).
    helo_name: HostName | None = None
    # The name the server's certificate must carry, when `host` is an IP address or an
    # alias of the name in the certificate. Empty: `host`.
    tls_server_name: HostName | None = None


class DeliverySettings(_Section):
    max_per_hour: int = Field(0, ge=0, description="0 means no hourly cap")
    retry_for_hours: float = Field(24.0, gt=0, le=24 * 7)
    first_retry_minutes: float = Field(5.0, gt=0, le=24 * 60)
    # The envelope sender (Return-Path); bounces go there. Empty: the [sender] address.
    return_path: Mailbox | None = None
    # Return path as bounces+TOKEN@domain, so a bounce names its subscriber (VERP).
    verp: bool = False
    # List-Id's identifier, e.g. "nieuwsbrief.rvjeugdzorg.nl"; empty: derived from the
    # sender's domain.
    list_id: str = Field("", max_length=200, pattern=r"^[A-Za-z0-9.-]*$")


class DkimSettings(_Section):
    # Signing is on when key_file is set; most relays (Postfix with OpenDKIM, SES) sign
    # for you, so leave it off there.
    key_file: Path | None = None
    selector: str = Field("", max_length=63, pattern=r"^[A-Za-z0-9._-]*$")
    domain: str = Field("", max_length=253, pattern=r"^[A-Za-z0-9.-]*$")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> DkimSettings:
        if self.key_file is not None and not (self.selector and self.domain):
            raise ValueError("key_file is set: selector and domain are required too")
        return self


class TlsSettings(_Section):
    # A PEM file of certificate authorities to trust besides the system's: a relay or a
    # mail server with a certificate of the organisation's own CA. Used for SMTP, IMAP and
    # fetching feeds (which keep trusting the public CAs too).
    ca_file: Path | None = None
    # The oldest TLS version the SMTP and IMAP connections accept.
    min_version: Literal["1.2", "1.3"] = "1.2"


class DatabaseSettings(_Section):
    url: str = "sqlite:///newsletter.db"

    @field_validator("url")
    @classmethod
    def _supported_backend(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend in ("sqlite", "postgresql"):
            return value
        raise ValueError(f"use sqlite:///PATH or postgresql+psycopg://..., not {value!r}")


class SubscriberSettings(_Section):
    confirm_hours: int = Field(48, ge=1, le=24 * 30)
    purge_unconfirmed_days: int = Field(7, ge=1, le=365)
    max_confirmation_mails_per_day: int = Field(3, ge=1, le=20)
    # A short welcome after someone confirms their own sign-up (never after staff add
    # or import someone).
    welcome_mail: bool = True
    ip_policy: Literal["store", "hash", "none"] = "hash"


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Accepted sign-ups per client address: a library, school or action-day laptop
    # shares one address, so this is generous (docs/subscribers.md says why).
    signup_limit_per_ip: int = Field(60, ge=1, le=10_000)
    signup_window_minutes: int = Field(60, ge=1, le=24 * 60)
    # Addresses of reverse proxies whose X-Forwarded-For names the real client.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Staff login (/admin): attempts per client and per name, and how long a session lasts.
    login_limit: int = Field(10, ge=1, le=1000)
    login_window_minutes: int = Field(15, ge=1, le=24 * 60)
    staff_idle_minutes: int = Field(60, ge=5, le=7 * 24 * 60)
    staff_session_hours: int = Field(12, ge=1, le=30 * 24)
    # The sites whose pages may carry the sign-up form that posts to /embed/subscribe
    # (scheme://host[:port]); empty: only this site itself.
    embed_origins: list[Origin] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _are_addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {value!r}") from None
        return values


class ScheduleSettings(_Section):
    # When the job runs (`scheduler.py`, `newsletter schedule`), in [site] timezone.
    cron: Crontab = "0 9 * * tue"
    # Send a new draft at once; otherwise staff get a test copy and a link to review it.
    auto_send: bool = False
    # Who gets the test copies, review links and failure reports.
    staff: list[EmailAddress] = Field(default_factory=list)
    # A run missed while the scheduler was down is made up at start within this time.
    misfire_grace_minutes: int = Field(60, ge=1, le=7 * 24 * 60)


class ThemeSettings(_Section):
    name: str = Field(min_length=1, max_length=80)
    categories: list[str] = Field(default_factory=list)
    # One sentence on the sign-up page: what this theme covers.
    description: str = Field("", max_length=200, pattern=r"^[^\r\n<>]*$")


class TemplateSettings(_Section):
    dir: Path | None = None


class BouncesSettings(_Section):
    # The mailbox the return path delivers to (bounces, complaints, mailto unsubscribes):
    # a Maildir folder or an IMAP mailbox. Neither set: `newsletter bounces` is off.
    maildir: Path | None = None
    imap_host: str | None = Field(None, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    imap_port: int | None = Field(None, ge=1, le=65535, description="empty: 993 tls, 143 starttls")
    imap_security: Literal["tls", "starttls"] = "tls"
    # The name the IMAP server's certificate must carry, when imap_host is an address or
    # another name for it. Empty: imap_host. (Its CAs: [tls] ca_file.)
    imap_tls_server_name: HostName | None = None
    imap_user: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\r\n\x00]+$")
    imap_folder: str = Field("INBOX", min_length=1, max_length=200, pattern=r"^[\x20-\x7e]+$")
    # Where handled and not-understood messages are moved; empty: they stay in imap_folder
    # with a keyword ($NewsletterHandled, $NewsletterUnknown). A Maildir gets .handled and
    # .unknown subfolders.
    imap_handled_folder: str = Field("", max_length=200, pattern=r"^[\x20-\x7e]*$")
    imap_unknown_folder: str = Field("", max_length=200, pattern=r"^[\x20-\x7e]*$")
    imap_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # Temporary failures in this many editions within soft_bounce_days suppress the address.
    soft_bounce_limit: int = Field(3, ge=1, le=100)
    soft_bounce_days: int = Field(30, ge=1, le=365)
    # A bounce that names a subscriber by address only (nothing we signed in it) gets
    # them a probe, at most one in this many days; only a probe that bounces too counts.
    probe_interval_days: int = Field(7, ge=1, le=365)

    @model_validator(mode="after")
    def _one_mailbox(self) -> BouncesSettings:
        if self.maildir is not None and self.imap_host is not None:
            raise ValueError("set maildir or imap_host, not both")
        if self.imap_host is not None and self.imap_user is None:
            raise ValueError("imap_host is set: imap_user is required too")
        return self


def default_themes() -> dict[str, ThemeSettings]:
    """The themes of the movement's website ("Thema's")."""
    return {
        "opstarten-beweging": ThemeSettings(
            name="Opstarten beweging",
            categories=["Opstarten beweging", "Opstarten beweging & Kampvuurgesprekken"],
            description="Hoe de beweging groeit: actiedagen, eerste gesprekken en wat eruit komt.",
        ),
        "kampvuurgesprekken": ThemeSettings(
            name="Kampvuurgesprekken",
            categories=["Kampvuurgesprekken", "Opstarten beweging & Kampvuurgesprekken"],
            description="Verslagen van gesprekken met ouders, jongeren en hulpverleners.",
        ),
        "mensen-en-initiatieven": ThemeSettings(
            name="Mensen en initiatieven",
            categories=["Mensen en initiatieven"],
            description="Mensen en plekken die de jeugdzorg nu al anders doen.",
        ),
        "doe-je-mee": ThemeSettings(
            name="Doe je mee?",
            categories=["Doe je mee?"],
            description="Oproepen om mee te denken, mee te praten en mee te doen.",
        ),
    }


class Settings(_Section):
    site: SiteSettings = Field(default_factory=SiteSettings)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    sender: SenderSettings = Field(default_factory=SenderSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    dkim: DkimSettings = Field(default_factory=DkimSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    subscribers: SubscriberSettings = Field(default_factory=SubscriberSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    themes: dict[Slug, ThemeSettings] = Field(default_factory=default_themes)
    templates: TemplateSettings = Field(default_factory=TemplateSettings)
    bounces: BouncesSettings = Field(default_factory=BouncesSettings)

    # Not from the file: where relative paths are resolved, and the secrets.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    secret_key: SecretStr | None = Field(None, exclude=True)
    smtp_password: SecretStr | None = Field(None, exclude=True)
    imap_password: SecretStr | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _themes_have_unique_names(self) -> Settings:
        names = [theme.name.casefold() for theme in self.themes.values()]
        if len(names) != len(set(names)):
            raise ValueError("two themes share a name")
        return self

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path anchored at the config's folder."""
        url = make_url(self.database.url)
        database = url.database
        if url.get_backend_name() == "sqlite" and database and database != ":memory:":
            path = Path(database)
            if not path.is_absolute():
                url = url.set(database=str((self.base_dir / path).resolve()))
        return url.render_as_string(hide_password=False)

    @property
    def feed_sources(self) -> list[str]:
        """Feed URLs, with relative file paths anchored at the config's folder."""
        sources = []
        for url in self.feed.urls:
            scheme = urlsplit(url).scheme.lower()
            if scheme in ("http", "https", "file"):
                sources.append(url)
            else:
                sources.append(str((self.base_dir / url).resolve()))
        return sources

    @property
    def templates_dir(self) -> Path | None:
        directory = self.templates.dir
        if directory is None:
            return None
        return self.resolve_path(directory)

    def resolve_path(self, path: Path) -> Path:
        """`path` from the settings, a relative one anchored at the settings file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def require_secret_key(self) -> str:
        if self.secret_key is None or not self.secret_key.get_secret_value():
            raise ConfigError(f"{SECRET_KEY_ENV} is not set; it signs the links in every mail")
        key = self.secret_key.get_secret_value()
        check_secret_key(key)
        return key


def check_secret_key(key: str) -> None:
    """Refuse a key too short to keep the signed links unguessable, saying how to make one."""
    size = len(key.encode("utf-8"))
    if size < MIN_SECRET_KEY_BYTES:
        raise ConfigError(
            f"{SECRET_KEY_ENV} is too short ({size} bytes, at least {MIN_SECRET_KEY_BYTES}); "
            f"make one with: {MAKE_SECRET_KEY}"
        )


_NOT_FROM_FILE = ("base_dir", "secret_key", "smtp_password", "imap_password")


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"] if part != "from_") or "(top level)"
    location = location.replace("from_", "from")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{location}: unknown key"
    if kind == "missing":
        return f"{location}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}"


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    env: Mapping[str, str],
    origin: str = "settings",
) -> Settings:
    """Validate already-parsed TOML data; raise ConfigError with one line on failure."""
    secret = env.get(SECRET_KEY_ENV) or None
    if secret is not None:
        check_secret_key(secret)
    password = env.get(SMTP_PASSWORD_ENV) or None
    imap_password = env.get(IMAP_PASSWORD_ENV) or None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: expected a table of sections")
    for key in _NOT_FROM_FILE:
        if key in data:
            raise ConfigError(f"{origin}: {key}: unknown key (secrets come from the environment)")
    try:
        return Settings.model_validate(
            {
                **data,
                "base_dir": base_dir,
                "secret_key": secret,
                "smtp_password": password,
                "imap_password": imap_password,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{origin}: {problems}") from exc


def find_config_path(explicit: Path | None, env: Mapping[str, str]) -> Path:
    if explicit is not None:
        return explicit
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return Path(DEFAULT_CONFIG_NAME)


def load_settings(explicit: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings file; every problem is a one-line ConfigError."""
    environ = os.environ if env is None else env
    path = find_config_path(explicit, environ)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path} (pass --config PATH or set {CONFIG_ENV})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return settings_from_mapping(
        data, base_dir=path.resolve().parent, env=environ, origin=str(path)
    )

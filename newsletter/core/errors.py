"""The one exception hierarchy of the newsletter; entry points turn these into messages.

    NewsletterError              anything the product reports to a person
    ├── ConfigError              the settings file or environment is wrong (exit code 2)
    ├── StorageError             the database cannot be reached or migrated
    ├── FeedError                one feed could not be fetched or read
    │   ├── FetchError           transport: unreachable, HTTP status, timeout, too large
    │   └── FeedParseError       the bytes are not a usable feed
    ├── EditionError             an edition does not exist or is in the wrong state
    ├── CompositionError         a template is missing or does not render
    ├── SubscriberError          a request about a subscriber cannot be carried out
    │   ├── InvalidInput         form, API or CLI input is malformed (per-field codes)
    │   ├── UnknownSubscriber    staff named an address that is not on the list
    │   ├── ImportFileError      a CSV file to import cannot be read at all (`code` says why)
    │   └── SuppressedAddress    staff may not confirm it: only its own opt-in brings it back
    ├── AccountError             a staff account cannot be created or changed as asked
    ├── MailboxError             the return mailbox cannot be opened, read or written
    └── DeliveryError            mail could not be handed to the SMTP server
        ├── SmtpConnectError     no session: refused, TLS or login failed (check settings)
        ├── SmtpConnectionLost   an open session broke, timed out or got 421 (reconnect)
        └── MailRefused          the server refused one single mail (`permanent`: for good)

Catch `NewsletterError` at an entry point (CLI command, web handler, scheduled job);
catch a subclass only where the caller can do something specific about it, such as the
fetch loop, which records a `FeedError` against its feed and goes on with the next one,
and the sender, which reconnects after `SmtpConnectionLost`. A refused recipient is not
an exception at all: the SMTP client returns the server's replies as data.
Messages are one line and name what is wrong, so they can be shown as they are.
"""

from __future__ import annotations

# The exit code when nothing failed for good but some mail waits for a retry (sysexits'
# EX_TEMPFAIL): `newsletter send` and `newsletter worker --once`; run it again later.
EXIT_WAITING = 75


class NewsletterError(Exception):
    """Base of every error the product reports to a person."""

    exit_code = 1


class ConfigError(NewsletterError):
    """The settings file or the environment is missing, malformed or invalid."""

    exit_code = 2


class StorageError(NewsletterError):
    """The database cannot be opened, reached or brought up to date."""


class FeedError(NewsletterError):
    """One feed could not be turned into articles; other feeds are unaffected."""


class FetchError(FeedError):
    """The feed's bytes could not be fetched: network, HTTP status, timeout or size."""


class FeedParseError(FeedError):
    """The fetched bytes are not a feed we can read, or hold nothing usable."""


class EditionError(NewsletterError):
    """An edition does not exist, or the requested change is not allowed in its state."""


class CompositionError(NewsletterError):
    """A template is missing or fails to render."""


class DeliveryError(NewsletterError):
    """Mail could not be handed to the SMTP server."""


class SmtpConnectError(DeliveryError):
    """No SMTP session could be set up: connection refused, TLS, greeting or login failed."""


class SmtpConnectionLost(DeliveryError):
    """An open SMTP session broke: dropped, timed out or closed by the server (421)."""


class MailRefused(DeliveryError):
    """The server refused one single mail; `permanent` for a 5xx (try no more)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class AccountError(NewsletterError):
    """A staff account cannot be created or changed: bad name or password, taken, unknown."""


class MailboxError(NewsletterError):
    """The return mailbox cannot be opened, read or written: a path, a server, a login.

    `newsletter bounces` stops (exit code 1); what it filed so far stays filed and acted on.
    """


class SubscriberError(NewsletterError):
    """A request about a subscriber cannot be carried out."""


class InvalidInput(SubscriberError):
    """Input is malformed; `problems` maps each field to a short code such as "invalid".

    Pages and the API turn the codes into Dutch text (templates) or JSON; the message
    is an English line for the CLI and logs.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        described = ", ".join(f"{name}: {code}" for name, code in self.problems.items())
        super().__init__(f"invalid input ({described})")


class UnknownSubscriber(SubscriberError):
    """Staff named an address that is not on the list."""


class ImportFileError(SubscriberError):
    """A file to import cannot be read at all; `code` names why for the Dutch pages:
    "empty", "header", "encoding" or "too_large"."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class SuppressedAddress(SubscriberError):
    """Staff tried to confirm a suppressed address; only its own opt-in brings it back."""

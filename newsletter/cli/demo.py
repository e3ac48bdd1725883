"""`newsletter demo`: the whole product on built-in defaults, in a throw-away folder.

One command, and nothing leaves the machine: the demo starts a mail sink (mail/mailsink.py)
and the real web app on free ports of 127.0.0.1, fetches the sample feed, drafts and
previews an edition, signs three sample people up over HTTP exactly as a browser or a
program would (form or JSON API, the confirmation link from their mail, the button),
sends them the edition through the real delivery engine, and stops everything again.
Every mail that went out is left in the folder as an .eml file.

`newsletter demo --schedule` takes the scheduler's path instead of drafting and sending
directly: after the sign-ups it starts the real scheduler (jobs/scheduler.py) on the demo's
database with one run due a few seconds later, and that run fetches, drafts and sends
(`auto_send`) exactly as the weekly run does in production. Then it stops the scheduler.
"""

from __future__ import annotations

import secrets
import shlex
import tempfile
import tomllib
from email.message import EmailMessage
from pathlib import Path

from rich.console import Console

from newsletter.cli.demo_schedule import check_editions_arrived, run_on_schedule
from newsletter.cli.demo_signups import (
    HOST,
    SAMPLE_PEOPLE,
    UNSUBSCRIBE_LINK,
    listening_socket,
    sign_up_through_web_app,
)
from newsletter.content.ingest import fetch_all
from newsletter.core.clock import utc_now
from newsletter.core.config import SECRET_KEY_ENV, Settings, settings_from_mapping
from newsletter.core.db import Database, open_database
from newsletter.core.errors import DeliveryError, FeedError, NewsletterError
from newsletter.delivery.send import SendSummary, describe_send, send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.editions.preview import preview_edition
from newsletter.mail.mailsink import MailSink, first_recipient_label

DATA_DIR = Path(__file__).parent.parent / "data"
SAMPLE_FEED = DATA_DIR / "sample-feed.xml"
SAMPLE_INTRO = DATA_DIR / "sample-intro.md"
# What the demo writes; a folder that holds any of these is not a throw-away folder.
DEMO_FILES = ("newsletter.toml", "newsletter.db", "preview", "mailbox")

DEMO_CONFIG = """\
# Written by `newsletter demo`. Rerun any command on this demo with
#   newsletter --config {config}
# and NEWSLETTER_SECRET_KEY set to the key the demo printed.
[site]
base_url = "http://{host}:{web_port}"

[web]
host = "{host}"
port = {web_port}

[smtp]
host = "{host}"
port = {smtp_port}

[feed]
urls = ["{feed}"]
max_articles = 8
min_new_articles = 1

[database]
url = "sqlite:///newsletter.db"
{schedule}"""
# Only with `--schedule`: its run sends the new edition, as the demo's direct send does.
SCHEDULE_CONFIG = """
[schedule]
auto_send = true
"""


def demo_settings(
    directory: Path, secret_key: str, *, web_port: int, smtp_port: int, schedule: bool = False
) -> Settings:
    """Write the demo's settings file into `directory` and load it as any command would."""
    config = directory / "newsletter.toml"
    text = DEMO_CONFIG.format(
        config=config,
        host=HOST,
        web_port=web_port,
        smtp_port=smtp_port,
        feed=SAMPLE_FEED.as_posix(),
        schedule=SCHEDULE_CONFIG if schedule else "",
    )
    try:
        config.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write {config}: {exc.strerror}") from exc
    data = tomllib.loads(text)
    return settings_from_mapping(
        data, base_dir=directory, env={SECRET_KEY_ENV: secret_key}, origin=str(config)
    )


def run_demo(directory: Path | None, *, out: Console, schedule: bool = False) -> Path:
    """Run the whole product once on sample data; return the folder that holds it all.

    `schedule`: instead of drafting and sending directly, let the real scheduler run the
    job once, a few seconds after it started.
    """
    workdir = _demo_folder(directory)
    secret_key = secrets.token_urlsafe(32)
    out.print(f"demo folder: {workdir}", markup=False)
    with (
        listening_socket() as web_listener,
        MailSink(workdir / "mailbox", host=HOST, label=_mail_label) as sink,
    ):
        web_port = int(web_listener.getsockname()[1])
        settings = demo_settings(
            workdir, secret_key, web_port=web_port, smtp_port=sink.port, schedule=schedule
        )
        out.print(f"mail sink: smtp://{HOST}:{sink.port}", markup=False)
        database = open_database(settings.database_url)
        try:
            if schedule:
                sign_up_through_web_app(settings, database, web_listener, sink, out)
                run_on_schedule(settings, database, workdir, secret_key, out)
                check_editions_arrived(sink, out)
            else:
                number = _draft_sample_edition(settings, database, workdir, out)
                sign_up_through_web_app(settings, database, web_listener, sink, out)
                _send_directly(settings, database, number, out)
        finally:
            database.dispose()
    out.print("stopped the web app and the mail sink")
    _print_mailbox(sink, out)
    _print_next_steps(workdir, secret_key, out, schedule=schedule)
    return workdir


# -- the folder, the edition ------------------------------------------------------------


def _demo_folder(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="newsletter-demo-"))
    for name in DEMO_FILES:
        if (directory / name).exists():
            raise NewsletterError(
                f"{directory / name} exists already; give --dir a new or empty folder"
            )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NewsletterError(f"cannot use {directory} for the demo: {exc.strerror}") from exc
    return directory.resolve()


def _draft_sample_edition(
    settings: Settings, database: Database, workdir: Path, out: Console
) -> int:
    """Fetch the sample feed, draft an edition and write its preview; the edition's number."""
    for report in fetch_all(settings, database, clock=utc_now):
        if report.failed:
            raise FeedError(f"the sample feed failed: {report.error}")
        out.print(f"fetched the sample feed: {report.new} new articles", markup=False)
    result = draft_edition(
        settings,
        database,
        clock=utc_now,
        intro_markdown=SAMPLE_INTRO.read_text(encoding="utf-8"),
        force=True,
    )
    if result.number is None:
        raise NewsletterError("the sample feed gave no articles to draft an edition from")
    out.print(f"drafted edition {result.number} with {result.new_articles} articles")
    files = preview_edition(settings, database, result.number, workdir / "preview")
    out.print("preview of the draft, as a subscriber will see it:")
    out.print(f"  HTML: {files.html}", markup=False)
    out.print(f"  text: {files.text}", markup=False)
    return result.number


# -- sending and what arrived -----------------------------------------------------------


def _send_directly(settings: Settings, database: Database, number: int, out: Console) -> None:
    """Send edition `number` through the delivery engine, as `newsletter send` does."""
    summary = send_edition(settings, database, number, clock=utc_now)
    _check_sent(summary)
    out.print("sent the edition through the delivery engine:")
    out.print(f"  {describe_send(summary)}", markup=False)


def _check_sent(summary: SendSummary) -> None:
    if summary.counts.sent != len(SAMPLE_PEOPLE):
        raise DeliveryError(
            f"not every sample subscriber got the edition ({describe_send(summary)})"
        )


def _mail_label(message: EmailMessage) -> str:
    """File names in the mailbox: what the mail is, and whom it is for."""
    if message["List-Unsubscribe"]:
        kind = "newsletter"
    else:
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        kind = "welcome" if UNSUBSCRIBE_LINK.search(text) else "confirmation"
    return f"{kind}-{first_recipient_label(message)}"


def _print_mailbox(sink: MailSink, out: Console) -> None:
    mails = sink.mails()
    out.print(f"mailbox: {sink.folder} ({len(mails)} messages)", markup=False)
    for mail in mails:
        out.print(f"  {mail.path.name}", markup=False)


def _print_next_steps(
    workdir: Path, secret_key: str, out: Console, *, schedule: bool = False
) -> None:
    config = shlex.quote(str(workdir / "newsletter.toml"))
    out.print("look around (the key signs the links in this demo's mails):")
    out.print(f"  export {SECRET_KEY_ENV}={secret_key}", markup=False)
    if schedule:
        out.print(f"  newsletter --config {config} runs", markup=False)
    out.print(
        f"  newsletter --config {config} subscribers show {SAMPLE_PEOPLE[0].email}", markup=False
    )
    out.print(
        f"  newsletter --config {config} serve   # then open the links in the mails", markup=False
    )

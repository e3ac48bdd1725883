"""`newsletter demo`: the whole product on built-in defaults, in a throw-away folder.

One command, and nothing leaves the machine: the demo starts a mail sink (mailsink.py)
and the real web app on free ports of 127.0.0.1, fetches the sample feed, drafts and
previews an edition, signs three sample people up over HTTP exactly as a browser or a
program would (form or JSON API, the confirmation link from their mail, the button),
sends them the edition through the real delivery engine, and stops everything again.
Every mail that went out is left in the folder as an .eml file.

`newsletter demo --schedule` takes the scheduler's path instead of drafting and sending
directly: after the sign-ups it starts the real scheduler (scheduling.py) on the demo's
database with one run due a few seconds later, and that run fetches, drafts and sends
(`auto_send`) exactly as the weekly run does in production. Then it stops the scheduler.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shlex
import socket
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from rich.console import Console

from newsletter import __version__
from newsletter.content.ingest import fetch_all
from newsletter.core.clock import utc_now
from newsletter.core.config import SECRET_KEY_ENV, Settings, settings_from_mapping
from newsletter.core.db import Database, open_database
from newsletter.core.errors import DeliveryError, FeedError, NewsletterError, SubscriberError
from newsletter.delivery.send import SendSummary, describe_send, send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.editions.preview import preview_edition
from newsletter.jobs.report import RunCounts, summary_line
from newsletter.jobs.runs import list_runs, run_json
from newsletter.jobs.scheduler import JOB_ID, RUN_NOW_ID, build_scheduler
from newsletter.mail.mailsink import MailSink, SunkMail, first_recipient_label
from newsletter.web.csrf import FIELD_NAME as CSRF_FIELD
from newsletter.web.forms import HONEYPOT_FIELD
from newsletter.web.server import build_server
from subscribers.management import ListManagement

DATA_DIR = Path(__file__).parent.parent / "data"
SAMPLE_FEED = DATA_DIR / "sample-feed.xml"
SAMPLE_INTRO = DATA_DIR / "sample-intro.md"
HOST = "127.0.0.1"
# How long the demo waits for the web app to answer, or for a mail to arrive.
WAIT_SECONDS = 10.0
# What the demo writes; a folder that holds any of these is not a throw-away folder.
DEMO_FILES = ("newsletter.toml", "newsletter.db", "preview", "mailbox")
# The consent log keeps the user agent: say honestly that it was the demo.
USER_AGENT = f"rvj-newsletter-demo/{__version__}"
CONFIRM_LINK = re.compile(r"https?://\S+/confirm/[A-Za-z0-9_-]+")
# `--schedule`: the run is due this long after the scheduler started, and may take this
# long (fetch, draft, compose and send, on a slow machine) before the demo gives up.
RUN_DELAY_SECONDS = 3
RUN_TIMEOUT_SECONDS = 120.0

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


@dataclass(frozen=True)
class SamplePerson:
    """Someone the demo signs up: through the form or the API, with the themes they pick."""

    email: str
    name: str | None
    themes: tuple[str, ...]  # none: every theme
    who: str
    channel: Literal["form", "api"]

    @property
    def mailbox(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


SAMPLE_PEOPLE = (
    SamplePerson("anouk@example.org", "Anouk de Vries", ("doe-je-mee",), "a parent", "form"),
    SamplePerson("youssef@example.org", "Youssef", (), "a young person", "form"),
    SamplePerson(
        "m.bakker@example.org",
        None,
        ("opstarten-beweging", "mensen-en-initiatieven"),
        "a care worker",
        "api",
    ),
)


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
        _listening_socket() as web_listener,
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
                _sign_up_through_web_app(settings, database, web_listener, sink, out)
                _run_on_schedule(settings, database, workdir, secret_key, out)
                _check_editions_arrived(sink, out)
            else:
                number = _draft_sample_edition(settings, database, workdir, out)
                _sign_up_through_web_app(settings, database, web_listener, sink, out)
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


# -- the web app, in a thread of this process -------------------------------------------


def _sign_up_through_web_app(
    settings: Settings,
    database: Database,
    listener: socket.socket,
    sink: MailSink,
    out: Console,
) -> None:
    """Start the web app, sign every sample person up through it, and stop it again."""
    with _running_web_app(settings, database, listener) as base_url:
        out.print(f"web app: {base_url}", markup=False)
        _sign_up_sample_people(base_url, sink)
    _check_confirmed(settings, database)
    out.print("signed up through the web app, confirmed from the link in their mail:")
    for person in SAMPLE_PEOPLE:
        out.print(f"  {_describe(person, settings)}", markup=False)


@contextmanager
def _listening_socket() -> Iterator[socket.socket]:
    """A socket listening on a free port of HOST, for the web app to serve on."""
    try:
        listener = socket.create_server((HOST, 0))
    except OSError as exc:
        raise NewsletterError(f"cannot listen on {HOST} for the web app: {exc}") from exc
    with listener:
        yield listener


@contextmanager
def _running_web_app(
    settings: Settings, database: Database, listener: socket.socket
) -> Iterator[str]:
    """The real web app (as `newsletter serve` runs it) on `listener`; yields its base URL."""
    port = int(listener.getsockname()[1])
    server = build_server(settings, database, host=HOST, port=port)
    # uvicorn installs its signal handlers only in the main thread, so in this one it
    # installs none: Ctrl-C reaches the demo, which then stops the server below.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="demo-web-app", daemon=True
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    level = uvicorn_log.level
    uvicorn_log.setLevel(logging.WARNING)  # its start and stop lines would drown the demo's
    thread.start()
    try:
        base_url = f"http://{HOST}:{port}"
        _wait_until_healthy(base_url, thread)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(WAIT_SECONDS)
        uvicorn_log.setLevel(level)
    if thread.is_alive():
        raise NewsletterError("the demo's web app did not stop")


def _wait_until_healthy(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    with _http_client(base_url) as client:
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not thread.is_alive():
                raise NewsletterError("the demo's web app stopped while starting")
            if time.monotonic() > deadline:
                raise NewsletterError(
                    f"the demo's web app did not answer within {WAIT_SECONDS:g} s"
                )
            time.sleep(0.05)


def _http_client(base_url: str) -> httpx.Client:
    # trust_env=False: no proxy from the environment; the demo talks to loopback only.
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT},
        timeout=WAIT_SECONDS,
        trust_env=False,
        follow_redirects=False,
    )


# -- signing up, as a browser or a program would ------------------------------------------


def _sign_up_sample_people(base_url: str, sink: MailSink) -> None:
    """Sign every sample person up and confirm them, each from a browser of their own."""
    for person in SAMPLE_PEOPLE:
        try:
            with _http_client(base_url) as browser:
                if person.channel == "form":
                    _sign_up_with_form(browser, person)
                else:
                    _sign_up_with_api(browser, person)
                _confirm_from_mail(browser, sink, person)
        except httpx.HTTPError as exc:
            raise SubscriberError(f"signing up {person.email} failed: {exc}") from exc


def _sign_up_with_form(browser: httpx.Client, person: SamplePerson) -> None:
    """GET the sign-up page (CSRF cookie and field), then POST the form as a browser does."""
    page = _expect(browser.get("/subscribe"), 200, "GET /subscribe")
    form = {
        CSRF_FIELD: _hidden_field(page.text, CSRF_FIELD),
        "email": person.email,
        "name": person.name or "",
        "themes": list(person.themes),
        HONEYPOT_FIELD: "",
    }
    _expect(browser.post("/subscribe", data=form), 200, "POST /subscribe")


def _sign_up_with_api(client: httpx.Client, person: SamplePerson) -> None:
    """POST /api/subscribe with a JSON body, as a partner's website would."""
    body: dict[str, object] = {"email": person.email, "themes": list(person.themes)}
    if person.name:
        body["name"] = person.name
    _expect(client.post("/api/subscribe", json=body), 202, "POST /api/subscribe")


def _confirm_from_mail(browser: httpx.Client, sink: MailSink, person: SamplePerson) -> None:
    """Wait for the confirmation mail, open its link and press the button."""
    mail = sink.wait_for(
        lambda sunk: person.email in sunk.recipients and _confirm_link(sunk) is not None,
        timeout=WAIT_SECONDS,
    )
    link = _confirm_link(mail) if mail is not None else None
    if link is None:
        raise DeliveryError(
            f"no confirmation mail reached {person.email} within {WAIT_SECONDS:g} s"
        )
    page = _expect(browser.get(link), 200, "GET /confirm/…")
    button = {CSRF_FIELD: _hidden_field(page.text, CSRF_FIELD)}
    _expect(browser.post(link, data=button), 200, "POST /confirm/…")


def _confirm_link(mail: SunkMail) -> str | None:
    """The /confirm/ link in a mail's text part."""
    found = CONFIRM_LINK.search(mail.text())
    return found.group(0) if found else None


class _HiddenFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "input" and fields.get("type") == "hidden" and fields.get("name"):
            self.values[str(fields["name"])] = fields.get("value") or ""


def _hidden_field(html: str, name: str) -> str:
    """The value of the hidden form field `name` on a page."""
    parser = _HiddenFields()
    parser.feed(html)
    if name not in parser.values:
        raise SubscriberError(f"the page has no {name} field")
    return parser.values[name]


def _expect(response: httpx.Response, status: int, request: str) -> httpx.Response:
    if response.status_code != status:
        raise SubscriberError(
            f"{request} answered HTTP {response.status_code}, not {status} as it should"
        )
    return response


def _check_confirmed(settings: Settings, database: Database) -> None:
    people = ListManagement(settings, database, clock=utc_now)
    confirmed = {row.email for row in people.subscribers(status="confirmed")}
    missing = [person.email for person in SAMPLE_PEOPLE if person.email not in confirmed]
    if missing:
        raise SubscriberError(f"not confirmed after signing up: {', '.join(missing)}")


# -- the scheduler's path (`--schedule`) -----------------------------------------------


def _run_on_schedule(
    settings: Settings, database: Database, workdir: Path, secret_key: str, out: Console
) -> None:
    """Start the real scheduler with one run due shortly, wait for that run, stop it.

    The scheduler is the one `newsletter schedule` runs (its cron job stored in the
    demo's database), in a background thread instead of blocking this one; the extra run
    is its `run_at` job, and the job function is the real one, which reads the settings
    file and the environment afresh.
    """
    zone = ZoneInfo(settings.site.timezone)
    due = datetime.now(zone).replace(microsecond=0) + timedelta(seconds=RUN_DELAY_SECONDS)
    ran: list[JobExecutionEvent] = []
    ended = threading.Event()

    def note_the_run(event: JobExecutionEvent) -> None:
        if event.job_id == RUN_NOW_ID:
            ran.append(event)
            ended.set()

    with _secret_key_in_environment(secret_key), _scheduler_problems() as problems:
        scheduler = build_scheduler(
            settings,
            engine=database.engine,
            config_path=workdir / "newsletter.toml",
            scheduler_class=BackgroundScheduler,
            run_at=due,
        )
        scheduler.add_listener(
            note_the_run, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )
        scheduler.start()
        try:
            _print_schedule(scheduler, settings, out)
            if not ended.wait(RUN_DELAY_SECONDS + RUN_TIMEOUT_SECONDS):
                raise NewsletterError(
                    f"the scheduled run did not finish within {RUN_TIMEOUT_SECONDS:g} s"
                )
            line = _scheduled_run_summary(database, ran[0], problems)
            out.print("the scheduled run finished:")
            out.print(f"  {line}", markup=False)
        finally:
            # Wait for the job's thread only when it is done: a stuck run must not hang.
            scheduler.shutdown(wait=ended.is_set())
    out.print("stopped the scheduler")


def _scheduled_run_summary(
    database: Database, event: JobExecutionEvent, problems: list[str]
) -> str:
    """The run's summary line, as `newsletter runs` shows it; raises unless it sent."""
    with database.session() as session:
        recorded = [run_json(run) for run in list_runs(session, limit=1)]
    if event.code != EVENT_JOB_EXECUTED or not recorded or recorded[0]["trigger"] != "schedule":
        reason = "; ".join(problems) or "nothing was recorded"
        raise NewsletterError(f"the scheduled run did not run: {reason}")
    run = recorded[0]
    line = summary_line(run["id"], run["outcome"], RunCounts.from_json(run["counts"]), run["error"])
    if run["outcome"] != "ok":
        raise NewsletterError(f"the scheduled run did not send the edition: {line}")
    return line


def _print_schedule(scheduler: Any, settings: Settings, out: Console) -> None:
    """When the scheduler will run the job, as it says itself."""
    zone = settings.site.timezone
    out.print(f"scheduler started, as `newsletter schedule` runs it (times in {zone}):")
    once, weekly = scheduler.get_job(RUN_NOW_ID), scheduler.get_job(JOB_ID)
    if once is not None and once.next_run_time is not None:
        out.print(
            f"  next run at {_local_time(once.next_run_time)}: once, for the demo", markup=False
        )
    if weekly is not None and weekly.next_run_time is not None:
        out.print(
            f'  then on [schedule] cron "{settings.schedule.cron}": '
            f"{_local_time(weekly.next_run_time)}",
            markup=False,
        )


def _local_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S %Z")


@contextmanager
def _secret_key_in_environment(secret_key: str) -> Iterator[None]:
    """The demo's key in this process's environment while the scheduler runs.

    The scheduled job reads its settings file and secrets afresh for every run, from the
    environment as in production; the key is taken out again afterwards.
    """
    before = os.environ.get(SECRET_KEY_ENV)
    os.environ[SECRET_KEY_ENV] = secret_key
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SECRET_KEY_ENV, None)
        else:
            os.environ[SECRET_KEY_ENV] = before


class _KeptMessages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _scheduler_problems() -> Iterator[list[str]]:
    """What the scheduler logs as going wrong, kept for the demo's one-line error.

    With a handler of its own, Python does not print these lines on stderr by itself.
    """
    handler = _KeptMessages()
    scheduler_log = logging.getLogger("newsletter.jobs.scheduler")
    scheduler_log.addHandler(handler)
    try:
        yield handler.messages
    finally:
        scheduler_log.removeHandler(handler)


def _check_editions_arrived(sink: MailSink, out: Console) -> None:
    """Every sample subscriber's edition is in the mail sink."""
    editions = [mail for mail in sink.mails() if mail.message()["List-Unsubscribe"]]
    arrived = {address for mail in editions for address in mail.recipients}
    missing = [person.email for person in SAMPLE_PEOPLE if person.email not in arrived]
    if missing:
        raise DeliveryError(f"the edition did not reach {', '.join(missing)}")
    out.print(
        f"{len(editions)} mails with the edition arrived in the mail sink, "
        f"one for each of the {len(SAMPLE_PEOPLE)} subscribers"
    )


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
    kind = "newsletter" if message["List-Unsubscribe"] else "confirmation"
    return f"{kind}-{first_recipient_label(message)}"


def _describe(person: SamplePerson, settings: Settings) -> str:
    themes = ", ".join(settings.themes[slug].name for slug in person.themes) or "all themes"
    channel = "the form" if person.channel == "form" else "the API"
    return f"{person.mailbox}, {person.who}, through {channel}: {themes}"


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

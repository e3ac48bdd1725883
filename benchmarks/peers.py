"""Peers: django-newsletter sending N messages into smtp-sink, beside smtp-source.

In each round, on this machine's loopback, into the same Postfix `smtp-sink`:
1. django-newsletter (PyPI) sends one Submission of a ~48 KiB message (HTML and text) to
   N subscriptions: the whole `manage.py submit_newsletter` process, from start to exit,
   its wall time and its CPU (user and system, from os.wait4);
2. Postfix's C tool `smtp-source -d -s 4` sends N messages of the same size.
The sink counts the messages and sessions it took from each (`smtp-sink -c`), and the
benchmark checks that it got all N and that the Submission is marked sent.

django-newsletter is installed into a virtualenv of its own under the git-ignored
`.cache/peers/`, by this benchmark (`python -m venv` and pip); without the network it
prints one line saying so and returns. GNU Mailman 3 is not measured: see `MAILMAN`.

Run it alone with `python -m benchmarks.peers` (`--recipients`, `--size`, `--rounds`).
Needs Debian's postfix package for smtp-sink and smtp-source (`make bench` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.send import free_port, process_cpu_seconds, smtp_source_rate, start_sink

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".cache" / "peers"
# django-newsletter 1.2.1 declares Django 4.2 and 5.2; the newest 5.2 it is. Its image
# field needs a thumbnailer installed: sorl-thumbnail, its default.
DJANGO_NEWSLETTER = ("django-newsletter==1.2.1", "Django>=5.2,<5.3", "sorl-thumbnail")
CONNECTIONS = 4  # smtp-source's sessions; django-newsletter has no such setting

MAILMAN = (
    "GNU Mailman 3: not measured (Debian's mailman3 3.3.8 is available, but a send needs "
    "its core running with its queue runners, a list with N members added through its "
    "REST API, and an MTA configured to take its outgoing mail; not built headless here)"
)

# The generated Django project. These are strings of code run by the peer's own
# interpreter, in its own virtualenv: nothing here imports Django.
SETTINGS = """\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "sorl.thumbnail",
    "newsletter",
]
ROOT_URLCONF = "benchsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "bench.sqlite3"}
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
SITE_ID = 1
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = {port}
EMAIL_TIMEOUT = 30
# Its image fields need a thumbnailer; no article here has an image.
NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
NEWSLETTER_USE_HTTPS = True
NEWSLETTER_CONFIRM_EMAIL = False
# Its fastest: no pause between batches (0 turns batching off), and no
# NEWSLETTER_EMAIL_DELAY at all (even 0 would call time.sleep(0) before every message).
NEWSLETTER_BATCH_SIZE = 0
NEWSLETTER_BATCH_DELAY = 0
"""

URLS = """\
from django.urls import include, path

urlpatterns = [path("nieuwsbrief/", include("newsletter.urls"))]
"""

MANAGE = """\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""

# One newsletter, N subscriptions, a message whose article makes the whole mail about
# `size` bytes, and a Submission due now; prints the size and the versions as JSON.
SETUP = """\
import json
import os
import sys
from datetime import timedelta
from importlib.metadata import version

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
import django

django.setup()
from django.utils.timezone import now
from newsletter.models import Article, Message, Newsletter, Submission, Subscription

recipients, target = int(sys.argv[1]), int(sys.argv[2])
newsletter = Newsletter.objects.create(
    title="Radicale vernieuwing jeugdzorg",
    slug="nieuwsbrief",
    email="nieuwsbrief@rvjeugdzorg.nl",
    sender="Radicale vernieuwing jeugdzorg",
)
stamp = now()
Subscription.objects.bulk_create(
    (
        Subscription(
            newsletter=newsletter,
            email_field=f"lezer{i}@example.org",
            name_field=f"Lezer {i}",
            subscribed=True,
            subscribe_date=stamp,
        )
        for i in range(recipients)
    ),
    batch_size=2000,
)
message = Message.objects.create(title="Editie 1", slug="editie-1", newsletter=newsletter)
article = Article(post=message, title="Wat er deze maand veranderde", text="")
article.save()
submission = Submission.from_message(message)
first = submission.subscriptions.order_by("pk").first()


def paragraph(i):
    return (
        f"<p>Bericht {i}: gemeenten, jeugdhulpaanbieders en ouders praten over wat "
        "er anders moet in de jeugdzorg. <strong>Minder regels</strong>, meer tijd "
        "voor het gezin, en hulp die dichtbij en op tijd komt. Lees wat de regio's "
        "deze maand hebben afgesproken en wat het voor de wachtlijsten betekent, "
        f'met <a href="https://rvjeugdzorg.nl/artikel/{i}">het hele verhaal</a>.</p>\\n'
    )


def size(paragraphs):
    article.text = "".join(paragraph(i) for i in range(paragraphs))
    article.save()
    return len(submission.get_message(first).message().as_bytes())


one, two = size(1), size(2)
paragraphs = max(1, round((target - one) / (two - one)) + 1)
final = size(paragraphs)
submission.prepared = True
submission.publish_date = now() - timedelta(minutes=1)
submission.save()
print(
    json.dumps(
        {
            "size": final,
            "django": django.get_version(),
            "newsletter": version("django-newsletter"),
        }
    )
)
"""

# Whether the Submission is marked sent, and to how many it was addressed; resets it
# for the next round when asked.
CHECK = """\
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
import django

django.setup()
from newsletter.models import Submission

submission = Submission.objects.get()
print(json.dumps({"sent": submission.sent, "recipients": submission.subscriptions.count()}))
if sys.argv[1:] == ["--reset"]:
    Submission.objects.update(sent=False, sending=False)
"""


class Skipped(Exception):
    """The peer could not be installed or set up: the reason, in one line."""


def peer_environment() -> dict[str, str]:
    """This environment without what would point the peer at the project's packages
    (the project has a package called `newsletter` too)."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def last_line(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def install(name: str, requirements: tuple[str, ...]) -> Path:
    """The peer's interpreter, in .cache/peers/`name`, installed once per requirement set."""
    folder = PEERS / name
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(folder)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
    ]
    for step in steps:
        try:
            subprocess.run(
                step,
                check=True,
                capture_output=True,
                text=True,
                timeout=900,
                env=peer_environment(),
            )
        except subprocess.CalledProcessError as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise Skipped(
                f"{' '.join(requirements)} did not install: "
                f"{last_line(error.stderr or error.stdout)}"
            ) from error
        except subprocess.TimeoutExpired as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise Skipped(f"installing it took over {error.timeout:.0f} s") from error
    stamp.write_text(wanted)
    return python


def run_peer(python: Path, project: Path, *args: str) -> str:
    """Run a script of the generated project with the peer's interpreter; its stdout."""
    try:
        done = subprocess.run(
            [str(python), *args],
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
            env=peer_environment(),
        )
    except subprocess.CalledProcessError as error:
        raise Skipped(f"`{' '.join(args)}` failed: {last_line(error.stderr)}") from error
    return done.stdout


@dataclass(frozen=True)
class Project:
    folder: Path
    size: int  # bytes of one message as django-newsletter builds it
    versions: str  # "django-newsletter 1.2.1, Django 5.2.19"


def make_project(python: Path, folder: Path, port: int, recipients: int, size: int) -> Project:
    package = folder / "benchsite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS.replace("{port}", str(port)))
    (package / "urls.py").write_text(URLS)
    (folder / "manage.py").write_text(MANAGE)
    (folder / "setup_bench.py").write_text(SETUP)
    (folder / "check_bench.py").write_text(CHECK)
    run_peer(python, folder, "manage.py", "migrate", "--verbosity", "0")
    made = json.loads(run_peer(python, folder, "setup_bench.py", str(recipients), str(size)))
    versions = f"django-newsletter {made['newsletter']}, Django {made['django']}"
    return Project(folder, int(made["size"]), versions)


class Counters:
    """smtp-sink's running counters, read from the file its stdout goes to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[int, int]:
        """(messages, sessions) the sink has taken since it started."""
        text = self.path.read_bytes().decode(errors="replace")
        updates = [update for update in text.split("\r") if "mesg=" in update]
        if not updates:
            return 0, 0
        fields = dict(field.split("=", 1) for field in updates[-1].split())
        return int(fields["mesg"]), int(fields["sess"])

    def after(self, before: tuple[int, int], expected: int) -> tuple[int, int]:
        """Messages and sessions since `before`, once `expected` messages arrived (and the
        last sessions closed) or after 5 s."""
        deadline = time.monotonic() + 5
        while True:
            messages, sessions = self.read()
            got = (messages - before[0], sessions - before[1])
            if (got[0] >= expected and got[1] > 0) or time.monotonic() > deadline:
                time.sleep(0.2)  # the last QUIT may still be on its way
                messages, sessions = self.read()
                return messages - before[0], sessions - before[1]
            time.sleep(0.05)


@dataclass(frozen=True)
class Run:
    rate: float  # messages per second, the whole process from start to exit
    cpu_us: float  # the sender's CPU (user and system) per message
    sink_cpu_us: float  # smtp-sink's CPU per message meanwhile
    messages: int  # as counted by the sink
    sessions: int  # SMTP sessions the sink saw


def submit(python: Path, project: Path, recipients: int) -> tuple[float, float, str]:
    """Time `manage.py submit_newsletter`: wall seconds, CPU seconds, what it logged."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(python), "manage.py", "submit_newsletter", "--verbosity", "0"],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=peer_environment(),
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        logged = errors.read().decode(errors="replace")
    if process.returncode != 0:
        raise Skipped(f"submit_newsletter exited with {process.returncode}: {last_line(logged)}")
    return elapsed, usage.ru_utime + usage.ru_stime, logged


def measure_peer(
    python: Path, project: Project, sink_pid: int, counters: Counters, recipients: int
) -> tuple[Run, str]:
    before, sink_before = counters.read(), process_cpu_seconds(sink_pid)
    elapsed, cpu, logged = submit(python, project.folder, recipients)
    messages, sessions = counters.after(before, recipients)
    sink_cpu = process_cpu_seconds(sink_pid) - sink_before
    state = json.loads(run_peer(python, project.folder, "check_bench.py", "--reset"))
    if not state["sent"]:
        raise Skipped("the Submission is not marked sent after submit_newsletter")
    failures = logged.count("failed with error")
    note = f"Submission marked sent to {state['recipients']:,}; {failures:,} send errors logged" + (
        f" (first: {last_line(logged.splitlines()[0])})" if failures else ""
    )
    run = Run(
        recipients / elapsed,
        cpu / recipients * 1e6,
        sink_cpu / recipients * 1e6,
        messages,
        sessions,
    )
    return run, note


def measure_source(port: int, sink_pid: int, counters: Counters, recipients: int, size: int) -> Run:
    before, sink_before = counters.read(), process_cpu_seconds(sink_pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = smtp_source_rate(port, recipients, size, CONNECTIONS)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    messages, sessions = counters.after(before, recipients)
    sink_cpu = process_cpu_seconds(sink_pid) - sink_before
    cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return Run(rate, cpu / recipients * 1e6, sink_cpu / recipients * 1e6, messages, sessions)


def django_newsletter(recipients: int, size: int, rounds: int) -> None:
    try:
        python = install("django-newsletter", DJANGO_NEWSLETTER)
    except Skipped as reason:
        print(f"django-newsletter: skipped ({reason})")
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="peers-") as work:
        counter_file = Path(work) / "sink-counters"
        with counter_file.open("wb") as output:
            sink = start_sink(port, output)
        counters = Counters(counter_file)
        try:
            project_folder = Path(work) / "project"
            project_folder.mkdir()
            try:
                project = make_project(python, project_folder, port, recipients, size)
                peer_runs: list[Run] = []
                source_runs: list[Run] = []
                notes: list[str] = []
                for _ in range(rounds):
                    run, note = measure_peer(python, project, sink.pid, counters, recipients)
                    peer_runs.append(run)
                    notes.append(note)
                    source_runs.append(
                        measure_source(port, sink.pid, counters, recipients, project.size)
                    )
            except Skipped as reason:
                print(f"django-newsletter: skipped ({reason})")
                return
        finally:
            sink.kill()
            sink.wait()
        report(recipients, project, peer_runs, source_runs, notes)


def report(
    recipients: int, project: Project, peers: list[Run], sources: list[Run], notes: list[str]
) -> None:
    median = statistics.median
    print(
        f"peers benchmark: {recipients:,} recipients into smtp-sink on 127.0.0.1, "
        f"{project.size / 1024:.1f} KiB per message, {len(peers)} round(s); "
        f"{project.versions}"
    )
    for index, (peer, source) in enumerate(zip(peers, sources, strict=True), 1):
        print(
            f"  round {index}: django-newsletter {peer.rate:6,.0f} msg/s, "
            f"smtp-source -d -s {CONNECTIONS} {source.rate:6,.0f} msg/s, "
            f"ratio {peer.rate / source.rate:.3f}"
        )
    ratio = median([p.rate / s.rate for p, s in zip(peers, sources, strict=True)])
    for name, runs in (
        ("django-newsletter (the whole submit_newsletter process)", peers),
        (f"smtp-source -d -s {CONNECTIONS}", sources),
    ):
        print(
            f"  median {name}: {median([r.rate for r in runs]):,.1f} msg/s, "
            f"CPU {median([r.cpu_us for r in runs]):,.0f} us per message "
            f"(smtp-sink's meanwhile: {median([r.sink_cpu_us for r in runs]):,.0f} us)"
        )
    print(f"  median ratio django-newsletter / smtp-source: {ratio:.3f}")
    for index, (peer, source, note) in enumerate(zip(peers, sources, notes, strict=True), 1):
        print(
            f"  checked, round {index}: the sink took {peer.messages:,} messages in "
            f"{peer.sessions:,} SMTP sessions from django-newsletter ({note}), and "
            f"{source.messages:,} in {source.sessions:,} sessions from smtp-source"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument(
        "--size", type=int, default=49_000, help="bytes per message, about (default 49,000)"
    )
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        sys.exit("smtp-sink not found: install Debian's postfix package (make bench does)")
    if args.recipients < 1 or args.rounds < 1 or args.size < 1:
        sys.exit("--recipients, --size and --rounds must be at least 1")
    django_newsletter(args.recipients, args.size, args.rounds)
    print(MAILMAN)


if __name__ == "__main__":
    main()

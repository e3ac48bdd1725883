"""`newsletter subscribers ...`: staff's commands on the list, thin over subscribers.management."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from newsletter.cli.support import (
    AsJson,
    ReportingGroup,
    app_context,
    err,
    listing_done,
    out,
    print_json,
)
from newsletter.core.errors import NewsletterError, UnknownSubscriber
from subscribers.models import STATUSES

if TYPE_CHECKING:  # the commands import the library when they run (see cli/app.py)
    from newsletter.mail.mailer import OutgoingMail
    from subscribers.consent import Requester
    from subscribers.lookup import PersonRecord
    from subscribers.management import ListManagement


def _requester(source: Literal["cli", "import"]) -> Requester:
    from subscribers.consent import Requester

    return Requester(source=source)


subscribers_app = typer.Typer(
    cls=ReportingGroup,
    help="The subscriber list: add, import, export, look up, remove and erase people.",
    no_args_is_help=True,
)


_STATUS_HELP = f"Only subscribers in this status ({', '.join(STATUSES)})."
# `add` and `import` take these alike: a person on the list without their own opt-in
# needs a reason, and the reason is logged.
Confirmed = Annotated[
    bool, typer.Option("--confirmed", help="Add as confirmed, without a confirmation mail.")
]
ConsentNote = Annotated[
    str | None,
    typer.Option(help="Why no opt-in is needed (required with --confirmed); it is logged."),
]


def _people(ctx: typer.Context) -> ListManagement:
    context = app_context(ctx)
    from subscribers.management import ListManagement

    return ListManagement(context.settings, context.database, clock=context.clock)


def _deliver(ctx: typer.Context, people: ListManagement, mails: list[OutgoingMail]) -> int:
    """Send each mail now; print what happened; return how many failed."""
    if not mails:
        return 0
    context = app_context(ctx)
    from newsletter.mail.mailer import SmtpMailer

    mailer = SmtpMailer(context.settings, clock=context.clock)
    failed = 0
    errors: list[str] = []

    def send(message: OutgoingMail) -> None:
        try:
            mailer.send_now(message)
        except NewsletterError as exc:
            errors.append(str(exc))
            raise

    for mail in mails:
        errors.clear()
        if people.deliver(mail, send):
            out.print(f"{mail.kind} mail sent to {mail.to}", markup=False)
        else:
            failed += 1
            reason = errors[0] if errors else "not sent"
            err.print(f"error: {mail.kind} mail to {mail.to} failed: {reason}", markup=False)
    return failed


def _split_themes(value: str | None) -> list[str]:
    return [slug.strip() for slug in (value or "").split(",") if slug.strip()]


def _status_of(people: ListManagement, email: str) -> str | None:
    try:
        subscriber = people.show(email).subscriber
    except UnknownSubscriber:
        return None
    return subscriber.status if subscriber else None


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"use one of {', '.join(STATUSES)}", param_hint="--status")


@subscribers_app.command("add")
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address to add.")],
    name: Annotated[str | None, typer.Option(help="The person's name (optional).")] = None,
    themes: Annotated[
        str | None, typer.Option(help="Theme slugs, comma-separated (default: all themes).")
    ] = None,
    confirmed: Confirmed = False,
    consent_note: ConsentNote = None,
) -> None:
    """Add an address: pending with a confirmation mail, or --confirmed with a consent note."""
    people = _people(ctx)
    before = _status_of(people, email)
    mails = people.add(
        email,
        name=name,
        themes=_split_themes(themes),
        requester=_requester("cli"),
        confirmed=confirmed,
        consent_note=consent_note,
    )
    if before == "confirmed":
        out.print(f"{email}: already confirmed; nothing changed", markup=False)
    elif confirmed:
        out.print(f"{email}: confirmed (consent note logged)", markup=False)
    elif not mails:
        out.print(
            f"{email}: pending; no mail sent, the address had its confirmation mails for today",
            markup=False,
        )
    else:
        out.print(f"{email}: pending until the address confirms", markup=False)
    if _deliver(ctx, people, mails):
        raise typer.Exit(1)


@subscribers_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="CSV with a header row email,name,themes.", dir_okay=False)
    ],
    confirmed: Confirmed = False,
    consent_note: ConsentNote = None,
) -> None:
    """Add every row of a CSV file as `add` would; bad rows are reported by line number."""
    from subscribers.importing import decode_file

    people = _people(ctx)
    try:
        # UTF-8 (with or without BOM) or Windows-1252, `,` or `;`: as spreadsheets save it.
        text = decode_file(file.read_bytes())
    except FileNotFoundError:
        raise NewsletterError(f"file not found: {file}") from None
    except OSError as exc:
        raise NewsletterError(f"cannot read {file}: {exc.strerror}") from exc
    report = people.import_csv(
        io.StringIO(text, newline=""),
        requester=_requester("import"),
        confirmed=confirmed,
        consent_note=consent_note,
    )
    for problem in report.problems:
        err.print(f"line {problem.line}: {problem.reason}", markup=False)
    failed_mails = _deliver(ctx, people, report.mails)
    out.print(
        f"{report.rows} rows: {report.confirmed} confirmed, {report.pending} pending "
        f"(confirmation mail), {report.unchanged} already confirmed, "
        f"{len(report.problems)} not imported",
        markup=False,
    )
    if report.problems or failed_mails:
        raise typer.Exit(1)


@subscribers_app.command("export")
def export(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help=_STATUS_HELP)] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Write the list as CSV (email,name,status,themes,created_at,confirmed_at)."""
    _check_status(status)
    rows = _people(ctx).export(status=status)
    if out_file is None:
        _write_csv(sys.stdout, rows)
        return
    try:
        with out_file.open("w", encoding="utf-8", newline="") as target:
            count = _write_csv(target, rows)
    except OSError as exc:
        raise NewsletterError(f"cannot write {out_file}: {exc.strerror}") from exc
    out.print(f"{count} subscribers written to {out_file}", markup=False)


def _write_csv(target: Any, rows: Any) -> int:
    from subscribers.lookup import EXPORT_FIELDS

    writer = csv.DictWriter(target, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


@subscribers_app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help=_STATUS_HELP)] = None,
    as_json: AsJson = False,
) -> None:
    """List subscribers, oldest first."""
    _check_status(status)
    rows = _people(ctx).subscribers(status=status)
    none_yet = "no subscribers" + (f" with status {status}" if status else "")
    from subscribers.lookup import SubscriberSummary

    if listing_done(rows, as_json=as_json, json_of=SubscriberSummary.as_json, none_yet=none_yet):
        return
    table = Table("email", "status", "name", "themes", "since", box=None)
    for row in rows:
        since = row.confirmed_at or row.created_at
        table.add_row(
            row.email,
            row.status,
            row.name or "",
            ", ".join(row.themes) or "(all)",
            since.isoformat()[:10],
        )
    out.print(table)


@subscribers_app.command("show")
def show(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address to look up.")],
    as_json: AsJson = False,
) -> None:
    """Everything held on one person, consent log included (for an access request)."""
    person = _people(ctx).show(email)
    if as_json:
        print_json(person.as_json())
        return
    _print_person(person)


def _print_person(person: PersonRecord) -> None:
    record = person.as_json()  # the same words and values as --json, as lines
    subscriber = record["subscriber"]
    if subscriber is None:
        out.print(f"{person.email}: no subscriber row (erased or purged)", markup=False)
    else:
        for key, value in subscriber.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            out.print(f"{key}: {'' if shown is None else shown}", markup=False)
    out.print(f"address hash: {person.address_hash}", markup=False)
    suppression = record["suppression"]
    if suppression:
        out.print(
            f"suppressed: {suppression['reason']} since {suppression['created_at']}",
            markup=False,
        )
    for token in record["pending_confirmations"]:
        out.print(
            f"open confirmation: {token['purpose']} until {token['expires_at']}"
            + (f" (to {token['new_email']})" if token["new_email"] else ""),
            markup=False,
        )
    out.print("consent log:", markup=False)
    for event in record["consent_log"]:
        parts = [event["created_at"], event["event"], f"source={event['source']}"]
        if event["ip"]:
            parts.append(f"ip={event['ip']}")
        if event["user_agent"]:
            parts.append(f"user_agent={event['user_agent']!r}")
        if event["details"]:
            parts.append(f"details={event['details']}")
        out.print("  " + " ".join(parts), markup=False)
        if event["consent_text"]:
            out.print(f"    consent text: {event['consent_text']}", markup=False)
    out.print("deliveries:", markup=False)
    for delivery in record["deliveries"]:
        parts = [f"edition {delivery['edition']}", delivery["state"]]
        parts += [f"sent_at={delivery['sent_at']}"] if delivery["sent_at"] else []
        parts += [f"reply={delivery['last_reply']!r}"] if delivery["last_reply"] else []
        out.print("  " + " ".join(parts), markup=False)


@subscribers_app.command("remove")
def remove(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address to unsubscribe.")],
) -> None:
    """Unsubscribe an address and suppress it; its data is kept."""
    _people(ctx).remove(email, _requester("cli"))
    out.print(f"{email}: unsubscribed; it is not mailed again unless it opts in", markup=False)


@subscribers_app.command("erase")
def erase(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address whose data to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a person's data; keep a hashed suppression entry and an anonymous consent log."""
    if not yes:
        typer.confirm(
            f"Erase everything held on {email}? This cannot be undone", abort=True, err=True
        )
    emptied = _people(ctx).erase(email, _requester("cli"))
    out.print(f"{email}: erased; only a hashed suppression entry remains", markup=False)
    if not emptied:
        err.print(
            "warning: another process kept the database busy, so a copy may stay in its "
            "-wal file until the next checkpoint; erase the address again later to retry",
            markup=False,
        )


@subscribers_app.command("purge")
def purge(ctx: typer.Context) -> None:
    """Delete sign-ups that were never confirmed in time, and expired confirmation tokens."""
    people = _people(ctx)
    subscribers = people.purge_unconfirmed()
    tokens = people.purge_expired_tokens()
    out.print(
        f"purged {subscribers} unconfirmed subscriber(s) and {tokens} expired token(s)",
        markup=False,
    )

"""`newsletter bounces`: read the return mailbox and act on what came back."""

from __future__ import annotations

import typer

from newsletter.cli.support import AsJson, app_context, out, print_json
from newsletter.core.config import Settings
from newsletter.returns.mailboxes import IMAP_UNKNOWN_KEYWORD, MAILDIR_UNKNOWN, open_return_mailbox
from newsletter.returns.process import BounceReport, process_return_mailbox


def _counted(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def summary_line(report: BounceReport) -> str:
    """E.g. "5 messages: 2 permanent failures, 1 temporary failure, 0 complaints, ..."."""
    line = (
        f"{_counted(report.messages, 'message', 'messages')}: "
        f"{_counted(report.permanent, 'permanent failure', 'permanent failures')}, "
        f"{_counted(report.temporary, 'temporary failure', 'temporary failures')}, "
        f"{_counted(report.complaints, 'complaint', 'complaints')}, "
        f"{_counted(report.unsubscribes, 'unsubscribe', 'unsubscribes')}, "
        f"{report.not_understood} not understood"
    )
    if report.already_handled:
        line += f", {report.already_handled} handled before"
    if report.suppressed:
        line += f"; {_counted(report.suppressed, 'address', 'addresses')} suppressed"
    return line


def bounces(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """Read the return mailbox: bounces, spam complaints and mailto unsubscribes."""
    context = app_context(ctx)
    settings = context.settings
    with open_return_mailbox(settings) as mailbox:
        report = process_return_mailbox(
            settings, context.database, mailbox=mailbox, clock=context.clock
        )
    if as_json:
        print_json(report.as_json())
        return
    out.print(summary_line(report), markup=False)
    for reason, count in report.reasons.items():
        out.print(f"  not understood ({count}): {reason}", markup=False)
    if report.not_understood:
        out.print(f"  kept for a person to read: {_where_unknown_go(settings)}", markup=False)


def _where_unknown_go(settings: Settings) -> str:
    config = settings.bounces
    if config.maildir is not None:
        return f"{config.maildir}/.{MAILDIR_UNKNOWN}"
    if config.imap_unknown_folder:
        return f"IMAP folder {config.imap_unknown_folder}"
    return f"IMAP folder {config.imap_folder}, with the keyword {IMAP_UNKNOWN_KEYWORD}"

"""`newsletter bounces`: read the return mailbox and act on what came back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from newsletter.cli.support import AsJson, app_context, out, print_json

if TYPE_CHECKING:
    from newsletter.core.config import Settings
    from newsletter.returns.process import BounceReport


def _counted(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def summary_line(report: BounceReport) -> str:
    """E.g. "read 73 returned mails: 10 bounced, 61 probed, 12 temporary, 0 not understood"."""
    parts = [f"{report.permanent} bounced", f"{report.probed} probed"]
    parts.append(f"{report.temporary} temporary")
    if report.complaints:
        parts.append(_counted(report.complaints, "complaint", "complaints"))
    if report.unsubscribes:
        parts.append(_counted(report.unsubscribes, "unsubscribe", "unsubscribes"))
    parts.append(f"{report.not_understood} not understood")
    line = f"read {_counted(report.messages, 'returned mail', 'returned mails')}: "
    line += ", ".join(parts)
    if report.already_handled:
        line += f", {report.already_handled} handled before"
    if report.suppressed:
        line += f"; {_counted(report.suppressed, 'address', 'addresses')} suppressed"
    if report.probes_sent or report.probes_refused or report.probes_waiting:
        line += (
            f"; probes: {report.probes_sent} sent, {report.probes_refused} refused for good, "
            f"{report.probes_waiting} to try again"
        )
    return line


def bounces(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """Read the return mailbox (bounces, spam complaints, mailto unsubscribes) and send
    the probes that are due."""
    from newsletter.mail.mailer import SmtpMailer
    from newsletter.returns.mailboxes import open_return_mailbox
    from newsletter.returns.process import handle_returns

    context = app_context(ctx)
    settings = context.settings
    send = SmtpMailer(settings, clock=context.clock).send_now
    with open_return_mailbox(settings) as mailbox:
        report = handle_returns(
            settings, context.database, mailbox=mailbox, clock=context.clock, send=send
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
    from newsletter.returns.mailboxes import IMAP_UNKNOWN_KEYWORD, MAILDIR_UNKNOWN

    config = settings.bounces
    if config.maildir is not None:
        return f"{config.maildir}/.{MAILDIR_UNKNOWN}"
    if config.imap_unknown_folder:
        return f"IMAP folder {config.imap_unknown_folder}"
    return f"IMAP folder {config.imap_folder}, with the keyword {IMAP_UNKNOWN_KEYWORD}"

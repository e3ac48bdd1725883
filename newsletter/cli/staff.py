"""`newsletter staff ...`: the accounts that may log in to the staff pages (/admin)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli.support import AsJson, ReportingGroup, app_context, iso, out, print_json
from newsletter.core.errors import AccountError

staff_app = typer.Typer(
    cls=ReportingGroup,
    help="Staff accounts for the /admin pages: add, list, change a password, remove.",
    no_args_is_help=True,
)

_STDIN_HELP = "Read the password from the first line of standard input (for scripts)."


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AccountError("not on a terminal: pass --password-stdin and pipe the password in")
    password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


def _checked_email(email: str | None) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    if email is None:
        return None
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AccountError(f"--email: {exc}") from exc


@staff_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Login name: lower-case letters, digits, . _ -")],
    email: Annotated[
        str | None, typer.Option("--email", help="Where this person gets test mails.")
    ] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=_STDIN_HELP)] = False,
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="admin (may add and remove staff, sees the login history) or editor.",
        ),
    ] = "admin",
) -> None:
    """Create a staff account; asks for its password (at least 12 characters)."""
    from newsletter.staff.accounts import ROLES, add_user

    context = app_context(ctx)
    if role not in ROLES:
        raise AccountError(f"--role: one of {', '.join(ROLES)}")
    address = _checked_email(email)
    password = _read_password(password_stdin)
    with context.database.session() as session:
        add_user(session, name, password, email=address, now=context.clock(), role=role)
    out.print(f"staff user {name} added ({role})", markup=False)


@staff_app.command("password")
def password(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=_STDIN_HELP)] = False,
) -> None:
    """Give a staff account a new password; logs it out everywhere."""
    from newsletter.staff.accounts import set_password

    context = app_context(ctx)
    new_password = _read_password(password_stdin)
    with context.database.session() as session:
        set_password(session, name, new_password)
    out.print(f"password of {name} changed; their sessions ended", markup=False)


@staff_app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Remove a staff account and end its sessions."""
    from newsletter.staff.accounts import remove_user

    context = app_context(ctx)
    with context.database.session() as session:
        remove_user(session, name)
    out.print(f"staff user {name} removed", markup=False)


@staff_app.command("list")
def list_accounts(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """The staff accounts, with their address and last login."""
    from newsletter.staff.accounts import list_users

    context = app_context(ctx)
    with context.database.session() as session:
        users = [
            {
                "name": user.name,
                "email": user.email,
                "role": user.role,
                "created_at": iso(user.created_at),
                "last_login_at": iso(user.last_login_at),
            }
            for user in list_users(session)
        ]
    if as_json:
        print_json(users)
        return
    table = Table("name", "role", "email", "last login", box=None)
    for user in users:
        table.add_row(
            user["name"], user["role"], user["email"] or "", user["last_login_at"] or "never"
        )
    out.print(table)

"""`newsletter staff ...`: the accounts for the staff pages, and the login they give."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.cli.support import AppContext
from newsletter.core.db import open_database
from newsletter.staff.accounts import (
    StaffSession,
    StaffUser,
    authenticate,
    open_session,
    session_member,
)
from tests.support.clock import FixedClock
from tests.support.subscribers import SECRET

Run = Callable[..., Result]
ENV = {"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_CONFIG": ""}
PASSWORD = "correct paard batterij nietje"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    return path


@pytest.fixture
def cli(config: Path, clock: FixedClock) -> Run:
    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner(env=ENV).invoke(
            app,
            ["--config", str(config), "staff", *args],
            input=input,
            obj=AppContext(config_path=config, clock=clock),
        )

    return run


def users(database_url: str) -> list[StaffUser]:
    database = open_database(database_url)
    try:
        with database.session() as session:
            return list(session.scalars(select(StaffUser).order_by(StaffUser.name)))
    finally:
        database.dispose()


def test_add_stores_an_argon2_hash_that_logs_in(cli: Run, database_url: str) -> None:
    result = cli(
        "add",
        "redactie",
        "--email",
        "Redactie@RVJeugdzorg.nl",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "staff user redactie added" in result.output
    [user] = users(database_url)
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert user.email == "Redactie@rvjeugdzorg.nl"
    database = open_database(database_url)
    try:
        with database.session() as session:
            assert authenticate(session, "redactie", PASSWORD) is not None
            assert authenticate(session, "redactie", PASSWORD + "x") is None
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["add", "Red Actie"], PASSWORD, "a staff name is 1-60 lower-case letters"),
        (["add", "redactie"], "kort", "at least 12 characters"),
        (["add", "redactie", "--email", "geen-adres"], PASSWORD, "--email:"),
        (["add", "redactie", "--role", "baas"], PASSWORD, "--role: one of admin, editor"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(
    cli: Run, database_url: str, args: list[str], password: str, message: str
) -> None:
    result = cli(*args, "--password-stdin", input=password + "\n")
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert users(database_url) == []


def test_a_taken_name_is_refused(cli: Run, database_url: str) -> None:
    assert cli("add", "redactie", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    again = cli("add", "redactie", "--password-stdin", input="een ander wachtwoord\n")
    assert again.exit_code == 1 and "already exists" in again.output
    assert len(users(database_url)) == 1


def test_without_a_terminal_the_password_must_come_from_stdin(cli: Run) -> None:
    result = cli("add", "redactie", input="")
    assert result.exit_code == 1
    assert "--password-stdin" in result.output


def test_a_new_password_or_removal_ends_the_sessions(
    cli: Run, database_url: str, clock: FixedClock
) -> None:
    assert cli("add", "redactie", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    database = open_database(database_url)
    try:
        with database.session() as session:
            member = authenticate(session, "redactie", PASSWORD)
            assert member is not None
            token = open_session(session, member, now=clock())
        changed = cli("password", "redactie", "--password-stdin", input="een nieuw wachtwoord\n")
        assert changed.exit_code == 0, changed.output
        with database.session() as session:
            alive = session_member(
                session, token, now=clock(), idle=timedelta(hours=1), lifetime=timedelta(hours=2)
            )
            assert alive is None
            assert authenticate(session, "redactie", "een nieuw wachtwoord") is not None
            token = open_session(session, member, now=clock())
        assert cli("remove", "redactie").exit_code == 0
        with database.session() as session:
            assert session.scalars(select(StaffSession)).all() == []
        assert cli("remove", "redactie").exit_code == 1
    finally:
        database.dispose()


def test_list_shows_names_and_last_logins(cli: Run) -> None:
    for name in ("beheer", "redactie"):
        assert cli("add", name, "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    listed = json.loads(cli("list", "--json").output)
    assert [user["name"] for user in listed] == ["beheer", "redactie"]
    assert all(user["last_login_at"] is None for user in listed)


def test_the_first_account_is_an_admin_and_role_picks_another(cli: Run, database_url: str) -> None:
    assert cli("add", "eerste", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    added = cli("add", "tweede", "--role", "editor", "--password-stdin", input=PASSWORD + "\n")
    assert added.exit_code == 0 and "(editor)" in added.output
    assert [(user.name, user.role) for user in users(database_url)] == [
        ("eerste", "admin"),
        ("tweede", "editor"),
    ]
    listed = json.loads(cli("list", "--json").output)
    assert [row["role"] for row in listed] == ["admin", "editor"]

"""What every `newsletter` subcommand shares: consoles, error reporting, lazy context."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from newsletter.core.clock import Clock, utc_now
from newsletter.core.config import Settings, load_settings
from newsletter.core.db import Database, open_database
from newsletter.core.errors import NewsletterError

# Options and arguments that several commands take, worded once.
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
EditionNumber = Annotated[int, typer.Argument(help="Edition number.")]


def show_at_most(default: int) -> Any:
    """The `--limit` option of a listing, with its default."""
    return typer.Option(default, "--limit", min=1, help="Show at most this many.")


T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class ReportingGroup(TyperGroup):
    """Turns a NewsletterError anywhere below into one line on stderr and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(exc.exit_code) from exc


@dataclass
class AppContext:
    """Settings and database, opened on first use so that `--help` needs neither."""

    config_path: Path | None
    clock: Clock = utc_now
    _settings: Settings | None = None
    _database: Database | None = None
    cleanups: list[Any] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = open_database(self.settings.database_url)
            self.cleanups.append(self._database.dispose)
        return self._database

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()


def app_context(ctx: typer.Context) -> AppContext:
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext(config_path=None)
    return root.obj


def print_json(data: Any) -> None:
    out.print(json.dumps(data, ensure_ascii=False, indent=2, default=str), markup=False)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def listing_done(
    found: Sequence[T], *, as_json: bool, json_of: Callable[[T], Any], none_yet: str
) -> bool:
    """True when the listing is done: printed as JSON, or said to be empty; False when
    the caller is to print its lines."""
    if as_json:
        print_json([json_of(item) for item in found])
        return True
    if not found:
        out.print(none_yet, markup=False)
        return True
    return False

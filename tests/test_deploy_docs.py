"""The production docs cannot rot: docs/deploy/*.service and README's production section.

The systemd units must parse (and pass `systemd-analyze verify` where it exists), run only
real `newsletter` commands, and keep their hardening; every settings key and environment
variable the docs name must be one the code reads.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.core import config as config_module
from newsletter.core.config import (
    CONFIG_ENV,
    SECRET_KEY_ENV,
    SMTP_PASSWORD_ENV,
    Settings,
    ThemeSettings,
    settings_from_mapping,
)
from newsletter.web.connections import (
    BODY_SECONDS,
    HEADER_SECONDS,
    MAX_CONNECTIONS,
    RESERVED_DESCRIPTORS,
)
from newsletter.web.security import IMPORT_BODY_BYTES
from tests.support.paths import ROOT
from tests.support.waiting import PATIENCE_SECONDS

DEPLOY = ROOT / "docs" / "deploy"
WEB_UNIT = DEPLOY / "newsletter-web.service"
SCHEDULER_UNIT = DEPLOY / "newsletter-scheduler.service"
WORKER_UNIT = DEPLOY / "newsletter-worker.service"
UNITS = (WEB_UNIT, SCHEDULER_UNIT, WORKER_UNIT)
INSTALLED_COMMAND = "/opt/newsletter/venv/bin/newsletter"
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop")
# What systemd allows in front of an Exec command: ignore failure, argv[0], privileges.
EXEC_PREFIXES = "-@:+!"


def read_unit(path: Path) -> configparser.RawConfigParser:
    """A unit file as INI: [Section] headers and Key=Value lines, keys case-sensitive."""
    parser = configparser.RawConfigParser(
        delimiters=("=",),
        comment_prefixes=("#", ";"),
        empty_lines_in_values=False,
        strict=True,  # a key twice in one section is an error here, as we never need it
        interpolation=None,
    )
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def production_section() -> str:
    text = readme()
    start = text.index("\n## Running it in production\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def exec_commands(unit: configparser.RawConfigParser) -> list[list[str]]:
    service = unit["Service"]
    return [shlex.split(service[key].lstrip(EXEC_PREFIXES)) for key in EXEC_KEYS if key in service]


def sqlite_directory_in_readme() -> Path:
    """The data directory: the folder of the SQLite URL in the production settings."""
    found = re.search(r'^url = "(sqlite:///[^"]+)"$', production_section(), re.MULTILINE)
    assert found, "the production settings name no SQLite database"
    database = make_url(found.group(1)).database
    assert database and Path(database).is_absolute()
    return Path(database).parent


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_each_unit_is_an_ini_file_with_the_sections_systemd_expects(path: Path) -> None:
    unit = read_unit(path)
    assert unit.sections() == ["Unit", "Service", "Install"]
    for section in unit.sections():
        for key in unit[section]:
            assert re.fullmatch(r"[A-Z][A-Za-z]+", key), f"{path.name}: [{section}] {key}"
    assert unit["Unit"]["Description"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert unit["Service"]["ExecStart"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    # verify wants the commands to exist: point them at this checkout's installed one.
    command = Path(sys.executable).parent / "newsletter"
    for path in UNITS:
        text = path.read_text(encoding="utf-8").replace(INSTALLED_COMMAND, str(command))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / path.name) for path in UNITS)],
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
        check=False,
    )
    about_ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if any(path.name in line for path in UNITS)
    ]
    assert about_ours == [], about_ours  # e.g. "Unknown key 'ProtectSystm' ..., ignoring."


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_every_command_a_unit_runs_is_a_real_newsletter_command(path: Path) -> None:
    commands = exec_commands(read_unit(path))
    assert commands
    for argv in commands:
        assert argv[0] == INSTALLED_COMMAND, argv
        words = [word for word in argv[1:] if not word.startswith("-")]
        result = CliRunner().invoke(app, [*argv[1:], "--help"])
        assert result.exit_code == 0, (argv, result.output)
        [usage] = [line for line in result.output.splitlines() if "Usage:" in line]
        assert " ".join(words) in usage, (argv, usage)


def test_only_the_web_unit_upgrades_the_schema_and_the_scheduler_starts_after_it() -> None:
    web, scheduler = read_unit(WEB_UNIT), read_unit(SCHEDULER_UNIT)
    assert exec_commands(web) == [
        [INSTALLED_COMMAND, "db", "upgrade"],
        [INSTALLED_COMMAND, "serve"],
    ]
    assert exec_commands(scheduler) == [[INSTALLED_COMMAND, "schedule"]]
    assert WEB_UNIT.name in scheduler["Unit"]["After"].split()
    assert WEB_UNIT.name in scheduler["Unit"]["Wants"].split()


def test_a_worker_starts_after_the_web_unit_where_there_is_one_without_needing_it() -> None:
    # A sender machine may run workers only: ordering after the web unit, never pulling it in.
    worker = read_unit(WORKER_UNIT)
    assert exec_commands(worker) == [[INSTALLED_COMMAND, "worker"]]
    assert WEB_UNIT.name in worker["Unit"]["After"].split()
    assert WEB_UNIT.name not in worker["Unit"].get("Wants", "").split()


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_each_unit_runs_hardened_as_its_own_user_with_secrets_from_a_file(path: Path) -> None:
    service = read_unit(path)["Service"]
    assert service["User"] == service["Group"] == "newsletter"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == str(sqlite_directory_in_readme())
    assert service["CapabilityBoundingSet"] == ""
    assert service["Environment"] == f"{CONFIG_ENV}=/etc/newsletter/newsletter.toml"
    assert service["EnvironmentFile"] == "/etc/newsletter/secrets.env"
    assert "/etc/newsletter/secrets.env" in production_section()


def test_the_units_may_write_the_maildir_the_docs_suggest() -> None:
    # The scheduler reads the return mailbox and files what it read: a Maildir outside
    # the units' writable paths would fail on the first bounce.
    suggested = re.findall(r'^#? ?maildir = "([^"]+)"', production_section(), flags=re.M)
    example = (ROOT / "newsletter.example.toml").read_text(encoding="utf-8")
    suggested += re.findall(r'^#? ?maildir = "([^"]+)"', example, flags=re.M)
    assert suggested
    for path in UNITS:
        writable = Path(read_unit(path)["Service"]["ReadWritePaths"])
        for maildir in suggested:
            assert Path(maildir).is_relative_to(writable), (path.name, maildir)


def test_the_readme_shows_every_unit_and_the_secrets_by_their_real_names() -> None:
    section = production_section()
    for path in UNITS:
        assert f"docs/deploy/{path.name}" in section
    for name in (SECRET_KEY_ENV, SMTP_PASSWORD_ENV):
        assert re.search(rf"^{name}=", section, re.MULTILINE), f"{name} is not in secrets.env"


def test_every_environment_variable_the_deploy_docs_name_is_read_by_the_code() -> None:
    read = {
        value
        for name, value in vars(config_module).items()
        if name.endswith("_ENV") and isinstance(value, str)
    }
    texts = [production_section(), *(path.read_text(encoding="utf-8") for path in UNITS)]
    named = {name for text in texts for name in re.findall(r"\bNEWSLETTER_[A-Z_]+\b", text)}
    assert named and named <= read, sorted(named - read)


def section_model(section: str) -> type[BaseModel]:
    if section.startswith("themes."):
        return ThemeSettings
    assert section in Settings.model_fields, f"no [{section}] section in the settings"
    model = Settings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def setting_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_every_settings_key_the_readme_names_exists() -> None:
    text = readme()
    named = set(re.findall(r"\[([a-z_]+)\] ([a-z_]+)\b", text))
    # The configuration table: | `[section]` | `key` (what it is), `key`, ... |
    for section, keys in re.findall(r"^\| `\[([A-Za-z_.]+)\]` \| (.+) \|$", text, re.MULTILINE):
        without_asides = re.sub(r"\([^)]*\)", "", keys)
        named |= {(section, key) for key in re.findall(r"`([a-z_]+)`", without_asides)}
    assert ("web", "trusted_proxies") in named and ("site", "base_url") in named
    unknown = sorted(
        f"[{section}] {key}"
        for section, key in named
        if key not in setting_names(section_model(section))
    )
    assert unknown == [], f"README.md names settings that do not exist: {unknown}"


def test_every_settings_example_in_the_readme_is_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"^```toml\n(.*?)^```$", readme(), re.MULTILINE | re.DOTALL)
    assert blocks
    for block in blocks:
        settings_from_mapping(tomllib.loads(block), base_dir=tmp_path, env={}, origin="README")


def test_the_web_unit_allows_the_server_its_full_number_of_connections() -> None:
    # serve keeps half the descriptors it may open for connections (web/connections.py).
    limit = int(read_unit(WEB_UNIT)["Service"]["LimitNOFILE"])
    assert (limit - RESERVED_DESCRIPTORS) // 2 >= MAX_CONNECTIONS


def test_the_readme_gives_the_proxy_the_limits_serve_keeps_itself() -> None:
    section = production_section()
    said = f"{HEADER_SECONDS:g} seconds to send its\nheaders and {BODY_SECONDS:g} more"
    assert said in section
    assert f"at most {MAX_CONNECTIONS:,} connections" in section
    [nginx] = re.findall(r"^```nginx\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    settings = dict(re.findall(r"^\s*(client_\w+|limit_conn) ([^;]+);", nginx, re.MULTILINE))
    assert settings["client_header_timeout"] == f"{HEADER_SECONDS:g}s"
    assert settings["client_body_timeout"] == f"{BODY_SECONDS:g}s"
    assert "limit_conn" in settings
    body_limit = settings["client_max_body_size"]
    assert body_limit.endswith("m") and int(body_limit[:-1]) * 1024 * 1024 > IMPORT_BODY_BYTES

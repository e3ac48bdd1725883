"""The Jinja environment of every template, mail and web: where they are found, escaping."""

from __future__ import annotations

import re
import textwrap
import traceback
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2

import newsletter
from newsletter.core.config import Settings
from newsletter.core.dates import format_date, format_moment
from newsletter.core.errors import CompositionError, ConfigError

# Plain-text mail: short lines read well everywhere and leave room for quoting ("> ").
TEXT_WIDTH = 72

# Staff mistakes that surface while a template renders, besides Jinja's own errors.
_RENDER_MISTAKES = (jinja2.TemplateError, TypeError, ValueError, ArithmeticError)


def project_templates_dir() -> Path:
    """The templates shipped with the code: the repository's, else the wheel's copy."""
    package_dir = Path(newsletter.__file__).parent
    repository_templates = package_dir.parent / "templates"
    if repository_templates.is_dir():
        return repository_templates
    return package_dir / "_templates"


# Lines that start a block of their own in Markdown (and in plain text that looks like
# it): list items, headings, quotes, table rows. Other lines continue the one before.
_BLOCK_START = re.compile(r"^(?:[-*+]\s|\d{1,9}[.)]\s|#{1,6}\s|>|\|)")
_LIST_MARKER = re.compile(r"^(?:[-*+]|\d{1,9}[.)])\s+")
_FENCE = re.compile(r"^\s*(?:```|~~~)")


def wrap_text(value: str, width: int = TEXT_WIDTH) -> str:
    """Reflow text to `width` columns; URLs and other long words stay whole.

    Lines of one paragraph are joined and wrapped again, as Markdown would join them;
    list items, headings, quotes, code and hard line breaks keep their own lines.
    """
    output: list[str] = []
    block: list[str] = []
    in_fence = False

    def flush() -> None:
        if block:
            output.extend(_wrap_block(block, width))
            block.clear()

    for line in str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            output.append(line)
        elif in_fence or line.startswith(("    ", "\t")):
            flush()
            output.append(line)
        elif not line.strip():
            flush()
            output.append("")
        else:
            if _BLOCK_START.match(line.lstrip()):
                flush()
            block.append(line)
            # Two trailing spaces or a backslash: a hard line break the writer meant.
            if line.endswith(("  ", "\\")):
                flush()
    flush()
    return "\n".join(output)


def _wrap_block(lines: list[str], width: int) -> list[str]:
    first = lines[0]
    indent = first[: len(first) - len(first.lstrip())]
    marker = _LIST_MARKER.match(first.lstrip())
    hanging = indent + " " * (marker.end() if marker else 0)
    text = " ".join(line.strip() for line in lines)
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=hanging,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]


def template_environment(settings: Settings) -> jinja2.Environment:
    """The environment all mail templates render in.

    Templates are looked up in the staff's override folder (`[templates] dir`, laid out
    like the project's templates/ folder) first, then in the project's own templates.
    """
    search_path = []
    override = settings.templates_dir
    if override is not None:
        if not override.is_dir():
            raise ConfigError(f"templates.dir: {override} is not a folder")
        search_path.append(override)
    search_path.append(project_templates_dir())
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path),
        # Plain-text templates must not turn "&" into "&amp;"; everything else is markup
        # (MJML, HTML, and small helper templates), where escaping is the safe default.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2", "html", "htm", "xml"),
            disabled_extensions=("txt.j2", "txt"),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # An included file keeps its last newline, so the next line of the including
        # template starts on a line of its own (MJML rejects some run-on lines).
        keep_trailing_newline=True,
    )
    timezone = settings.site.timezone
    language = settings.site.language

    def dutch_date(value: datetime) -> str:
        return format_date(value, timezone=timezone, locale=language)

    def dutch_moment(value: datetime) -> str:
        return format_moment(value, timezone=timezone, locale=language)

    environment.filters["dutch_date"] = dutch_date
    environment.filters["dutch_moment"] = dutch_moment
    environment.filters["wrap"] = wrap_text
    return environment


def _template_line(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The file and line of the innermost template frame: Jinja maps them to the source."""
    for frame in reversed(traceback.extract_tb(tb)):
        if frame.filename.endswith(".j2") or frame.filename.startswith("<template>"):
            return frame.filename, frame.lineno
    return None, None


def describe_template_error(name: str, exc: BaseException) -> str:
    """One line naming the template and the line where rendering went wrong."""
    if isinstance(exc, jinja2.TemplateNotFound):
        missing = exc.name or name
        if missing == name:
            return f"template {name} not found"
        return f"template {name}: included template {missing} not found"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = exc.name or exc.filename or name
        return f"template {where}, line {exc.lineno}: syntax error: {exc.message}"
    file_name, line = _template_line(exc.__traceback__)
    where = f"template {name}"
    # Name the included file by its path, which also tells an override from the original.
    if file_name is not None and not Path(file_name).as_posix().endswith(name):
        where += f" (in {file_name})"
    if line is not None:
        where += f", line {line}"
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"{where}: {message}"


def render_template(environment: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render template `name`; every template failure becomes a one-line CompositionError."""
    try:
        return environment.get_template(name).render(context)
    except _RENDER_MISTAKES as exc:
        raise CompositionError(describe_template_error(name, exc)) from exc


def template_module(environment: jinja2.Environment, name: str) -> Any:
    """The variables a helper template sets (such as email/strings.j2), as attributes."""
    try:
        return environment.get_template(name).module
    except _RENDER_MISTAKES as exc:
        raise CompositionError(describe_template_error(name, exc)) from exc

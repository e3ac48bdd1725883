"""The layout stays readable: every module says what it is for, stays small, and is on
the map (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGES = (ROOT / "newsletter", ROOT / "subscribers")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAP = ROOT / "docs" / "architecture.md"


def modules() -> list[Path]:
    found = []
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            if "versions" not in path.relative_to(ROOT).parts:
                found.append(path)
    return found


def has_code(path: Path) -> bool:
    """More than a docstring (a package's __init__ often holds only that)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_module_opens_with_a_one_line_summary(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring, f"{path.relative_to(ROOT)} has no docstring"
    summary = docstring.split("\n\n")[0]
    assert "\n" not in summary, f"{path.relative_to(ROOT)}: the first line is not one line"


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} is too long"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(ROOT)}: {', '.join(long)}"


def map_sections() -> dict[str, str]:
    """The text of each package's section of the map, by the package's folder."""
    text = MAP.read_text(encoding="utf-8")
    parts = re.split(r"^### `([a-z/]+)/`.*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def map_entry(path: Path) -> tuple[str, str] | None:
    """Where the map names a module: (its package's section, its path there); "" for the
    section means anywhere in the map. None for the root package's own files."""
    relative = path.relative_to(ROOT)
    if relative.parts[0] == "subscribers":
        return "subscribers", relative.relative_to("subscribers").as_posix()
    if len(relative.parts) == 2:
        return None  # newsletter/__init__.py and __main__.py: the package itself
    if relative.parts[1] == "migrations":
        return "", relative.name
    package = "/".join(relative.parts[:2])
    return package, relative.relative_to(package).as_posix()


@pytest.mark.parametrize(
    "path",
    [
        path
        for path in modules()
        if map_entry(path) is not None and (path.name != "__init__.py" or has_code(path))
    ],
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_every_module_is_on_the_map(path: Path) -> None:
    entry = map_entry(path)
    assert entry is not None
    package, name = entry
    where = map_sections().get(package, "") if package else MAP.read_text(encoding="utf-8")
    assert f"`{name}`" in where, (
        f"docs/architecture.md does not name {path.relative_to(ROOT)} "
        f"in its section for {package or 'the project'}"
    )

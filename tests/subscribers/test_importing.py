"""Reading import files as spreadsheets save them: encodings, separators, column names, themes."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import ImportFileError
from subscribers.importing import ImportRow, RowProblem, decode_file, read_rows, unformula

THEMES = {"doe-je-mee": {"name": "Doe je mee?"}, "onderzoek": {"name": "Onderzoek"}}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(themes=THEMES)


def rows(text: str, settings: Settings) -> list[ImportRow | RowProblem]:
    return list(read_rows(io.StringIO(text, newline=""), settings))


@pytest.mark.parametrize(
    "raw",
    [
        "e-mail;naam\r\nzoë@example.org;Zoë\r\n".encode(),
        "\ufeffe-mail;naam\r\nzoë@example.org;Zoë\r\n".encode(),
        "e-mail;naam\r\nzoë@example.org;Zoë\r\n".encode("cp1252"),
    ],
    ids=["utf-8", "utf-8-bom", "windows-1252"],
)
def test_utf8_with_or_without_bom_and_windows_1252_read_the_same(raw: bytes) -> None:
    assert decode_file(raw) == "e-mail;naam\r\nzoë@example.org;Zoë\r\n"


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"", "empty"), (b" \n ", "empty"), (b"a\x00b", "encoding"), (b"e-mail\n\x81", "encoding")],
)
def test_what_is_no_text_is_refused_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(ImportFileError) as refused:
        decode_file(raw)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "header",
    ["e-mail;naam;thema's", "E-Mail;Naam;Thema's", "email,name,themes", "E-mailadres;NAAM;themas"],
)
def test_dutch_and_english_column_names_in_any_case(header: str, settings: Settings) -> None:
    separator = ";" if ";" in header else ","
    line = separator.join(["een@example.org", "Een", '"Onderzoek, doe-je-mee"'])
    [row] = rows(f"{header}\r\n{line}\r\n", settings)
    assert isinstance(row, ImportRow)
    assert (row.address.email, row.name, row.themes) == (
        "een@example.org",
        "Een",
        ("doe-je-mee", "onderzoek"),
    )


def test_themes_by_name_or_slug_and_unknown_ones_named(settings: Settings) -> None:
    found = rows(
        "e-mail;thema's\r\na@example.org;doe je mee?;Onderzoek\r\nb@example.org;Sport\r\n"
        'c@example.org;"DOE-JE-MEE; onderzoek"\r\n',
        settings,
    )
    assert isinstance(found[0], RowProblem) and found[0].code == "fields"
    assert isinstance(found[1], RowProblem)
    assert (found[1].line, found[1].code, found[1].detail) == (3, "themes:unknown", "Sport")
    assert isinstance(found[2], ImportRow) and found[2].themes == ("doe-je-mee", "onderzoek")


def test_a_header_without_an_email_column_is_refused(settings: Settings) -> None:
    for header in ("naam;thema's", "e-mail;telefoon", "e-mail;email"):
        with pytest.raises(ImportFileError) as refused:
            rows(f"{header}\r\nx;y\r\n", settings)
        assert refused.value.code == "header"


def test_the_exports_formula_guard_is_taken_off() -> None:
    assert unformula("'=2+3") == "=2+3"
    assert unformula("'-Piet") == "-Piet"
    assert unformula("'t Hoen") == "'t Hoen"  # a real apostrophe stays

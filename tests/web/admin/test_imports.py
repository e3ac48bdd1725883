"""The staff's CSV import: Dutch spreadsheet files, the preview, the import, every refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.staff.accounts import add_user
from newsletter.staff.imports import MAX_IMPORT_BYTES
from subscribers.models import ConsentEvent, Subscriber
from tests.support.clock import FixedClock
from tests.support.webharness import STAFF_PASSWORD as PASSWORD
from tests.support.webharness import WebHarness, csrf_token, web_harness

THEMES = {"doe-je-mee": {"name": "Doe je mee?"}, "onderzoek": {"name": "Onderzoek"}}
SEALED = 'name="file" value="'


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(make_settings, clock, themes=THEMES) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", PASSWORD, email=None, now=clock())
        yield harness


def upload(client: TestClient, content: bytes, name: str = "lijst.csv") -> Any:
    token = csrf_token(client.get("/admin/subscribers/import").text)
    return client.post(
        "/admin/subscribers/import",
        data={"csrf_token": token},
        files={"file": (name, content, "text/csv")},
    )


def sealed_in(page: str) -> str:
    start = page.index(SEALED) + len(SEALED)
    return page[start : page.index('"', start)]


def confirm(client: TestClient, preview: str, **data: Any) -> Any:
    form = {"csrf_token": csrf_token(preview), "file": sealed_in(preview), **data}
    return client.post("/admin/subscribers/import/confirm", data=form)


def count(page: str, what: str) -> int:
    marker = f'data-count="{what}">'
    start = page.index(marker) + len(marker)
    return int(page[start : page.index("<", start)])


def emails(web: WebHarness) -> dict[str, str]:
    with web.database.session() as session:
        return dict(session.execute(select(Subscriber.email, Subscriber.status)).all())


EXCEL = (
    "\ufeffe-mail;naam;thema's\r\n"
    "een@example.org;José Müller;Onderzoek\r\n"
    "twee@example.org;;doe-je-mee, onderzoek\r\n"
    "geen-adres;Drie;\r\n"
    "al@example.org;Al;\r\n"
    "weg@example.org;Weg;\r\n"
    "vier@example.org;Vier;Bestaat niet\r\n"
    "een@example.org;Dubbel;\r\n"
)


def test_a_dutch_excel_file_is_previewed_then_imported(web: WebHarness, staff: TestClient) -> None:
    web.confirmed("al@example.org")
    web.unsubscribed("weg@example.org")
    before = web.snapshot()
    preview = upload(staff, EXCEL.encode("utf-8"))
    assert preview.status_code == 200
    page = preview.text
    assert [count(page, what) for what in ("new", "already", "suppressed", "invalid")] == [
        2,
        1,
        1,
        3,
    ]
    assert "José Müller" in page
    assert "Regel 4: geen geldig e-mailadres" in page
    assert "Regel 7: onbekend thema Bestaat niet" in page
    assert "Regel 8: hetzelfde adres als regel 2" in page
    assert web.snapshot() == before  # a preview stores nothing

    refused = confirm(staff, page, how="confirmed", reason="")
    assert refused.status_code == 422 and "Schrijf op waarom" in refused.text
    assert web.snapshot() == before

    done = confirm(staff, page, how="confirmed", reason="papieren lijst actiedag 15 maart")
    assert done.status_code == 200
    assert count(done.text, "confirmed") == 2 and count(done.text, "skipped") == 1
    listed = emails(web)
    assert listed["een@example.org"] == listed["twee@example.org"] == "confirmed"
    assert listed["weg@example.org"] == "unsubscribed"
    with web.database.session() as session:
        names = dict(session.execute(select(Subscriber.email, Subscriber.name)).all())
        themes = dict(session.execute(select(Subscriber.email, Subscriber.themes)).all())
        imported = session.scalars(
            select(ConsentEvent.details).where(ConsentEvent.event == "imported")
        ).all()
    assert names["een@example.org"] == "José Müller"
    assert themes["twee@example.org"] == ["doe-je-mee", "onderzoek"]
    assert imported and all(
        details["staff"] == "redactie" and details["note"] == "papieren lijst actiedag 15 maart"
        for details in imported
    )


def test_a_windows_1252_file_with_commas_sends_confirmation_mails(
    web: WebHarness, staff: TestClient
) -> None:
    text = "Email,Naam\r\nfrancoise@example.org,Françoise Ærø\r\n"
    preview = upload(staff, text.encode("cp1252"))
    assert preview.status_code == 200 and "Françoise Ærø" in preview.text
    done = confirm(staff, preview.text, how="mail")
    assert count(done.text, "pending") == 1
    assert emails(web) == {"francoise@example.org": "pending"}
    assert len(web.messages_to("francoise@example.org")) == 1


def test_an_exported_file_reads_back_with_its_formula_guard(
    web: WebHarness, staff: TestClient
) -> None:
    text = "\ufeffe-mail;naam\r\n'=cmd|'/Ccalc'!A0@example.org;'-Piet\r\n"
    preview = upload(staff, text.encode("utf-8"))
    assert count(preview.text, "new") == 1
    confirm(staff, preview.text, how="confirmed", reason="terug uit de export")
    with web.database.session() as session:
        assert session.execute(select(Subscriber.email, Subscriber.name)).one() == (
            "=cmd|'/Ccalc'!A0@example.org",
            "-Piet",
        )


@pytest.mark.parametrize(
    ("content", "status", "line"),
    [
        (b"", 400, "Het bestand is leeg."),
        (b"  \r\n", 400, "Het bestand is leeg."),
        (b"naam;thema's\r\nPiet;\r\n", 400, "moet de kolommen noemen"),
        (b"e-mail;telefoon\r\nx@example.org;06\r\n", 400, "moet de kolommen noemen"),
        (b"PK\x03\x04\x00\x00binary", 400, "kunnen we niet als tekst lezen"),
        (b"e-mail\r\n\x81\x8d\x8f@example.org\r\n", 400, "kunnen we niet als tekst lezen"),
        (b"e-mail\r\n" + b"a@example.org\r\n" * (MAX_IMPORT_BYTES // 15 + 1), 413, "te groot"),
    ],
    ids=["empty", "blank", "no-email-column", "unknown-column", "binary", "not-cp1252", "large"],
)
def test_a_file_that_cannot_be_read_gets_one_dutch_line(
    web: WebHarness, staff: TestClient, content: bytes, status: int, line: str
) -> None:
    before = web.snapshot()
    answer = upload(staff, content)
    assert answer.status_code == status
    assert line in answer.text
    assert "Dit bestand kon niet worden gelezen" in answer.text
    assert web.snapshot() == before


def test_a_body_over_the_import_limit_is_refused_unread(web: WebHarness, staff: TestClient) -> None:
    before = web.snapshot()
    answer = upload(staff, b"e-mail\r\n" + b"x" * (3 * MAX_IMPORT_BYTES))
    assert answer.status_code == 413
    assert web.snapshot() == before


def test_no_file_or_a_changed_or_old_preview_stores_nothing(
    web: WebHarness, staff: TestClient
) -> None:
    before = web.snapshot()
    token = csrf_token(staff.get("/admin/subscribers/import").text)
    nothing = staff.post("/admin/subscribers/import", data={"csrf_token": token})
    assert nothing.status_code == 400 and "Kies eerst een CSV-bestand" in nothing.text

    page = upload(staff, b"e-mail\r\nnieuw@example.org\r\n").text
    sealed = sealed_in(page)
    forged = sealed[:-4] + ("0000" if not sealed.endswith("0000") else "1111")
    tampered = staff.post(
        "/admin/subscribers/import/confirm",
        data={"csrf_token": csrf_token(page), "file": forged, "how": "mail"},
    )
    assert tampered.status_code == 400 and "Het voorbeeld is verlopen of veranderd" in tampered.text
    web.clock.advance(minutes=31)
    late = confirm(staff, page, how="mail")
    assert late.status_code == 400 and "Het voorbeeld is verlopen" in late.text
    assert web.snapshot() == before


def test_the_import_needs_its_csrf_token(web: WebHarness, staff: TestClient) -> None:
    staff.get("/admin/subscribers/import")
    answer = staff.post(
        "/admin/subscribers/import",
        data={"csrf_token": "wrong"},
        files={"file": ("lijst.csv", b"e-mail\r\nx@example.org\r\n", "text/csv")},
    )
    assert answer.status_code == 403

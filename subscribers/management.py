"""Staff's work on the list: add and import people, look them up, export, remove, erase.

What the CLI (`newsletter subscribers ...`) and the staff pages ask of the list; the
work of each call is in staff.py (writes), lookup.py and search.py (reads), inside one
transaction.
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from newsletter.core.errors import InvalidInput, SubscriberError
from newsletter.mail.mailer import OutgoingMail
from subscribers import lookup, staff
from subscribers.addresses import normalize_address, validate_name, validate_themes
from subscribers.batches import BATCH_ROWS, ConfirmationMails, import_batch
from subscribers.consent import Requester
from subscribers.export import spreadsheet_lines
from subscribers.importing import ImportReport, ImportRow, RowProblem, read_rows
from subscribers.lookup import PersonRecord, SubscriberSummary
from subscribers.models import STATUSES
from subscribers.previews import ImportPreview, preview_rows
from subscribers.returned import ReturnedPerson, returned_people
from subscribers.search import (
    SearchResults,
    email_of,
    search_subscribers,
    subscriber_counts,
)
from subscribers.service import ListService


class ListManagement(ListService):
    """The subscriber list as staff manage it."""

    def add(
        self,
        email: str,
        *,
        name: str | None,
        themes: Sequence[str],
        requester: Requester,
        confirmed: bool = False,
        consent_note: str | None = None,
    ) -> list[OutgoingMail]:
        """Add an address: pending with a confirmation mail, or confirmed with a consent note.

        An address that is confirmed already is left as it is (no mail). A suppressed
        address cannot be added as confirmed (SuppressedAddress): only its own opt-in can.
        """
        return self.add_one(
            email,
            name=name,
            themes=themes,
            requester=requester,
            confirmed=confirmed,
            consent_note=consent_note,
        ).mails

    def add_one(
        self,
        email: str,
        *,
        name: str | None,
        themes: Sequence[str],
        requester: Requester,
        confirmed: bool = False,
        consent_note: str | None = None,
    ) -> staff.AddOutcome:
        """`add`, telling what happened (confirmed, pending, already confirmed, mail limit)."""
        note = _consent_note(confirmed, consent_note)
        address = normalize_address(email)
        valid_name = validate_name(name)
        chosen = validate_themes(themes, self._settings)
        row = ImportRow(line=0, address=address, name=valid_name, themes=chosen)
        return self._add_row(
            row, requester=requester, confirmed=confirmed, note=note, event="added_by_staff"
        )

    def _add_row(
        self, row: ImportRow, *, requester: Requester, confirmed: bool, note: str | None, event: str
    ) -> staff.AddOutcome:
        return self._transaction(
            lambda session, op: staff.add_address(
                session,
                op,
                row.address,
                name=row.name,
                themes=row.themes,
                requester=requester,
                confirmed=confirmed,
                consent_note=note,
                confirmed_event=event,
            )
        )

    def import_csv(
        self,
        text: TextIO,
        *,
        requester: Requester,
        confirmed: bool = False,
        consent_note: str | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> ImportReport:
        """Add every row of a CSV file (email,name,themes) as `add` would.

        A bad row is reported with its line number and the others go on. The rows are
        stored `batch_rows` at a time, each batch in one transaction with its consent
        events: an error leaves the batches before it whole and nothing of its own. The
        report's mails are the confirmations to deliver.
        """
        note = _consent_note(confirmed, consent_note)
        report = ImportReport()
        rows = _valid_rows(read_rows(text, self._settings), report)
        self._import_rows(rows, report, requester, confirmed, note, batch_rows)
        return report

    def preview_import(self, text: str) -> ImportPreview:
        """What importing `text` (a CSV file's text) would do; stores nothing.

        Raises ImportFileError when the file has no usable header.
        """
        rows = read_rows(io.StringIO(text, newline=""), self._settings)
        with self._database.session() as session:
            return preview_rows(session, self._operation(), rows)

    def import_previewed(
        self, text: str, *, requester: Requester, confirmed: bool, consent_note: str | None
    ) -> ImportReport:
        """Import `text` as its preview said: the new ones are added as `add` would (a
        confirmation mail, or confirmed with the note); who is there already and who is
        suppressed are left as they are; bad lines are reported."""
        note = _consent_note(confirmed, consent_note)
        preview = self.preview_import(text)
        report = ImportReport(
            unchanged=len(preview.already),
            skipped=len(preview.suppressed),
            problems=list(preview.problems),
        )
        self._import_rows(iter(preview.new), report, requester, confirmed, note, BATCH_ROWS)
        return report

    def _import_rows(
        self,
        rows: Iterator[ImportRow],
        report: ImportReport,
        requester: Requester,
        confirmed: bool,
        note: str | None,
        batch_rows: int,
    ) -> None:
        """Import `rows` a batch at a time, one transaction each, into `report`."""
        mails = ConfirmationMails(self._operation())
        while batch := list(itertools.islice(rows, batch_rows)):
            work = functools.partial(
                import_batch,
                rows=batch,
                requester=requester,
                confirmed=confirmed,
                consent_note=note,
                mails=mails,
            )
            done = self._transaction(work)
            report.add(done)
        # Each line has one problem at most: line order is the order they were found.
        report.problems.sort(key=lambda problem: problem.line)

    def export(self, *, status: str | None = None) -> Iterator[dict[str, str]]:
        """Rows of email,name,status,themes,created_at,confirmed_at (themes joined by ";")."""
        _check_status(status)
        return self._export(status)

    def _export(self, status: str | None) -> Iterator[dict[str, str]]:
        with self._database.session() as session:
            yield from lookup.export_rows(session, status=status)

    def spreadsheet(self, *, status: str | None = None) -> Iterator[list[str]]:
        """The list (or those in `status`) as Dutch spreadsheet cells, oldest first."""
        _check_status(status)
        return self._spreadsheet(status)

    def _spreadsheet(self, status: str | None) -> Iterator[list[str]]:
        with self._database.session() as session:
            yield from spreadsheet_lines(session, self._settings, status=status)

    def subscribers(self, *, status: str | None = None) -> list[SubscriberSummary]:
        """Every subscriber (or those in `status`), oldest first."""
        _check_status(status)
        with self._database.session() as session:
            return lookup.list_subscribers(session, status=status)

    def show(self, email: str) -> PersonRecord:
        """Everything held on the person with `email`, consent log and texts included."""
        address = normalize_address(email)
        with self._database.session() as session:
            return lookup.describe_person(session, self._operation(), address)

    def person(self, public_id: str) -> PersonRecord | None:
        """Everything held on the subscriber with `public_id`, as `show` gives it; None
        when no subscriber has that id."""
        with self._database.session() as session:
            email = email_of(session, public_id)
            if email is None:
                return None
            try:
                record = lookup.describe_person(
                    session, self._operation(), normalize_address(email)
                )
            except SubscriberError:
                return None
        # The row may have changed its address or gone meanwhile: then this id is not it.
        if record.subscriber is None or record.subscriber.public_id != public_id:
            return None
        return record

    def search(
        self, *, text: str, status: str | None, page: int, page_size: int
    ) -> SearchResults | None:
        """Page `page` of those whose address or name contains `text`, newest first;
        None past the last page."""
        with self._database.session() as session:
            return search_subscribers(
                session, text=text, status=status, page=page, page_size=page_size
            )

    def counts(self) -> dict[str, int]:
        """How many addresses are in each status, every status listed (zero included)."""
        with self._database.session() as session:
            return subscriber_counts(session)

    def change_details(
        self, email: str, *, name: str | None, themes: Sequence[str], requester: Requester
    ) -> bool:
        """Change a person's name and themes; False when they were so already."""
        address = normalize_address(email)
        valid_name = validate_name(name)
        chosen = validate_themes(themes, self._settings)
        return self._transaction(
            lambda session, op: staff.change_details(
                session, op, address, name=valid_name, themes=chosen, requester=requester
            )
        )

    def ask_to_confirm_again(
        self, email: str, *, requester: Requester, note: str
    ) -> list[OutgoingMail]:
        """A new confirmation mail to a pending, bounced or complained person (their status
        stays until they confirm); empty when the address had its mails for today."""
        address = normalize_address(email)
        return self._transaction(
            lambda session, op: staff.ask_to_confirm_again(
                session, op, address, requester=requester, note=note
            )
        )

    def returned(self, *, limit: int = 500) -> list[ReturnedPerson]:
        """The people mail no longer reaches (bounced, complained), newest first."""
        with self._database.session() as session:
            return returned_people(session, limit=limit)

    def email_of(self, public_id: str) -> str | None:
        """The address of the subscriber with `public_id`, or None."""
        with self._database.session() as session:
            return email_of(session, public_id)

    def remove(self, email: str, requester: Requester) -> None:
        """Unsubscribe on staff's word: status unsubscribed and suppressed; data kept."""
        address = normalize_address(email)
        self._transaction(
            lambda session, op: staff.remove_subscriber(session, op, address, requester)
        )

    def erase(self, email: str, requester: Requester) -> bool:
        """Delete the person's data; keep a hashed suppression and an anonymous log.

        Their address is cut out of every server reply in the outbox too. On SQLite the
        write-ahead log is then emptied into the database file, where secure_delete has
        zeroed the deleted bytes. False when a reader kept the log busy: a copy stays in
        the -wal file until a later checkpoint (erasing again retries).
        """
        address = normalize_address(email)
        self._transaction(lambda session, op: staff.erase_person(session, op, address, requester))
        return self._database.empty_write_ahead_log()

    def purge_unconfirmed(self) -> int:
        """Delete sign-ups never confirmed within purge_unconfirmed_days; how many."""
        return self._transaction(staff.purge_unconfirmed)

    def purge_expired_tokens(self) -> int:
        """Delete confirmation tokens past their time; how many."""
        return self._transaction(staff.purge_expired_tokens)


def _valid_rows(
    items: Iterable[ImportRow | RowProblem], report: ImportReport
) -> Iterator[ImportRow]:
    """The valid rows of `items`; the problems go into `report` as they come."""
    for item in items:
        if isinstance(item, RowProblem):
            report.problems.append(item)
        else:
            yield item


def _consent_note(confirmed: bool, consent_note: str | None) -> str | None:
    note = " ".join((consent_note or "").split()) or None
    if confirmed and note is None:
        raise InvalidInput({"consent_note": "required"})
    return note


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise InvalidInput({"status": "unknown"})

"""The corpus of returned mail (tests/data/bounces/), rendered for a run's subscribers.

The corpus files hold placeholders for what only a run can know, filled in by `render`:
`{{verp:NAME}}` (the VERP address of NAME's copy of the edition), `{{message-id:NAME}}`,
`{{unsubscribe:NAME}}` (the link token), and forged versions of the first and last.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from newsletter.core.db import Database
from newsletter.delivery.outbox import OutboxRow
from newsletter.editions.models import Edition
from newsletter.mail.identities import message_id, verp_address
from subscribers.tokens import link_token
from tests.support.clock import FixedClock
from tests.support.paths import DATA_DIR
from tests.support.subscribers import SECRET

CORPUS = DATA_DIR / "bounces"
RETURN_PATH = "bounces@rvjeugdzorg.nl"
SENDER = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"
_PLACEHOLDER = re.compile(rb"\{\{([a-z-]+):([a-z]+)\}\}")


def render(name: str, public_ids: Mapping[str, str], *, edition: int) -> bytes:
    """Corpus file `name` with the signed values of the people in `public_ids`."""

    def fill(match: re.Match[bytes]) -> bytes:
        kind, person = match[1].decode(), match[2].decode()
        public_id = public_ids[person]
        if kind == "verp":
            value = verp_address(
                SECRET, return_path=RETURN_PATH, edition=edition, public_id=public_id
            )
        elif kind == "forged-verp":
            value = f"bounces+{edition}.{public_id}.0123456789abcdef@rvjeugdzorg.nl"
        elif kind == "message-id":
            value = message_id(
                SECRET, edition=edition, public_id=public_id, domain="rvjeugdzorg.nl"
            )
        elif kind == "unsubscribe":
            value = link_token(SECRET, "unsubscribe", public_id)
        elif kind == "forged-unsubscribe":
            value = f"{public_id}.{'Q' * 22}"
        else:
            raise AssertionError(f"unknown placeholder {kind}")
        return value.encode()

    return _PLACEHOLDER.sub(fill, (CORPUS / name).read_bytes())


def add_edition(db: Database, clock: FixedClock, subscriber_ids: list[int]) -> int:
    """A sent edition whose outbox names each subscriber (as sending leaves it)."""
    now = clock()
    with db.session() as session:
        edition = Edition(
            subject="Nieuwsbrief: nieuwe verhalen uit de beweging",
            state="sent",
            created_at=now,
            updated_at=now,
            sent_at=now,
        )
        session.add(edition)
        session.flush()
        for subscriber_id in subscriber_ids:
            session.add(
                OutboxRow(
                    edition_id=edition.id,
                    subscriber_id=subscriber_id,
                    variant="*",
                    state="sent",
                    attempts=1,
                    sent_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        return edition.id


_HOSTILE_HEADERS = (
    b"From: MAILER-DAEMON@mail.example.org (Mail Delivery System)\n"
    b"To: bounces@rvjeugdzorg.nl\n"
    b"Subject: Undelivered Mail Returned to Sender\n"
    b"Message-ID: <hostile.%d@mail.example.org>\n"
    b"MIME-Version: 1.0\n"
)


def many_parts_message(parts: int) -> bytes:
    """A bounce-looking report of `parts` tiny MIME parts side by side (hostile)."""
    part = b"--b\nContent-Type: text/plain\n\nThe mail system\n"
    return (
        _HOSTILE_HEADERS % parts
        + b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        + part * parts
        + b"--b--\n"
    )


def nested_parts_message(depth: int) -> bytes:
    """A bounce-looking report whose parts nest `depth` deep, one in the other (hostile)."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level)
        for level in range(depth)
    )
    closing = b"".join(b"--b%d--\n" % level for level in reversed(range(depth)))
    return (
        _HOSTILE_HEADERS % depth
        + opening
        + b"Content-Type: text/plain\n\nThe mail system\n"
        + closing
    )

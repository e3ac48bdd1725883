"""Classifying one message from the return mailbox (pure: bytes in, a decision out)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from email.header import Header
from pathlib import Path

import pytest

from newsletter.mail.identities import (
    message_id,
    message_id_matches,
    read_message_id,
    verp_address,
)
from newsletter.returns.classify import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    MAX_PARTS,
    ReturnDecision,
    classify_return_message,
)
from subscribers.tokens import link_token
from tests.support.paths import ROOT
from tests.support.returns import (
    CORPUS,
    RETURN_PATH,
    many_parts_message,
    nested_parts_message,
    render,
)
from tests.support.subscribers import SECRET as KEY
from tests.support.waiting import PATIENCE_SECONDS

PUBLIC_IDS = {
    "anouk": "AnoukAnoukAnoukAnouk_A",
    "bram": "BramBramBramBramBram_B",
    "carla": "CarlaCarlaCarlaCarla_C",
    "daan": "DaanDaanDaanDaanDaan_D",
}
EDITION = 7


def classify(name: str, *, edition: int = EDITION, secret: str = KEY) -> ReturnDecision:
    return classify_return_message(render(name, PUBLIC_IDS, edition=edition), secret=secret)


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("rfc3464-dsn.eml", "permanent", "5.1.1"),
        ("postfix.eml", "permanent", "5.1.1"),
        ("exim.eml", "permanent", None),
        ("gmail.eml", "permanent", "5.1.1"),
        ("outlook.eml", "permanent", "5.1.10"),
        ("qmail.eml", "permanent", None),
        ("temporary-dsn.eml", "temporary", "4.2.2"),
        ("expired-dsn.eml", "temporary", "4.4.1"),
        ("dsn-quoting-others.eml", "permanent", "5.2.1"),
    ],
)
def test_bounces_name_the_verp_subscriber_and_edition(
    name: str, kind: str, status: str | None
) -> None:
    decision = classify(name)
    assert (decision.kind, decision.status) == (kind, status)
    assert decision.about is not None
    assert (decision.about.public_id, decision.about.edition) == (PUBLIC_IDS["anouk"], EDITION)
    assert "@" not in decision.reason  # the reason goes into logs: no addresses
    assert decision.reason.startswith(f"{kind} failure")


def test_a_failed_report_with_a_4xx_status_counts_as_temporary() -> None:
    # The server gave up after days of "connection timed out": not the end of the address.
    decision = classify("expired-dsn.eml")
    assert decision.kind == "temporary"
    assert decision.reason == (
        "temporary failure, status 4.4.1: connect to mx.example.org[192.0.2.30]:25: "
        "Connection timed out"
    )


def test_the_returned_original_never_names_anyone() -> None:
    decision = classify("dsn-quoting-others.eml")
    assert decision.about is not None and decision.about.public_id == PUBLIC_IDS["anouk"]
    # Without the VERP address on the report itself, the returned original's signed
    # values count, and they must name one subscriber: Bram's Message-ID with Carla's
    # unsubscribe link names nobody, and Bram's VERP address in it is never read.
    without = classify("dsn-quoting-others-without-verp.eml")
    assert (without.kind, without.about) == ("unknown", None)
    assert without.reason == "a bounce whose returned original names two subscribers"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("postfix-headers-only.eml", "permanent"), ("postfix-delay-headers-only.eml", "temporary")],
)
def test_without_verp_the_returned_headers_name_the_subscriber(name: str, kind: str) -> None:
    decision = classify(name)
    assert decision.kind == kind
    assert decision.about is not None
    assert (decision.about.public_id, decision.about.edition) == (PUBLIC_IDS["anouk"], EDITION)


def test_a_forged_or_damaged_verp_token_proves_nothing() -> None:
    # The VERP address is not ours; what ties the report to Anouk is her copy's signed
    # Message-ID and unsubscribe token in the returned original.
    forged = classify("forged-verp.eml")
    assert forged.about is not None and forged.about.public_id == PUBLIC_IDS["anouk"]
    raw = render("postfix.eml", PUBLIC_IDS, edition=EDITION)
    good = verp_address(
        KEY, return_path=RETURN_PATH, edition=EDITION, public_id=PUBLIC_IDS["anouk"]
    )
    damaged = good.replace(f"+{EDITION}.", f"+{EDITION + 1}.").encode()
    decision = classify_return_message(raw.replace(good.encode(), damaged), secret=KEY)
    assert decision.about is not None and decision.about.public_id == PUBLIC_IDS["anouk"]
    # Under another key nothing is ours: the Message-ID is only a claim, checked against
    # the edition's recipients later (where it will match no one).
    other = classify("postfix.eml", secret="another-secret")
    assert other.about is not None and other.about.public_id is None


def test_with_nothing_signed_the_named_address_asks_for_a_probe_at_most() -> None:
    raw = render("postfix-headers-only.eml", PUBLIC_IDS, edition=EDITION)
    raw = re.sub(rb"(?m)^Message-ID: .*\n", b"", raw)
    raw = re.sub(rb"(?m)^List-Unsubscribe: .*\n(?: .*\n)?", b"", raw)
    decision = classify_return_message(raw, secret=KEY)
    assert decision.kind == "permanent"
    assert decision.about is not None
    assert (decision.about.public_id, decision.about.message_id) == (None, None)
    assert decision.about.addresses == ("anouk@example.org",)


def test_two_different_verp_addresses_name_nobody() -> None:
    raw = render("postfix.eml", PUBLIC_IDS, edition=EDITION)
    bram = verp_address(KEY, return_path=RETURN_PATH, edition=EDITION, public_id=PUBLIC_IDS["bram"])
    raw = raw.replace(b"X-Original-To: ", b"X-Original-To: " + bram.encode() + b"\nX-Old: ", 1)
    decision = classify_return_message(raw, secret=KEY)
    assert decision.reason == "a bounce addressed to two different VERP addresses"


def test_complaints_name_the_reported_messages_subscriber() -> None:
    # List-Unsubscribe and the VERP envelope sender in the report: the public id.
    full = classify("arf-abuse.eml")
    assert full.kind == "complaint"
    assert full.about is not None
    assert (full.about.public_id, full.about.edition) == (PUBLIC_IDS["anouk"], EDITION)
    # Only the headers, no List-Unsubscribe: the Message-ID, checked against the edition
    # later. The Removal-Recipient address in the report is not used.
    headers_only = classify("arf-abuse-headers-only.eml")
    assert headers_only.kind == "complaint"
    assert headers_only.about is not None
    assert headers_only.about.public_id is None
    assert headers_only.about.edition == EDITION
    assert headers_only.about.message_id == message_id(
        KEY, edition=EDITION, public_id=PUBLIC_IDS["anouk"], domain="rvjeugdzorg.nl"
    )


def test_a_feedback_report_that_is_not_abuse_is_kept() -> None:
    raw = render("arf-abuse.eml", PUBLIC_IDS, edition=EDITION)
    decision = classify_return_message(
        raw.replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam"), secret=KEY
    )
    assert (decision.kind, decision.reason) == (
        "unknown",
        "a feedback report of type not-spam, not abuse",
    )


def test_a_complaint_with_signed_values_of_two_people_names_nobody() -> None:
    raw = render("arf-abuse.eml", PUBLIC_IDS, edition=EDITION)
    anouk = verp_address(
        KEY, return_path=RETURN_PATH, edition=EDITION, public_id=PUBLIC_IDS["anouk"]
    )
    bram = verp_address(KEY, return_path=RETURN_PATH, edition=EDITION, public_id=PUBLIC_IDS["bram"])
    raw = raw.replace(
        f"Original-Mail-From: <{anouk}>".encode(), f"Original-Mail-From: <{bram}>".encode()
    )
    decision = classify_return_message(raw, secret=KEY)
    assert decision.reason == "a spam complaint whose signed values name two subscribers"


def test_a_complaint_about_someone_elses_message_is_kept() -> None:
    raw = render("arf-abuse-headers-only.eml", PUBLIC_IDS, edition=EDITION)
    ours = message_id(KEY, edition=EDITION, public_id=PUBLIC_IDS["anouk"], domain="rvjeugdzorg.nl")
    decision = classify_return_message(
        raw.replace(ours.encode(), b"<abc@elsewhere.example>"), secret=KEY
    )
    assert decision.reason == "a spam complaint about a message we cannot tie to a subscriber"


def test_a_mail_to_the_unsubscribe_address_needs_a_valid_token() -> None:
    decision = classify("mailto-unsubscribe.eml")
    assert decision.kind == "unsubscribe"
    assert decision.about is not None and decision.about.public_id == PUBLIC_IDS["anouk"]
    forged = classify("mailto-unsubscribe-forged.eml")
    assert (forged.kind, forged.reason) == (
        "unknown",
        "an unsubscribe request without a valid token",
    )
    # A plain "unsubscribe" with no token at all.
    raw = render("mailto-unsubscribe.eml", PUBLIC_IDS, edition=EDITION)
    bare = raw.split(b"\nSubject: ")[0] + b"\nSubject: Unsubscribe\n\nplease\n"
    assert classify_return_message(bare, secret=KEY).reason == (
        "an unsubscribe request without a valid token"
    )


def test_the_unsubscribe_token_may_come_in_the_address() -> None:
    token = link_token(KEY, "unsubscribe", PUBLIC_IDS["bram"])
    raw = (
        f"From: bram@example.net\nTo: bounces+{token}@rvjeugdzorg.nl\n"
        "Subject: afmelden\nMessage-ID: <x@example.net>\n\nMeld me af.\n"
    ).encode()
    decision = classify_return_message(raw, secret=KEY)
    assert decision.kind == "unsubscribe"
    assert decision.about is not None and decision.about.public_id == PUBLIC_IDS["bram"]


def test_an_encoded_subject_is_read_too() -> None:
    token = link_token(KEY, "unsubscribe", PUBLIC_IDS["carla"])
    raw = (
        "From: carla@example.com\nTo: bounces@rvjeugdzorg.nl\n"
        f"Subject: {Header(f'unsubscribe {token}', 'utf-8').encode()}\n\n"
    ).encode()
    decision = classify_return_message(raw, secret=KEY)
    assert decision.about is not None and decision.about.public_id == PUBLIC_IDS["carla"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("garbage.eml", "not a mail message (no headers)"),
        ("human-reply.eml", "not a bounce, complaint or unsubscribe request"),
        ("auto-reply.eml", "not a bounce, complaint or unsubscribe request"),
    ],
)
def test_anything_else_is_not_understood(name: str, reason: str) -> None:
    decision = classify(name)
    assert (decision.kind, decision.reason, decision.about) == ("unknown", reason, None)


def test_broken_mail_that_trips_the_detectors_is_not_understood() -> None:
    # flufl.bounce's Yale detector raises on a message with headers but no From.
    raw = b"Subject: hello\nX-Thing: 1\n\nbody\n"
    decision = classify_return_message(raw, secret=KEY)
    assert decision.kind == "unknown"


def test_a_huge_message_is_not_parsed() -> None:
    decision = classify_return_message(b"x" * (MAX_MESSAGE_BYTES + 1), secret=KEY)
    assert (decision.kind, decision.reason) == ("unknown", "too large to be a bounce")


# Classifies each file named on the command line in a process that may not grow beyond
# 1 GiB of address space: a message that needs more fails the test instead of the machine.
_BOUNDED_CLASSIFY = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from newsletter.returns.classify import classify_return_message
for path in sys.argv[2:]:
    with open(path, "rb") as file:
        decision = classify_return_message(file.read(), secret=sys.argv[1])
    print(json.dumps([decision.kind, decision.reason]))
"""


def classify_bounded(tmp_path: Path, *messages: bytes) -> list[list[str]]:
    paths = []
    for number, raw in enumerate(messages):
        path = tmp_path / f"{number}.eml"
        path.write_bytes(raw)
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED_CLASSIFY, KEY, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_many_parts_and_deep_nesting_are_set_aside_at_little_cost(tmp_path: Path) -> None:
    # 70,000 parts in 9.5 MB took the bounce reader 48 s of CPU; 40,000 fit in 2 MB.
    many = many_parts_message(40_000)
    assert len(many) < MAX_MESSAGE_BYTES
    decisions = classify_bounded(
        tmp_path,
        many,
        nested_parts_message(MAX_DEPTH + 1),
        nested_parts_message(5_000),
        many_parts_message(MAX_PARTS - 1),
        nested_parts_message(MAX_DEPTH - 1),
    )
    assert decisions == [
        ["unknown", f"more than {MAX_PARTS} MIME parts: too many to be a bounce"],
        ["unknown", f"MIME parts nested more than {MAX_DEPTH} deep: too deep to be a bounce"],
        ["unknown", f"more than {MAX_PARTS} MIME parts: too many to be a bounce"],
        # Within the bounds they are read as any other message (and are no bounce).
        ["unknown", "not a bounce, complaint or unsubscribe request"],
        ["unknown", "not a bounce, complaint or unsubscribe request"],
    ]


def test_the_message_key_follows_message_id_and_date_not_delivery_headers() -> None:
    raw = render("postfix.eml", PUBLIC_IDS, edition=EDITION)
    again = b"Delivered-To: someone-else@rvjeugdzorg.nl\n" + raw
    first = classify_return_message(raw, secret=KEY)
    assert first.message_key == classify_return_message(again, secret=KEY).message_key
    other = raw.replace(b"Message-Id: <20261117", b"Message-Id: <20261118")
    assert classify_return_message(other, secret=KEY).message_key != first.message_key
    assert len(first.message_key) == 64


def test_every_corpus_file_is_classified_without_error() -> None:
    for path in CORPUS.glob("*.eml"):
        assert classify(path.name).message_key


# -- mail/identities.py: Message-IDs read back ----------------------------------------


def test_message_ids_are_read_back_and_checked() -> None:
    value = message_id(KEY, edition=12, public_id=PUBLIC_IDS["anouk"], domain="rvjeugdzorg.nl")
    claim = read_message_id(value)
    assert claim is not None and (claim.edition, claim.value) == (12, value)
    assert message_id_matches(KEY, value, edition=12, public_id=PUBLIC_IDS["anouk"])
    assert not message_id_matches(KEY, value, edition=12, public_id=PUBLIC_IDS["bram"])
    assert not message_id_matches(KEY, value, edition=13, public_id=PUBLIC_IDS["anouk"])
    assert not message_id_matches("other", value, edition=12, public_id=PUBLIC_IDS["anouk"])
    assert read_message_id("<test.12.1763366652.0@rvjeugdzorg.nl>") is None
    assert read_message_id("<12.abc@rvjeugdzorg.nl>") is None
    assert read_message_id(f"  {value}  ") == claim

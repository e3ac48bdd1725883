"""Reading one message from the return mailbox: what it says, and whom it is about.

Pure: bytes in, a `ReturnDecision` out. Nothing here opens a mailbox or the database.

    feedback report (RFC 5965), Feedback-Type: abuse        -> complaint
    subject or address carrying an unsubscribe token        -> unsubscribe
    delivery report that flufl.bounce reads as a failure    -> permanent | temporary
    anything else, or one of these tied to nobody           -> unknown (kept for a person)

Whom a message is about comes only from values we signed: the VERP address a bounce was
delivered to (read from the bounce's own headers); without one, the Message-ID (an HMAC
of edition and subscriber) or the unsubscribe token in the original the bounce returns,
which must all name one subscriber; the unsubscribe token of a mail to the
List-Unsubscribe address; and for a complaint the reported message's List-Unsubscribe
link, Message-ID or VERP envelope sender. An e-mail address written in a message is
never used to find anyone: a returned original can name anybody, and anybody can send us
a bounce.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.feedparser import BytesFeedParser
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import Policy, compat32
from email.utils import collapse_rfc2231_value, getaddresses
from typing import Literal

from flufl.bounce import all_failures

from newsletter.core.text import one_line
from newsletter.mail.identities import message_id_matches, read_message_id, read_verp_address
from subscribers.tokens import parse_link_token

# flufl.bounce logs a detector's exception, traceback and all, before raising it; we
# catch it below (the message is then not understood), so keep it off stderr.
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())

DecisionKind = Literal["permanent", "temporary", "complaint", "unsubscribe", "unknown"]

# Bounces are small and plain: a report, its delivery status, and perhaps the original
# mail (a few parts, a few hundred kilobytes). Messages far beyond that are not bounces,
# and reading them whole costs seconds of CPU per megabyte and per thousand parts: they
# are set aside unread, for a person. (The real bounces in tests/data have at most 16
# parts nested 7 deep, and 23 KB.)
MAX_MESSAGE_BYTES = 2_000_000
MAX_PARTS = 200
MAX_DEPTH = 16
REASON_MAX_CHARS = 300
# Where a delivery agent writes the address a message was delivered to: the VERP
# address, for a bounce. `To` is the envelope sender too in every bounce format we know.
ENVELOPE_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# The parts in which a report returns the original message; never read for addresses.
RETURNED_ORIGINAL_TYPES = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
)

_LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}")
_UNSUBSCRIBE_SUBJECT = re.compile(r"\s*unsubscribe\b", re.IGNORECASE)
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_ADDRESS = re.compile(r"<?[^\s<>@\"']+@[^\s<>@\"']+>?")
_FEEDBACK_TYPE = re.compile(r"[a-z][a-z0-9-]{0,29}")


@dataclass(frozen=True)
class SubscriberReference:
    """Whom a message is about, as far as the message itself proves it.

    `public_id` comes from a token we signed. `message_id` is one of our Message-IDs,
    whose mac can only be checked against the recipients of its edition (in the database).
    `addresses` prove nothing (see returns/probes.py).
    """

    public_id: str | None = None
    edition: int | None = None
    message_id: str | None = None
    # Addresses the report names as failed, when nothing we signed ties it to anyone: no
    # proof of anything, only reason enough to send their subscriber a probe.
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReturnDecision:
    """What one message from the return mailbox asks for."""

    kind: DecisionKind
    reason: str  # one line without addresses: for the report and the consent log
    about: SubscriberReference | None = None
    status: str | None = None  # a delivery report's status code, e.g. "5.1.1"
    # The message itself, so that acting on it twice can be refused (a sha256, hex).
    message_key: str = ""


def classify_return_message(raw: bytes, *, secret: str) -> ReturnDecision:
    """Decide what the message `raw` (as delivered, headers first) asks us to do."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return _unknown("too large to be a bounce", hashlib.sha256(raw).hexdigest())
    message = _parse_bounded(raw)
    if isinstance(message, str):
        return _unknown(message, hashlib.sha256(b"bytes:" + raw).hexdigest())
    key = message_key(message, raw)
    if not message.keys():
        return _unknown("not a mail message (no headers)", key)
    decision = (
        _complaint(message, secret)
        or _unsubscribe_request(message, secret)
        or _bounce(message, secret)
        or ReturnDecision("unknown", "not a bounce, complaint or unsubscribe request")
    )
    return replace(decision, message_key=key)


def message_key(message: Message, raw: bytes) -> str:
    """What identifies a message across mailboxes and fetches: its Message-ID and Date
    (set by whoever wrote it), or its bytes when it has no Message-ID."""
    message_id = one_line(str(message.get("Message-ID", "")))
    if not message_id:
        return hashlib.sha256(b"bytes:" + raw).hexdigest()
    date = one_line(str(message.get("Date", "")))
    return hashlib.sha256(f"message-id:{message_id}\ndate:{date}".encode()).hexdigest()


def _unknown(reason: str, key: str = "") -> ReturnDecision:
    return ReturnDecision("unknown", reason, message_key=key)


class _TooManyParts(Exception):
    pass


def _parse_bounded(raw: bytes) -> Message | str:
    """`raw` parsed, unless it has more than MAX_PARTS parts (the parser stops at the
    first one too many) or nests them deeper than MAX_DEPTH; a string says which."""
    made = 0

    def counted(policy: Policy = compat32) -> Message:
        nonlocal made
        made += 1
        if made > MAX_PARTS:
            raise _TooManyParts
        return Message(policy=policy)

    parser = BytesFeedParser(_factory=counted)
    made = 0  # the parser tried the factory once when it was made
    try:
        parser.feed(raw)
        message = parser.close()
    except _TooManyParts:
        return f"more than {MAX_PARTS} MIME parts: too many to be a bounce"
    if not isinstance(message, Message):  # pragma: no cover  (the factory makes Messages)
        raise TypeError(type(message))
    if _depth(message) > MAX_DEPTH:
        return f"MIME parts nested more than {MAX_DEPTH} deep: too deep to be a bounce"
    return message


def _depth(message: Message) -> int:
    """How deep parts nest in `message` (1: no parts), without recursion."""
    deepest = 0
    stack = [(message, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(inner, depth + 1) for inner in _parts(part)]
    return deepest


# -- spam complaints ------------------------------------------------------------------


def _is_report(message: Message, report_type: str) -> bool:
    if message.get_content_type() != "multipart/report":
        return False
    value = message.get_param("report-type")
    if value is None:
        return False
    return collapse_rfc2231_value(value).strip().lower() == report_type


def _parts(message: Message) -> list[Message]:
    payload = message.get_payload()
    return [part for part in payload if isinstance(part, Message)] if message.is_multipart() else []


def _embedded(part: Message) -> Message:
    """The header block(s) a message/* or text/rfc822-headers part carries, as a Message."""
    inner = _parts(part)
    if inner:
        return inner[0]
    text = part.get_payload(decode=True)
    if isinstance(text, bytes):
        # Only the headers are read (a returned original can carry a body of any shape).
        return BytesHeaderParser().parsebytes(text)
    return Message()


def _complaint(message: Message, secret: str) -> ReturnDecision | None:
    if not _is_report(message, "feedback-report"):
        return None
    fields: Message | None = None
    reported: Message | None = None
    for part in _parts(message):
        kind = part.get_content_type()
        if kind == "message/feedback-report" and fields is None:
            fields = _embedded(part)
        elif kind in RETURNED_ORIGINAL_TYPES and reported is None:
            reported = _embedded(part)
    if fields is None:
        return ReturnDecision("unknown", "a feedback report without its report part")
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback_type != "abuse":
        shown = feedback_type if _FEEDBACK_TYPE.fullmatch(feedback_type) else "unreadable"
        return ReturnDecision("unknown", f"a feedback report of type {shown}, not abuse")
    about = _reported_subscriber(fields, reported, secret)
    if isinstance(about, str):
        return ReturnDecision("unknown", about)
    return ReturnDecision("complaint", "spam complaint (feedback report, abuse)", about)


def _reported_subscriber(
    fields: Message, reported: Message | None, secret: str
) -> SubscriberReference | str:
    """Whom a complaint is about: the reported message's List-Unsubscribe token or VERP
    envelope sender, or failing both its Message-ID (checked later, against its edition
    in the database). A string says why nobody can be named."""
    public_ids: set[str] = set()
    editions: set[int] = set()
    senders = [str(value) for value in fields.get_all("Original-Mail-From", [])]
    claim = None
    if reported is not None:
        public_ids |= _unsubscribe_token_owners(reported, secret)
        senders += [str(value) for value in reported.get_all("Return-Path", [])]
        claim = read_message_id(one_line(str(reported.get("Message-ID", ""))))
    for _name, address in getaddresses(senders):
        identity = read_verp_address(secret, address)
        if identity is not None:
            public_ids.add(identity.public_id)
            editions.add(identity.edition)
    if len(public_ids) > 1:
        return "a spam complaint whose signed values name two subscribers"
    if public_ids:
        [public_id] = public_ids
        if claim is not None and message_id_matches(
            secret, claim.value, edition=claim.edition, public_id=public_id
        ):
            editions.add(claim.edition)
        edition = next(iter(editions)) if len(editions) == 1 else None
        return SubscriberReference(public_id=public_id, edition=edition)
    if claim is not None:
        return SubscriberReference(edition=claim.edition, message_id=claim.value)
    return "a spam complaint about a message we cannot tie to a subscriber"


# -- mail to the List-Unsubscribe address ---------------------------------------------


def _unsubscribe_request(message: Message, secret: str) -> ReturnDecision | None:
    if message.get_content_type() == "multipart/report":
        return None
    subject = _decoded_subject(message)
    tokens: list[str] = []
    asks = _UNSUBSCRIBE_SUBJECT.match(subject) is not None
    if asks:
        tokens += _LINK_TOKEN.findall(subject)
    for address in _envelope_recipients(message):
        detail = address.rpartition("@")[0].partition("+")[2]
        if _LINK_TOKEN.fullmatch(detail):
            asks = True
            tokens.append(detail)
    if not asks:
        return None
    public_ids = {parse_link_token(secret, "unsubscribe", token) for token in tokens} - {None}
    if len(public_ids) != 1:
        reason = "without a valid token" if not public_ids else "with tokens of two subscribers"
        return ReturnDecision("unknown", f"an unsubscribe request {reason}")
    [public_id] = public_ids
    return ReturnDecision(
        "unsubscribe",
        "unsubscribe request by mail to the List-Unsubscribe address",
        SubscriberReference(public_id=public_id),
    )


def _decoded_subject(message: Message) -> str:
    raw = str(message.get("Subject", ""))
    try:
        return one_line(str(make_header(decode_header(raw))))
    except (LookupError, UnicodeError, ValueError):
        return one_line(raw)


# -- delivery reports -----------------------------------------------------------------


def _bounce(message: Message, secret: str) -> ReturnDecision | None:
    try:
        temporary, permanent = all_failures(_without_returned_original(message))
    except Exception:  # flufl.bounce's heuristics trip over broken mail; not our bug
        return ReturnDecision("unknown", "a message the bounce detectors could not read")
    if not temporary and not permanent:
        return None
    status, diagnostic = _report_status(message)
    kind: DecisionKind = "permanent" if permanent else "temporary"
    if kind == "permanent" and status is not None and status.startswith("4."):
        # The server gave up, but on a passing cause (a full mailbox, a host down for
        # days): counted like any temporary failure, not taken as the end of the address.
        kind = "temporary"
    identities = set()
    for address in _envelope_recipients(message):
        if "+" not in address.partition("@")[0]:
            continue
        identity = read_verp_address(secret, address)
        if identity is not None:
            identities.add(identity)
    about: SubscriberReference | str
    if len(identities) > 1:
        about = "a bounce addressed to two different VERP addresses"
    elif identities:
        [identity] = identities
        about = SubscriberReference(public_id=identity.public_id, edition=identity.edition)
    else:
        # No VERP address, or one we did not sign (forged, or damaged on the way): what
        # we signed in the returned original, or else the addresses alone.
        about = _signed_in_original(message, secret)
        if about == _TIED_TO_NOBODY and (permanent or temporary):
            named = sorted(_as_text(address) for address in (permanent or temporary))
            about = SubscriberReference(addresses=tuple(named))
    if isinstance(about, str):
        return ReturnDecision("unknown", about, status=status)
    return ReturnDecision(kind, _bounce_reason(kind, status, diagnostic), about, status=status)


_TIED_TO_NOBODY = "a bounce tied to nobody: no VERP address, and nothing we signed in it"


def _as_text(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address


def _signed_in_original(message: Message, secret: str) -> SubscriberReference | str:
    """Whom a report without a VERP address is about, from what we signed in the
    original it returns: the unsubscribe token of List-Unsubscribe, and our Message-ID
    (an HMAC of edition and subscriber, checked against the edition later). Only these:
    never an address, which anybody can write there."""
    original = next(
        (
            _embedded(part)
            for part in _parts(message)
            if part.get_content_type() in RETURNED_ORIGINAL_TYPES
        ),
        None,
    )
    if original is None:
        return _TIED_TO_NOBODY
    public_ids = _unsubscribe_token_owners(original, secret)
    claim = read_message_id(one_line(str(original.get("Message-ID", ""))))
    if len(public_ids) > 1:
        return "a bounce whose returned original names two subscribers"
    if public_ids:
        [public_id] = public_ids
        if claim is None:
            return SubscriberReference(public_id=public_id)
        if not message_id_matches(secret, claim.value, edition=claim.edition, public_id=public_id):
            return "a bounce whose returned original names two subscribers"
        return SubscriberReference(public_id=public_id, edition=claim.edition)
    if claim is not None:
        return SubscriberReference(edition=claim.edition, message_id=claim.value)
    return _TIED_TO_NOBODY


def _unsubscribe_token_owners(headers: Message, secret: str) -> set[str]:
    """The subscribers whose valid unsubscribe tokens stand in List-Unsubscribe."""
    owners: set[str] = set()
    for value in headers.get_all("List-Unsubscribe", []):
        for token in _LINK_TOKEN.findall(str(value)):
            public_id = parse_link_token(secret, "unsubscribe", token)
            if public_id is not None:
                owners.add(public_id)
    return owners


def _without_returned_original(message: Message) -> Message:
    """A copy without the parts that return the original message, so that the detectors
    judge the report alone (an original can quote anything, a bounce included)."""
    pruned = copy.deepcopy(message)

    def prune(part: Message) -> None:
        if part.get_content_maintype() != "multipart":
            return
        kept = [
            sub for sub in _parts(part) if sub.get_content_type() not in RETURNED_ORIGINAL_TYPES
        ]
        part.set_payload(kept)  # type: ignore[arg-type]  # a multipart's payload is a list
        for sub in kept:
            prune(sub)

    prune(pruned)
    return pruned


def _delivery_status_parts(message: Message) -> Iterator[Message]:
    """The report's message/delivery-status parts, never those inside a returned original."""
    if message.get_content_type() == "message/delivery-status":
        yield message
    elif message.get_content_maintype() == "multipart":
        for part in _parts(message):
            yield from _delivery_status_parts(part)


def _report_status(message: Message) -> tuple[str | None, str | None]:
    """Status and Diagnostic-Code of the report's first failed (else delayed) recipient."""
    blocks = [block for part in _delivery_status_parts(message) for block in _parts(part)[1:]]
    for wanted in ("fail", "delayed"):
        for block in blocks:
            if not str(block.get("Action", "")).strip().lower().startswith(wanted):
                continue
            match = _STATUS.match(str(block.get("Status", "")).strip())
            diagnostic = one_line(str(block.get("Diagnostic-Code", ""))).partition(";")[2]
            return (match[0] if match else None), (diagnostic.strip() or None)
    return None, None


def _bounce_reason(kind: str, status: str | None, diagnostic: str | None) -> str:
    reason = f"{kind} failure"
    if status:
        reason += f", status {status}"
    if diagnostic:
        reason += f": {diagnostic}"
    return _without_addresses(reason)


# -- helpers --------------------------------------------------------------------------


def _envelope_recipients(message: Message) -> list[str]:
    """Addresses the message itself was delivered to (its own headers only)."""
    values: list[str] = []
    for name in ENVELOPE_RECIPIENT_HEADERS:
        values += [str(value) for value in message.get_all(name, [])]
    return [address for _name, address in getaddresses(values) if address]


def _without_addresses(text: str) -> str:
    """`text` on one line, every e-mail address in it replaced: the log keeps why, not who."""
    return _ADDRESS.sub("(address)", one_line(text))[:REASON_MAX_CHARS]

"""Confirmed subscribers for the delivery tests, added as staff would add them."""

from __future__ import annotations

from newsletter.core.config import Settings
from newsletter.core.db import Database
from subscribers.consent import Requester
from subscribers.management import ListManagement
from tests.support.clock import FixedClock

STAFF = Requester(source="cli")


def add_subscribers(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    count: int,
    themes: tuple[str, ...] = (),
    *,
    first: int = 0,
) -> list[str]:
    people = ListManagement(settings, db, clock=clock)
    addresses = [f"lezer{i}@example.org" for i in range(first, first + count)]
    for address in addresses:
        people.add(
            address,
            name=None,
            themes=list(themes),
            requester=STAFF,
            confirmed=True,
            consent_note="signed up on paper at the action day",
        )
    return addresses

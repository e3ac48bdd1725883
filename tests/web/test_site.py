"""The routes that are no page: the health check (the static files: test_security.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from newsletter.core.config import Settings
from newsletter.core.db import Database, create_db_engine
from newsletter.mail.mailer import OutgoingMail
from newsletter.web.app import create_app
from tests.support.clock import FixedClock
from tests.support.webharness import WebHarness


def test_health_says_ok_and_nothing_more(web: WebHarness) -> None:
    response = web.client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_says_unavailable_when_the_database_does_not_answer(
    make_settings: Callable[..., Settings], clock: FixedClock, tmp_path: Path
) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'missing' / 'newsletter.db'}")
    database = Database(engine, sessionmaker(engine))

    def send(mail: OutgoingMail) -> None:
        raise AssertionError("a health check sends nothing")

    app = create_app(make_settings(), database, clock=clock, send=send)
    try:
        with TestClient(app) as client:
            response = client.get("/healthz")
    finally:
        database.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert str(tmp_path) not in response.text

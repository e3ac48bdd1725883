"""A browser logged in to the staff pages, on the app of the test module's `web` fixture."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.webharness import WebHarness, log_in


@pytest.fixture
def staff(web: WebHarness) -> TestClient:
    client = web.client()
    assert log_in(client).status_code == 303
    return client

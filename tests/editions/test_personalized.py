"""A composed mail cut at its per-reader slots, filled per reader."""

from __future__ import annotations

import pytest

from newsletter.editions.personalized import Personalizable


def test_fill_is_a_join() -> None:
    document = Personalizable(parts=("a", "b", "c"), slots=("name", "email"))
    assert document.fill({"name": "<N>", "email": "E"}) == "a<N>bEc"
    with pytest.raises(ValueError, match="one more part"):
        Personalizable(parts=("a",), slots=("name",))
    with pytest.raises(KeyError):
        document.fill({"name": "x"})

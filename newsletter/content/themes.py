"""Which of the site's themes an article belongs to, from its feed categories."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from newsletter.core.config import ThemeSettings


def _comparable(category: str) -> str:
    """Fold case, Unicode forms and runs of whitespace so feed spellings still match."""
    return " ".join(unicodedata.normalize("NFKC", category).split()).casefold()


def article_themes(
    categories: Iterable[str], themes: Mapping[str, ThemeSettings]
) -> tuple[str, ...]:
    """The slugs of the themes (in configured order) that any of `categories` belongs to.

    Categories that match no theme are the site's tags ("Trefwoorden") and are ignored.
    """
    wanted = {_comparable(category) for category in categories}
    wanted.discard("")
    return tuple(
        slug
        for slug, theme in themes.items()
        if any(_comparable(category) in wanted for category in theme.categories)
    )


def theme_names(slugs: Iterable[str], themes: Mapping[str, ThemeSettings]) -> tuple[str, ...]:
    """The display names of `slugs`; slugs no longer configured are left out."""
    return tuple(themes[slug].name for slug in slugs if slug in themes)

"""Articles are matched to the site's themes by their feed categories."""

from __future__ import annotations

from newsletter.content.themes import article_themes, theme_names
from newsletter.core.config import ThemeSettings, default_themes

THEMES = default_themes()


def test_a_category_names_its_theme() -> None:
    assert article_themes(["Kampvuurgesprekken"], THEMES) == ("kampvuurgesprekken",)


def test_a_combined_category_belongs_to_both_themes_in_config_order() -> None:
    categories = ["Opstarten beweging & Kampvuurgesprekken", "Doe je mee?"]
    assert article_themes(categories, THEMES) == (
        "opstarten-beweging",
        "kampvuurgesprekken",
        "doe-je-mee",
    )


def test_order_follows_the_config_not_the_feed() -> None:
    assert article_themes(["Doe je mee?", "Opstarten beweging"], THEMES) == (
        "opstarten-beweging",
        "doe-je-mee",
    )


def test_matching_ignores_case_and_whitespace() -> None:
    categories = ["  MENSEN   en\tinitiatieven ", "doe je\u00a0mee?"]
    assert article_themes(categories, THEMES) == ("mensen-en-initiatieven", "doe-je-mee")


def test_matching_uses_unicode_case_folding_and_forms() -> None:
    themes = {"clientenraad": ThemeSettings(name="Cliëntenraad", categories=["Cliëntenraad"])}
    decomposed = "CLIE\u0308NTENRAAD"  # "E" followed by a combining diaeresis
    assert article_themes([decomposed], themes) == ("clientenraad",)
    assert article_themes(["STRASSE"], {"s": ThemeSettings(name="S", categories=["Straße"])}) == (
        "s",
    )


def test_tags_are_ignored() -> None:
    tags = ["cliëntenraad/jongerenraad", "jeugdbescherming", "ouders", ""]
    assert article_themes(tags, THEMES) == ()


def test_a_theme_is_listed_once_even_when_several_categories_match() -> None:
    categories = ["Kampvuurgesprekken", "Opstarten beweging & Kampvuurgesprekken"]
    assert article_themes(categories, THEMES) == ("opstarten-beweging", "kampvuurgesprekken")


def test_no_categories_no_themes() -> None:
    assert article_themes([], THEMES) == ()
    assert article_themes(["Doe je mee?"], {}) == ()


def test_theme_names_follow_the_given_slugs() -> None:
    assert theme_names(("doe-je-mee", "kampvuurgesprekken"), THEMES) == (
        "Doe je mee?",
        "Kampvuurgesprekken",
    )


def test_theme_names_skip_slugs_no_longer_configured() -> None:
    assert theme_names(("verdwenen", "doe-je-mee"), THEMES) == ("Doe je mee?",)

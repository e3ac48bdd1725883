"""Hand-written items: the links they may carry, and how the mail shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.core.templating import template_environment
from newsletter.editions.compose import ItemView, compose_edition, sample_recipient
from newsletter.editions.items import ItemError, check_link
from newsletter.editions.preview import render_preview
from tests.support.sample_edition import mail_settings, seed_edition

ITEM = ItemView(
    title="Actiedag 15 maart in Utrecht",
    link="https://www.rvjeugdzorg.nl/actiedag?dag=15&maand=3",
    text="Kom ook! Samen praten we over jeugdzorg die werkt <en> hoe.",
)


def test_only_absolute_http_links_are_taken() -> None:
    assert check_link(" https://rvjeugdzorg.nl/a b ") == "https://rvjeugdzorg.nl/ab"
    assert check_link("http://rvjeugdzorg.nl") == "http://rvjeugdzorg.nl"
    for link in ("javascript:alert(1)", "data:text/html,x", "//rvjeugdzorg.nl", "https://[x"):
        with pytest.raises(ItemError) as refused:
            check_link(link)
        assert refused.value.reason == "link"


def test_an_item_is_a_card_in_the_html_and_the_text_for_every_reader(tmp_path: Path) -> None:
    settings = mail_settings(tmp_path)
    environment = template_environment(settings)
    content = seed_edition(items=(ITEM,))
    html_document, text_document = render_preview(content, settings, environment=environment)
    assert "Actiedag 15 maart in Utrecht</a></h2>" in html_document
    assert 'href="https://www.rvjeugdzorg.nl/actiedag?dag=15&amp;maand=3"' in html_document
    assert "werkt &lt;en&gt; hoe." in html_document  # plain text, escaped
    assert "Actiedag 15 maart in Utrecht" in text_document
    assert "Lees verder: https://www.rvjeugdzorg.nl/actiedag?dag=15&maand=3" in text_document
    # A reader of one theme gets it too, after that theme's articles.
    themed = compose_edition(
        content, settings, environment=environment, themes=frozenset({"kampvuurgesprekken"})
    )
    assert themed is not None
    assert "Actiedag 15 maart" in themed.text_for(sample_recipient(settings))

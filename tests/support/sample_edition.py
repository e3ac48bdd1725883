"""The sample edition the composition tests use, and plain settings to compose it with."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsletter.core.config import Settings, settings_from_mapping
from newsletter.editions.compose import ArticleView, EditionContent

BASE_URL = "https://nieuwsbrief.rvjeugdzorg.nl"
NEWS = "https://www.rvjeugdzorg.nl/nieuws"


def seed_articles() -> tuple[ArticleView, ...]:
    """The five articles of the network's website (tests/../shared seeds), newest first."""
    return (
        ArticleView(
            title="Wat als… ouders gewoon om hulp kunnen vragen?",
            link=f"{NEWS}/wat-als-ouders-gewoon-om-hulp-kunnen-vragen/",
            published_at=datetime(2023, 11, 2, 9, 0, tzinfo=UTC),
            categories=("Kampvuurgesprekken", "ouders", "jeugdbescherming"),
            # No summary: the excerpt comes from the content and is cut with "…".
            summary_html="",
            content_html=(
                "<p>Nog steeds zijn er geen crisisoplossingen en structurele oplossingen in de "
                "jeugdbescherming en jeugdzorg. Daarom schreven we al eerder over de actiedagen "
                "die vanuit de beweging Radicale vernieuwing jeugd georganiseerd zijn: mensen in "
                "de beweging Radicale vernieuwing jeugdzorg bundelen krachten en gaan zelf werken "
                "aan alternatieven. Hoe staat het er nu voor?</p>"
                "<p>Tijdens onze ‘Wat als… actiedagen’ komt naar voren dat er heel veel anders "
                "kan in de jeugdzorg. (Groot)ouders, cliëntenraadsleden en ervaringsdeskundigen "
                "geven vooral aan: in de jeugdzorg en jeugdbescherming is nu geen aandacht voor "
                "de oorzaken. Wat kunnen wij met elkaar doen om een omslag te creëren?</p>"
            ),
            image_url=None,
            image_alt=None,
        ),
        ArticleView(
            title="Eerste gesprekken met jeugdzorgorganisaties over radicale vernieuwing",
            link=f"{NEWS}/eerste-gesprekken-met-jeugdzorgorganisaties/",
            published_at=datetime(2023, 10, 12, 8, 0, tzinfo=UTC),
            categories=(
                "Opstarten beweging",
                "bestuurders",
                "cliëntenraad/jongerenraad",
                "loc waardevolle zorg",
                "manifest",
                "netwerk",
                "politiek en beleid",
            ),
            summary_html=(
                "<p>In een eerder artikel schrijven we uitgebreid over de ontwikkeling van "
                "Radicale vernieuwing jeugdzorg van 2021 tot en met 2023. Intussen zijn eerste "
                "gesprekken gevoerd met jeugdzorgorganisaties die mogelijk radicaal willen "
                "vernieuwen.</p>"
            ),
            content_html="<p>In 2022 en 2023 organiseren we actiedagen.</p>",
            image_url=None,
            image_alt=None,
        ),
        ArticleView(
            title="Nieuw onderzoek jeugdbescherming vraagt om actie, doe mee!",
            link=f"{NEWS}/nieuw-onderzoek-jeugdbescherming-vraagt-om-actie/",
            published_at=datetime(2022, 9, 12, 10, 0, tzinfo=UTC),
            categories=(
                "Opstarten beweging & Kampvuurgesprekken",
                "Mensen en initiatieven",
                "Doe je mee?",
                "cliëntenraad/jongerenraad",
                "gesloten jeugdzorg",
            ),
            summary_html=(
                "<p><strong>Update:</strong> op basis van eerste gesprekken met cliëntenraden "
                "uit gesloten instellingen en anderen uit ons vernieuwingsnetwerk, is er vanuit "
                "LOC Waardevolle zorg vast een brief naar de Tweede Kamer gestuurd voor het "
                "spoeddebat. Lid van een cliëntenraad? Meld je aan voor de netwerkbijeenkomst "
                "van LOC Cliëntenraden.</p>"
            ),
            content_html="<p>Woensdag verscheen een onderzoeksrapport.</p>",
            image_url=None,
            image_alt=None,
        ),
        ArticleView(
            title="Eerste opbrengsten verkenning Radicale vernieuwing jeugdzorg",
            link=f"{NEWS}/eerste-opbrengsten-verkenning/",
            # 23:30 UTC on the 12th is already 13 May in Amsterdam.
            published_at=datetime(2021, 5, 12, 23, 30, tzinfo=UTC),
            categories=("Opstarten beweging",),
            summary_html=(
                "<p>Veel mensen zijn actief om de jeugdzorg te verbeteren. Maar tegelijkertijd "
                "worden problemen niet fundamenteel opgelost. Om te zorgen dat de stem van "
                "kinderen, jongeren, ouders en medewerkers steeds voorop komt te staan, start "
                "LOC Waardevolle zorg een vernieuwingsbeweging. Een netwerk van enthousiaste "
                "mensen en organisaties, die elkaar inspireren en versterken.</p>"
            ),
            content_html="",
            image_url=None,
            image_alt=None,
        ),
        ArticleView(
            title="LOC start beweging ‘Radicale vernieuwing jeugdzorg’",
            link=f"{NEWS}/loc-start-beweging-radicale-vernieuwing-jeugdzorg/",
            published_at=datetime(2021, 3, 18, 9, 0, tzinfo=UTC),
            categories=("Opstarten beweging", "Doe je mee?"),
            summary_html=(
                "<p>Jeugdzorg sluit nog te vaak niet goed aan op wat ertoe doet voor kinderen, "
                "jongeren en ouders. Mensen komen daardoor in moeilijkheden. Daartoe start LOC "
                "de beweging ‘Radicale vernieuwing jeugdzorg’.</p>"
            ),
            content_html="",
            image_url=None,
            image_alt=None,
        ),
    )


INTRO = """\
Welkom bij een nieuwe nieuwsbrief! Deze keer lees je hoe de eerste gesprekken met
jeugdzorgorganisaties verlopen, en wat ouders vertellen tijdens de *Wat als…*-actiedagen.

Zit je in een **cliëntenraad** of jongerenraad? We horen graag wat jij ziet. Vertel het op
[ons platform](https://www.rvjeugdzorg.nl/praat-mee).
"""


def seed_edition(**changes: Any) -> EditionContent:
    content = EditionContent(
        number=12,
        subject="Nieuwsbrief Radicale vernieuwing jeugdzorg – 17 november 2026",
        intro_markdown=INTRO,
        created_at=datetime(2026, 11, 17, 8, 0, tzinfo=UTC),
        articles=seed_articles(),
    )
    return replace(content, **changes)


def mail_settings(tmp_path: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {"site": {"base_url": BASE_URL}}
    data.update(sections)
    return settings_from_mapping(data, base_dir=tmp_path, env={})

"""Sanitizing feed HTML, and turning it into text and excerpts."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.content.nesting import MAX_DEPTH
from newsletter.content.sanitize import clean_html, excerpt, html_to_text, plain_text_to_html

BASE = "https://www.rvjeugdzorg.nl/nieuws/artikel/"


class _Attributes(HTMLParser):
    """Every tag and attribute of an HTML fragment, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((tag, name, value or "") for name, value in attrs)


def parsed(html: str) -> _Attributes:
    parser = _Attributes()
    parser.feed(html)
    parser.close()
    return parser


# -- clean_html -------------------------------------------------------------------------


def test_scripts_styles_and_frames_go_with_their_content() -> None:
    html = (
        "<p>Voor</p><script>alert('x')</script><style>p{display:none}</style>"
        "<iframe src='https://www.youtube.com/embed/x'>fallback</iframe>"
        "<object data='x.swf'>obj</object><embed src='x.swf'>"
        "<form action='https://evil.example/'><input name='q'>Zoek</form><p>Na</p>"
    )
    assert clean_html(html, base_url=BASE) == "<p>Voor</p><p>Na</p>"


def test_event_handlers_and_style_attributes_are_removed() -> None:
    html = '<p onclick="steal()" style="color:red" class="intro">Tekst</p>'
    html += '<img src="a.jpg" onerror="steal()">'
    cleaned = clean_html(html, base_url=BASE)
    assert parsed(cleaned).attributes == [("img", "src", BASE + "a.jpg")]
    assert "Tekst" in cleaned


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "  javascript:alert(1)",
        "jav&#x09;ascript:alert(1)",
        "jav&#x0A;ascript:alert(1)",
        "&#106;avascript:alert(1)",
        "java\tscript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "file:///etc/passwd",
    ],
)
def test_dangerous_link_schemes_lose_their_href(href: str) -> None:
    cleaned = clean_html(f'<a href="{href}">klik</a>', base_url=BASE)
    assert [name for _, name, _ in parsed(cleaned).attributes] == ["rel"]
    assert "klik" in cleaned


def test_data_and_javascript_image_sources_are_dropped_with_the_image() -> None:
    html = (
        '<p><img src="data:image/png;base64,iVBORw0KGgo=" alt="pixel">'
        '<img src="javascript:alert(1)" alt="js">Tekst</p>'
    )
    assert clean_html(html, base_url=BASE) == "<p>Tekst</p>"


def test_relative_links_and_images_are_resolved_against_the_base() -> None:
    html = (
        '<a href="/manifest/">manifest</a> <a href="../andere/">andere</a> '
        '<a href="#reacties">reacties</a> <a href="//cdn.rvjeugdzorg.nl/x.pdf">pdf</a> '
        '<img src="foto.jpg" alt="Foto">'
    )
    hrefs = [value for _, name, value in parsed(clean_html(html, base_url=BASE)).attributes]
    assert "https://www.rvjeugdzorg.nl/manifest/" in hrefs
    assert "https://www.rvjeugdzorg.nl/nieuws/andere/" in hrefs
    assert BASE + "#reacties" in hrefs
    assert "https://cdn.rvjeugdzorg.nl/x.pdf" in hrefs
    assert BASE + "foto.jpg" in hrefs


def test_relative_urls_without_a_base_are_dropped() -> None:
    cleaned = clean_html('<a href="/manifest/">manifest</a><img src="a.jpg">', base_url=None)
    assert cleaned == '<a rel="noopener noreferrer">manifest</a>'


def test_links_get_noopener_noreferrer_and_mailto_is_kept() -> None:
    cleaned = clean_html(
        '<a href="mailto:rvjeugdzorg@loc.nl" rel="author" target="_blank">mail</a>',
        base_url=BASE,
    )
    assert cleaned == '<a href="mailto:rvjeugdzorg@loc.nl" rel="noopener noreferrer">mail</a>'


def test_headings_move_under_the_mail_s_own_and_keep_their_text() -> None:
    html = "<h1>Groot</h1><h2>Middel</h2><h5>Klein</h5><h6>Kleinst</h6>"
    assert clean_html(html, base_url=BASE) == (
        "<h2>Groot</h2><h2>Middel</h2><h4>Klein</h4><h4>Kleinst</h4>"
    )


def test_unknown_tags_keep_their_text() -> None:
    html = '<div class="wp-block"><span style="x">Samen</span> <font>werken</font></div>'
    assert clean_html(html, base_url=BASE) == "Samen werken"


def test_image_sizes_must_be_plain_numbers() -> None:
    cleaned = clean_html('<img src="a.jpg" width="640" height="100%">', base_url=BASE)
    assert parsed(cleaned).attributes == [("img", "src", BASE + "a.jpg"), ("img", "width", "640")]


def test_dutch_text_and_typographic_quotes_are_kept_as_they_are() -> None:
    text = "De cliëntenraad wil ‘samen creëren’ – “niet over ons zonder ons”…"
    assert clean_html(f"<p>{text}</p>", base_url=BASE) == f"<p>{text}</p>"


def test_comments_are_removed() -> None:
    assert clean_html("<p>a<!-- [if mso]>x<![endif] -->b</p>", base_url=BASE) == "<p>ab</p>"


_FRAGMENTS = st.sampled_from(
    [
        "<script>",
        "</script>",
        "<scr<script>ipt>",
        "<a href='",
        '<a href="',
        "javascript:",
        "jav&#x09;ascript:",
        "&#106;avascript:",
        " onclick=",
        " onerror=alert(1) ",
        "<img src=x",
        "<svg onload=alert(1)>",
        "<iframe src=",
        "<style>",
        "data:text/html,",
        "'",
        '"',
        ">",
        "<",
        "/",
        "<!--",
        "-->",
        "<![CDATA[",
        "<p>",
        "<b ",
    ]
)


@given(st.lists(_FRAGMENTS | st.text(max_size=20), max_size=30).map("".join))
def test_clean_html_never_lets_script_through(html: str) -> None:
    cleaned = clean_html(html, base_url=BASE)
    assert "<script" not in cleaned.lower()
    result = parsed(cleaned)
    assert "script" not in result.tags
    for _tag, name, value in result.attributes:
        assert not name.startswith("on")
        assert name != "style"
        if name in ("href", "src"):
            assert value.startswith(("https://", "http://", "mailto:")), value


# -- plain_text_to_html -----------------------------------------------------------------


def test_plain_text_is_escaped_into_paragraphs_and_line_breaks() -> None:
    text = "Eerste regel <script>\r\ntweede & regel\n\n\n  Nieuwe alinea  \n \n"
    assert plain_text_to_html(text) == (
        "<p>Eerste regel &lt;script&gt;<br>tweede &amp; regel</p>\n<p>Nieuwe alinea</p>"
    )


def test_plain_text_without_content_gives_nothing() -> None:
    assert plain_text_to_html(" \n\n \n") == ""


# -- html_to_text -----------------------------------------------------------------------


def test_html_to_text_keeps_paragraphs_and_decodes_entities() -> None:
    html = (
        "<h2>Kop</h2><p>Ouders &amp; jongeren,\n   samen&nbsp;sterk</p>"
        "<p>Regel<br>volgende regel</p><script>alert(1)</script><style>p{}</style>"
    )
    assert html_to_text(html) == "Kop\n\nOuders & jongeren, samen sterk\n\nRegel\nvolgende regel"


def test_html_to_text_writes_lists_and_quotes_readably() -> None:
    html = (
        "<p>Doe mee:</p><ul><li>ouders</li><li><p>jongeren</p>"
        "<ol><li>eerst</li><li>dan</li></ol></li></ul>"
        "<blockquote><p>Niet over ons zonder ons.</p></blockquote>"
    )
    assert html_to_text(html) == (
        "Doe mee:\n\n- ouders\n- jongeren\n  1. eerst\n  2. dan\n\n> Niet over ons zonder ons."
    )


def test_html_to_text_keeps_preformatted_text() -> None:
    assert html_to_text("<p>Code:</p><pre>  a = 1\n  b = 2</pre>") == "Code:\n\n  a = 1\n  b = 2"


def test_html_to_text_of_plain_text_is_the_text() -> None:
    assert html_to_text("Geen opmaak, wel ‘aanhalingstekens’") == (
        "Geen opmaak, wel ‘aanhalingstekens’"
    )


# -- excerpt ----------------------------------------------------------------------------


def test_excerpt_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    html = "<p>Jongeren, ouders en professionals werken samen aan de jeugdzorg.</p>"
    assert excerpt(html, words=3) == "Jongeren, ouders en…"
    assert excerpt(html, words=2) == "Jongeren, ouders…"


def test_excerpt_that_fits_is_the_whole_text_without_ellipsis() -> None:
    html = "<p>Samen   werken\n aan</p><p>jeugdzorg.</p>"
    assert excerpt(html, words=4) == "Samen werken aan jeugdzorg."


def test_excerpt_replaces_wordpress_more_marker() -> None:
    html = "<p>Nog steeds zijn er geen oplossingen [&#8230;]</p>"
    assert excerpt(html, words=60) == "Nog steeds zijn er geen oplossingen…"


def test_excerpt_needs_at_least_one_word() -> None:
    with pytest.raises(ValueError, match="at least one word"):
        excerpt("<p>tekst</p>", words=0)


# -- nesting depth ----------------------------------------------------------------------


class _Depth(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.depth = self.deepest = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("br", "img", "hr"):
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)

    def handle_endtag(self, tag: str) -> None:
        self.depth -= 1


def deepest(html: str) -> int:
    parser = _Depth()
    parser.feed(html)
    parser.close()
    return parser.deepest


@pytest.mark.parametrize(
    "pattern", ["<ul><li>", "<div>", "<li><ul></li>", "<blockquote><p>", "<b><div>"]
)
def test_html_nested_20000_deep_is_flattened_and_keeps_its_text(pattern: str) -> None:
    html = pattern * 20_000 + "<p>bodem</p>"
    cleaned = clean_html(html, base_url=BASE)
    assert "bodem" in cleaned
    assert deepest(cleaned) <= MAX_DEPTH


@pytest.mark.parametrize("items", [200, 600], ids=["left as it is", "rebuilt"])
def test_ordinary_nesting_keeps_its_structure(items: int) -> None:
    # 600 items are more tags than nesting.REBUILD_ABOVE_TAGS: the rebuilt HTML says the same.
    listed = "".join(f"<li><a href='/a{n}'>Artikel {n}</a></li>" for n in range(items))
    html = f"<p>Lijst:</p><ul>{listed}</ul>" + "<ul><li>" * 30 + "diep" + "</li></ul>" * 30
    cleaned = clean_html(html, base_url=BASE)
    assert cleaned.count("<li>") == items + 30
    assert cleaned.count('<a href="https://www.rvjeugdzorg.nl/a') == items
    assert deepest(cleaned) == 60

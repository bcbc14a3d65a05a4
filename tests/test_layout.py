"""What the shared page layout promises without a browser: every badge colour readable (WCAG
AA 4.5:1), a skip link to the main content, the current language marked, a favicon that is
cached for long."""

import re
from pathlib import Path

import pytest

from tests.helpers_content import log_in, make_staff

CSS = Path(__file__).resolve().parent.parent / "static" / "css" / "app.css"


def _luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    high, low = sorted([_luminance(foreground), _luminance(background)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def badge_colours() -> dict[str, tuple[str, str]]:
    """Each .badge rule's (text, background) colours, variables resolved; the plain badge's
    background and the page's ink where a rule leaves one out."""
    css = CSS.read_text(encoding="utf-8")
    variables = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", css))

    def resolve(value: str) -> str:
        match = re.fullmatch(r"var\(--([\w-]+)\)", value.strip())
        return variables[match.group(1)] if match else value.strip()

    rules = {}
    for selectors, body in re.findall(r"([^{}]*\.badge[^{}]*)\{([^}]*)\}", css):
        props = dict((k.strip(), resolve(v)) for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+)", body))
        rules[" ".join(selectors.split())] = props
    plain = rules.pop(".badge")
    result = {".badge": (variables["ink"], plain["background"])}
    for selectors, props in rules.items():
        result[selectors] = (props.get("color", variables["ink"]), props.get("background", plain["background"]))
    return result


def test_every_badge_colour_meets_aa_contrast():
    colours = badge_colours()
    assert any("pending" in selector for selector in colours)
    weak = {selector: round(contrast(*pair), 2) for selector, pair in colours.items() if contrast(*pair) < 4.5}
    assert not weak, f"badges under 4.5:1: {weak}"


def test_contrast_formula():
    assert contrast("#ffffff", "#000000") == pytest.approx(21)
    assert contrast("#a86400", "#fff4e0") == pytest.approx(4.29, abs=0.01)  # the old "pending" badge


def test_pages_have_a_skip_link_the_language_marked_and_an_icon(app, client, session):
    make_staff(session, "redakcja@miasto.example.pl")
    for path in ["/?lang=en", "/admin/login?lang=en"]:
        html = client.get(path).get_data(as_text=True)
        assert re.search(r'<a class="skip-link" href="#main">Skip to main content</a>', html)
        assert 'id="main"' in html
        assert re.search(r'<a [^>]*class="active" aria-current="true"\s+hreflang="en" lang="en"', html)
        assert re.search(r'hreflang="pl" lang="pl"', html)
        assert '<link rel="icon" type="image/svg+xml" href="/favicon.svg">' in html
    html = client.get("/?lang=pl").get_data(as_text=True)
    assert "Przejdź do treści" in html


def test_staff_pages_have_the_menu_button(app, client, session):
    log_in(client, make_staff(session, "redakcja@miasto.example.pl"))
    html = client.get("/admin/?lang=pl").get_data(as_text=True)
    assert re.search(r'<button type="button" class="nav-toggle[^"]*" aria-controls="site-nav" '
                     r'aria-expanded="false">Menu</button>', html)
    assert '<nav class="nav" id="site-nav" aria-label="Menu główne">' in html


@pytest.mark.parametrize("path", ["/favicon.svg", "/favicon.ico"])
def test_favicon_is_a_small_svg_cached_for_a_year(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert len(response.data) < 2048 and response.data.startswith(b"<svg")
    assert response.cache_control.max_age == 365 * 24 * 3600
    assert response.cache_control.public

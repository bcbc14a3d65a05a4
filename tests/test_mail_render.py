"""Campaign rendering: the sandbox, the recipient markers, the text part."""

import pytest

from mailer.errors import InvalidInput
from mailer.mail.render import compile_campaign

LAYOUT = '<html><head><style>p { color: #123456 }</style></head><body>{{ content }}' \
         '<a href="{{ unsubscribe_url }}">Wypisz się</a></body></html>'


def compiled(content_html, content_text="", layout_text=""):
    return compile_campaign(subject="Koncert", preheader="", layout_html=LAYOUT,
                            layout_text=layout_text, content_html=content_html,
                            content_text=content_text, context={"events": [{"title": "Rock & <Roll>"}]})


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}",
    "{{ ('{0.__class__.__mro__}'|attr('format'))('') }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ 'x' * 100000000 }}",
    "{{ [0] * 100000000 }}",
    "{{ 10 ** 1000000 }}",
    "{% if %}",
    "{{ missing_variable }}",
])
def test_hostile_or_broken_templates_are_refused(source):
    with pytest.raises(InvalidInput):
        compiled(source)


def test_recipient_values_are_escaped_in_html_and_plain_in_text():
    campaign = compiled("<p>Dzień dobry {{ subscriber.name }}, {{ events[0].title }}</p>",
                        content_text="Dzień dobry {{ subscriber.name }}, {{ events[0].title }}",
                        layout_text="{{ content }}\nWypisz się: {{ unsubscribe_url }}")
    out = campaign.personalize(name="Zoë <b>", unsubscribe_url="http://localhost/u/abc?x=1&y=2")
    assert "Dzień dobry Zoë &lt;b&gt;, Rock &amp; &lt;Roll&gt;" in out.html
    assert 'href="http://localhost/u/abc?x=1&amp;y=2"' in out.html
    assert "color: #123456" in out.html  # CSS inlined
    assert out.text == "Dzień dobry Zoë <b>, Rock & <Roll>\nWypisz się: http://localhost/u/abc?x=1&y=2"


def test_an_empty_name_leaves_no_stray_space():
    out = compiled("<p>Dzień dobry {{ subscriber.name }},</p>").personalize(name="", unsubscribe_url="u")
    assert "Dzień dobry,</p>" in out.html


def test_text_part_is_made_from_the_html_when_there_is_no_text_source():
    out = compiled("<p>Zapraszamy na koncert.</p>").personalize(unsubscribe_url="http://localhost/u/t")
    assert "Zapraszamy na koncert." in out.text
    assert "http://localhost/u/t" in out.text

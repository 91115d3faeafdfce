"""Token labels as Markdown code spans (explorer.ui.token_chips), checked with a CommonMark parser, and the
internals lab's token row with backticks in the text (issue 17 item 8)."""
from __future__ import annotations

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.internals import MAX_TOKENS
from explorer.safe_text import inline_code as code_span
from explorer.ui.internals import VIEW
from explorer.ui.token_chips import token_chips
from tests.conftest import ROOT
from tests.pretrained_models import ours

LABELS = ["`", "```", "a`b", "``x", " x", "x ", "`a", "plain", "**b**", "![x](http://127.0.0.1:9/x.png)", "<b>",
          "$x$", "今₁/₂", "气₂/₂很₁/₂", "‹E4 BB›", "␣"]


def code_contents(markdown: str) -> list[str]:
    """What a CommonMark renderer shows as inline code, in order; fails on anything else but the spaces between."""
    inline = MarkdownIt("commonmark").parseInline(markdown)[0].children
    assert all(t.type == "code_inline" or (t.type == "text" and not t.content.strip()) for t in inline), \
        [(t.type, t.content) for t in inline]
    return [t.content for t in inline if t.type == "code_inline"]


@pytest.mark.parametrize("label", LABELS)
def test_one_span_shows_exactly_its_label(label):
    assert code_contents(code_span(label)) == [label]


def test_a_row_of_chips_keeps_every_label_apart():
    assert code_contents(token_chips(LABELS)) == LABELS


def test_internals_token_row_survives_backticks():
    text = "Use `code` and ``` fences, or a lone ` here."
    at = AppTest.from_file(str(ROOT / "labs/internals.py"), default_timeout=300)
    at.session_state[VIEW.key("model")] = "smollm2-135m"
    at.run()
    at.text_area(key=VIEW.key("text")).input(text).run()
    assert not at.exception
    labels = ours("smollm2-135m").encode(text, max_tokens=MAX_TOKENS).labels
    before, after = t("en", "internals.tokens", chips="\0", n=len(labels), max_tokens=MAX_TOKENS).split("\0")
    row = next(m.value for m in at.markdown if m.value.startswith(before) and m.value.endswith(after))
    assert any("`" in label for label in labels)
    assert code_contents(row.removeprefix(before).removesuffix(after)) == list(labels)

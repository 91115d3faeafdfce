"""escape_markdown / escape_html: student text shows as typed, never as Markdown, HTML, maths or a link.

The rule tested is CommonMark's: a backslash before any ASCII punctuation character makes it a literal character,
so a text in which every punctuation character is escaped has no markup left. The real rendering (no image fetched,
no tag, no link) is checked in a browser in tests/browser/test_sizing_untrusted_text.py.
"""
import re
import string

import pytest

from explorer.safe_text import escape_html, escape_markdown, inline_code

PAYLOADS = [
    "![x](http://127.0.0.1:9/md-img.png)",
    "**bold** _em_ ~~del~~ `code` [link](http://example.com)",
    "<img src=x onerror=alert(1)> <b>b</b> &quot; &amp;",
    "$x^2$ :red[red] :material/home: :smile:",
    "# heading\n- item\n1. one\n> quote\n\n===\n| a | b |\n|---|---|",
    "[ref]: http://127.0.0.1:9/ref.png\n\n![r][ref]",
    "www.example.com a@b.co https://x.org HTTP://Y.ORG",
    "\\*already escaped\\* and a trailing backslash \\",
    "今天天气很好 ‘quotes’ — dash",
]
WORD_JOINER = "\u2060"


def _unescape(md: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)


@pytest.mark.parametrize("text", PAYLOADS)
def test_every_punctuation_character_is_escaped_and_nothing_else_changes(text):
    md = escape_markdown(text)
    assert _unescape(md).replace(WORD_JOINER, "") == text
    unescaped = re.sub(r"\\[!-/:-@\[-`{-~]", "", md)
    assert not set(unescaped) & set(string.punctuation), unescaped


@pytest.mark.parametrize("text", ["see http://127.0.0.1:9/x.png", "www.example.com", "mail a@b.co",
                                  "HTTPS://EXAMPLE.ORG"])
def test_bare_urls_and_addresses_cannot_become_links(text):
    plain = _unescape(escape_markdown(text))
    # GFM's autolinks need "://", "www." or "x@y" with nothing in between: a word joiner sits in each
    assert not re.search(r"[a-zA-Z]://|www\.|\w@", plain), plain


def test_any_object_is_shown_through_str():
    assert _unescape(escape_markdown(ValueError("got '**x**'"))) == "got '**x**'"
    assert escape_markdown(1024) == "1024"


def test_escape_html_keeps_plotly_from_reading_tags():
    assert escape_html('<a href="http://x">x</a> & <br>') == '&lt;a href="http://x"&gt;x&lt;/a&gt; &amp; &lt;br&gt;'


# markdown-it-py is a CommonMark implementation independent of ours (and of Streamlit's react-markdown): what it
# renders from the escaped text must be exactly the typed characters, with no element other than a paragraph.
def _rendered_text(md: str) -> tuple[str, set[str]]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("strikethrough").enable("table").parse(md)
    kinds, texts = set(), []
    for tok in tokens:
        kinds.add(tok.type)
        if tok.type == "paragraph_close":
            texts.append("\n\n")
        for child in tok.children or ():
            kinds.add(child.type)
            if child.type in ("text", "code_inline"):
                texts.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                texts.append("\n")
    return "".join(texts), kinds


@pytest.mark.parametrize("text", PAYLOADS + ["a`b", "``", "x  y", "1. item", "# head", "> quote", "| a | b |"])
def test_commonmark_renders_the_escaped_text_as_typed(text):
    shown, kinds = _rendered_text(escape_markdown(text))
    # blank lines split paragraphs, which the extraction does not keep: compare with whitespace collapsed
    assert shown.replace(WORD_JOINER, "").split() == text.split()
    assert kinds <= {"paragraph_open", "paragraph_close", "inline", "text", "softbreak", "hardbreak"}, kinds


@pytest.mark.parametrize("text", ["a", "a`b", "`", "``x", "x`", "` `", "*bold* [l](http://x)", "<img src=x>",
                                  "$x$", "two\nlines", "  padded  ", "中文`词元`"])
def test_inline_code_shows_every_character_in_one_code_span(text):
    shown, kinds = _rendered_text(inline_code(text))
    assert "code_inline" in kinds and not kinds & {"image", "link_open", "html_inline", "em_open"}
    assert shown.strip("\n") == text.replace("\n", " ")

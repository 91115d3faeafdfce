"""Show text a student typed, pasted or uploaded exactly as written: never as Markdown, HTML, LaTeX or a link.

Streamlit renders the body of st.markdown, st.error, st.warning, st.info, st.success, st.caption, widget labels,
help texts and metric labels as Markdown. A config.json value like ``![x](http://host/img.png)`` echoed in an
error message therefore became an image the browser fetched (issue 17); ``**bold**``, ``[link](url)``,
``<b>``, ``$x^2$`` and ``:red[text]`` were interpreted too. Plotly strings (titles, annotations, tick labels)
understand a subset of HTML (``<a href>``, ``<b>``, ``<br>``).

Use:

    st.error(escape_markdown(str(err)))                # a library sentence that may quote the student's value
    st.caption(f"Read from **{escape_markdown(name)}**")  # our own Markdown around the student's text
    fig.update_layout(title=escape_html(label))        # plotly

Library messages (ValueError sentences) are plain text, so escaping a whole message is safe: it only stops the
quoted value from being read as markup. Escape once, at the place the text is shown, not where it is stored.
"""
from __future__ import annotations

import html
import re
import string

_MARKDOWN_SPECIAL = frozenset(string.punctuation)  # CommonMark lets a backslash escape any ASCII punctuation
# remark-gfm turns bare URLs, www. addresses and e-mail addresses into links after parsing, so backslashes do not
# stop it; a word joiner (U+2060, invisible, no line break) inside the trigger does.
_WORD_JOINER = "\u2060"
_AUTOLINK_TRIGGERS = re.compile(r"(?i)(?<=[a-z0-9+.-])(?=://)|(?<=www)(?=\.)|(?=@)")


def escape_markdown(text: object) -> str:
    """``text`` (any object, shown through ``str``) as a Markdown body that renders to exactly its characters.

    Every ASCII punctuation character gets a backslash (emphasis, links, images, headings, lists, tables,
    HTML tags, entities, ``$`` maths, ``:colour[...]`` and ``:material/...:`` directives all start with one),
    and bare URLs and e-mail addresses are kept from becoming links. Line breaks stay line breaks.
    """
    s = _AUTOLINK_TRIGGERS.sub(_WORD_JOINER, str(text))
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in s)


def escape_html(text: object) -> str:
    """``text`` for a Plotly string (title, annotation, tick label): its HTML subset shows as typed.

    Put student text in hover labels through ``customdata`` or ``text`` rather than inside a hovertemplate,
    where ``%{...}`` would still be read as a field.
    """
    return html.escape(str(text), quote=False)


def inline_code(text: object) -> str:
    """``text`` as a Markdown code span that shows exactly its characters, backticks included.

    A span opened with n backticks ends at the next run of exactly n, so a token like ``a`b`` between single
    backticks ended the span early and leaked the rest as Markdown. CommonMark's rule: the fence is one backtick
    longer than the longest run inside, padded with a space when the text starts or ends with a backtick or a
    space (one space is stripped from each side when both ends have one). Line breaks become spaces: a code span
    is one line. An empty text is one space (an empty span is not a span).
    """
    s = str(text).replace("\r", " ").replace("\n", " ")
    if not s:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.strip(" ") and (s[0] in "` " or s[-1] in "` ") else ""
    return f"{fence}{pad}{s}{pad}{fence}"

"""Token labels as a row of Markdown code spans, exactly as the tokenizer produced them.

A code span shows its content literally (no emphasis, links, images, HTML or maths), but a backtick inside it ends
it: a token that is a backtick, fenced with single backticks, broke the rest of the row. CommonMark's rule: fence
the content with more backticks than its longest run of backticks, and pad it with a space when it starts or ends
with a backtick or a space (one space is stripped from each side when both ends have one).
"""
from __future__ import annotations

import re
from collections.abc import Iterable


def code_span(text: str) -> str:
    """``text`` as one Markdown code span that renders to exactly its characters."""
    if not text:
        return "` `"  # an empty span is not a span; one space renders as a blank chip
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.strip(" ") and (text[0] in "` " or text[-1] in "` ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def token_chips(labels: Iterable[str]) -> str:
    """One code span per token label, separated by spaces."""
    return " ".join(code_span(label) for label in labels)

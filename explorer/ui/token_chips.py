"""Token labels as a row of Markdown code spans, exactly as the tokenizer produced them.

A code span shows its content literally (no emphasis, links, images, HTML or maths), but a backtick inside it ends
it: a token that is a backtick, fenced with single backticks, broke the rest of the row. Each label goes through
explorer.safe_text.inline_code, which fences it by CommonMark's rule.
"""
from __future__ import annotations

from collections.abc import Iterable

from ..safe_text import inline_code


def token_chips(labels: Iterable[str]) -> str:
    """One code span per token label, separated by spaces."""
    return " ".join(inline_code(label) for label in labels)

"""InternalsSettings on its own (no model loaded): every control the page sets is checked in validate(), with a
sentence that names it. The checks against a model (layers, heads, the text as its tokenizer reads it) are in
tests/test_internals.py."""
from __future__ import annotations

import dataclasses

import pytest

from explorer.labs.internals import MAX_COMPARE, TEXT_MAX_CHARS, InternalsSettings
from explorer.labs.internals_passes import DEFAULT_COMPARE


def test_the_defaults_are_valid_and_frozen():
    settings = InternalsSettings()
    settings.validate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.text = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("field, value, words", [
    ("model", "gpt-5", "model must be one of minilm-l6, smollm2-135m"),
    ("text", 42, "The text must be text"),
    ("text", "a" * (TEXT_MAX_CHARS + 1), f"the box takes at most {TEXT_MAX_CHARS:,}"),
    ("chat", "yes", "chat must be one of"),
    ("min_weight", 1.5, "between 0 and 1"),
    ("min_weight", -0.1, "between 0 and 1"),
    ("min_weight", float("nan"), "line threshold must be a number"),
    ("compare", (), "at least one comparison sentence"),
    ("compare", ("A cat.", "   "), "needs at least one word"),
    ("compare", tuple(f"Sentence {i}." for i in range(MAX_COMPARE + 1)), f"at most {MAX_COMPARE} comparison"),
    ("compare", "A cat.", "comparison sentences must be a list"),
])
def test_each_bad_control_is_named(field, value, words):
    with pytest.raises(ValueError, match=words):
        dataclasses.replace(InternalsSettings(), **{field: value}).validate()


def test_the_default_comparison_sentences_fit_the_cap():
    assert 0 < len(DEFAULT_COMPARE) <= MAX_COMPARE

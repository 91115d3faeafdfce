"""The texts the training lab learns from (assets/corpora/, sources and licences in assets/corpora/NOTICE.md).

``load_corpus("tangshi")`` is 唐诗三百首 in simplified characters, one poem per block (title, author, lines, a
blank line between poems); ``load_corpus("shakespeare")`` is Shakespeare's Sonnets. ``split`` cuts a text into a
training part and a validation part the model never learns from, so its loss on the second says whether it
generalises.
"""
from __future__ import annotations

import functools
from pathlib import Path

from . import checks
from .i18n import Msg

CORPUS_DIR = Path(__file__).resolve().parent.parent / "assets" / "corpora"
CORPORA = ("tangshi", "shakespeare")
FILES = {"tangshi": "tangshi.txt", "shakespeare": "shakespeare_sonnets.txt"}
MAX_VAL_FRACTION = 0.5  # more held out than trained on would teach nothing


@functools.cache
def load_corpus(name: str) -> str:
    """The whole text of corpus ``name`` (one of CORPORA), read once per process (the files are immutable)."""
    checks.choice(Msg("training.lib.corpus_name"), name, CORPORA)
    return (CORPUS_DIR / FILES[name]).read_text(encoding="utf-8")


def split(text: str, val_fraction: float) -> tuple[str, str]:
    """``(train, val)``: the last ``val_fraction`` of ``text`` is held out for validation.

    The cut moves back to the start of the block (a blank line: a poem, a sonnet) or else the line it falls in, so
    neither part begins mid-poem; a text with no such boundary near the cut is cut at the exact character. Both parts
    are non-empty for any text of two characters or more; ``train + val == text`` always."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
            or not 0 < val_fraction <= MAX_VAL_FRACTION:
        raise ValueError(Msg("training.lib.val_fraction", high=MAX_VAL_FRACTION, got=repr(val_fraction)))
    if len(text) < 2:
        raise ValueError(Msg("training.lib.text_too_short", n=len(text), low=2))
    cut = min(max(round(len(text) * (1 - val_fraction)), 1), len(text) - 1)
    # Look back no further than half the held-out part, so the split stays close to the fraction asked for.
    floor = max(1, cut - max(1, (len(text) - cut) // 2))
    for boundary in ("\n\n", "\n"):
        at = text.rfind(boundary, floor, cut)
        if at != -1:
            cut = at + len(boundary)
            break
    return text[:cut], text[cut:]

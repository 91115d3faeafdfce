"""The checks every lab and the core run on what a student typed, in one place: each raises ValueError with a
sentence (an explorer.i18n.Msg: English as a string, any language on a page) that names the control and quotes the
value. ``name`` is a symbol (d_model) or a Msg naming the control in words."""
from __future__ import annotations

import math
from typing import Any, Iterable

from .i18n import Msg


def whole_number(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an int from ``low`` to ``high`` (no upper bound when None); bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        if high is None:
            raise ValueError(Msg("checks.whole_at_least", name=name, low=low, got=repr(value)))
        raise ValueError(Msg("checks.whole_between", name=name, low=low, high=high, got=repr(value)))
    return value


def choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(Msg("checks.one_of", name=name, choices=", ".join(map(str, choices)), got=repr(value)))
    return value


def finite_number(name: str, value: Any) -> float:
    """``value`` if it is a finite int or float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(Msg("checks.number", name=name, got=repr(value)))
    return value


def positive_number(name: str, value: Any) -> float:
    """``value`` if it is a finite number above 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(Msg("checks.positive", name=name, got=repr(value)))
    return value


def text_box(name: str, value: Any, max_chars: int) -> str:
    """``value`` if it is a string a text box of ``max_chars`` characters could hold."""
    if not isinstance(value, str):
        raise ValueError(Msg("checks.text", name=name, got=repr(value)))
    if len(value) > max_chars:
        raise ValueError(Msg("checks.text_too_long", name=name, length=len(value), max_chars=max_chars))
    return value


def nearest_whole(value: Any, low: int, high: int, default: int) -> int:
    """The whole number from ``low`` to ``high`` nearest to ``value``, or ``default`` when it is not one (bools
    included): what a lab shows instead of a control it could not use."""
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return min(max(value, low), high)

"""The checks every lab and the core run on what a student typed, in one place: each raises ValueError with a
sentence that names the control and quotes the value, so a page can show it as it is."""
from __future__ import annotations

import math
from typing import Any, Iterable


def whole_number(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an int from ``low`` to ``high`` (no upper bound when None); bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{name} must be a whole number {span} (got {value!r}).")
    return value


def choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))} (got {value!r}).")
    return value


def finite_number(name: str, value: Any) -> float:
    """``value`` if it is a finite int or float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number (got {value!r}).")
    return value


def positive_number(name: str, value: Any) -> float:
    """``value`` if it is a finite number above 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number (got {value!r}).")
    return value


def text_box(name: str, value: Any, max_chars: int) -> str:
    """``value`` if it is a string a text box of ``max_chars`` characters could hold."""
    if not isinstance(value, str):
        raise ValueError(f"The {name} must be text (got {value!r}).")
    if len(value) > max_chars:
        raise ValueError(f"The {name} is {len(value):,} characters long; the box takes at most {max_chars:,}. "
                         "Shorten it.")
    return value


def nearest_whole(value: Any, low: int, high: int, default: int) -> int:
    """The whole number from ``low`` to ``high`` nearest to ``value``, or ``default`` when it is not one (bools
    included): what a lab shows instead of a control it could not use."""
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return min(max(value, low), high)

"""The one result type of every lab: what was computed, from which settings, and, when the student's settings could
not be used, why (a sentence for the page) and what is shown instead."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Generic, Protocol, TypeVar

from ..i18n import Msg, sentence_of


class Settings(Protocol):
    """A lab's frozen settings dataclass: ``validate()`` is the one place its values are checked."""

    def validate(self) -> None:
        """Raise ValueError with a sentence for the student when the settings cannot be computed."""


S = TypeVar("S", bound=Settings)
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[S, R]):
    """``result`` computed from ``settings`` (the settings actually used).

    ``error`` is the sentence for the student when the requested settings could not be used; ``fallback`` says
    what is shown instead, whether the settings were wrong (then with ``error``) or only could not be honoured
    (chat asked of a model without a chat template: ``fallback`` alone). ``result`` is None when nothing sensible
    can be shown: a page then shows the error alone rather than another model's numbers under the student's input.
    A lab may keep a result beside its error when the result is the student's own input made visible (the tokens of
    a prompt whose run was refused)."""

    settings: S
    result: R | None
    error: str | None = None
    fallback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def changed_fields(requested, used) -> Msg | None:
    """'Showing n_head = 4, seed = 0 instead.' for the fields of two settings dataclasses that differ."""
    changed = [f"{f.name} = {getattr(used, f.name)}" for f in dataclasses.fields(used)
               if getattr(used, f.name) != getattr(requested, f.name)]
    return Msg("common.showing_instead", fields=", ".join(changed)) if changed else None


def run_lab(requested: S, compute: Callable[[S], R], nearest: Callable[[S], S] | None = None, *,
            validate: Callable[[S], None] = lambda settings: settings.validate(),
            describe: Callable[[S, S], str | None] = changed_fields) -> Outcome[S, R]:
    """Validate ``requested`` and compute; never raises for bad input.

    Invalid settings fall back to ``nearest(requested)`` (itself validated) when the lab has a sensible nearest
    choice, else the outcome carries the error and no result. A lab whose settings are checked against the model
    they run on passes ``validate`` (its settings' ``validate`` with that model); ``describe(requested, used)`` is
    the fallback's sentence, when the lab has a better one than the changed fields."""
    try:
        validate(requested)
    except ValueError as err:
        said = sentence_of(err)
        if nearest is None:
            return Outcome(requested, None, said)
        used = nearest(requested)
        validate(used)  # a fallback that is itself invalid is a bug, not a student's mistake
        return Outcome(used, compute(used), said, describe(requested, used))
    return Outcome(requested, compute(requested))

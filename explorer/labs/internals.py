"""The model-internals lab: a real model (all-MiniLM-L6-v2 or SmolLM2-135M) reads the student's text and shows
every head's attention, head ablation, the logit lens, residual norms and attention entropy. ``InternalsSettings``
is everything the page's controls set; ``run(model, settings)`` checks them against the model (an
explorer.models.LoadedModel) and returns an Outcome whose ``InternalsResult`` holds what the page draws, or the
sentence and the settings shown instead. Its three expensive parts (explorer.labs.internals_passes) depend on fewer
settings than the whole: ``analyze`` (one forward pass keeping every pattern and the residual stream) on the text,
``logit_lens`` on that pass, ``ablate`` on it and the heads switched off; ``run`` reaches them through ``Steps``, so
the app can cache each on its own (explorer.ui.internals). What is read off a pass without the model (entropy,
norms, the head view's lines, the captions' facts) is explorer.labs.internals_facts. Results hold numpy arrays and
plain values, for ``explorer.viz.internals``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..checks import choice, finite_number, nearest_whole, text_box
from ..i18n import Msg
from ..limits import INTERNALS_MAX_TOKENS as MAX_TOKENS  # every lab's caps live in explorer.limits
from ..models import Encoded, LoadedModel
from ..models.pretrained import MODEL_NAMES
from .internals_facts import (Entropy, HeadLine, LensFacts, ResidualNormFacts, attention_entropy, head_view_lines,
                              logit_lens_facts, residual_norm_facts, residual_norms)
from .internals_passes import (DEFAULT_COMPARE, Ablation, Head, Internals, LogitLens, ablate, analyze, check_head,
                               check_layer, head_name, is_decoder, logit_lens, validate_heads)
from .outcome import Outcome, run_lab

DEFAULT_TEXT = {
    "minilm-l6": "The animal didn't cross the street because it was too tired.",
    "smollm2-135m": "The Eiffel Tower is in the city of",
}
FALLBACK_TEXT = "The cat sat on the mat."
TRAINED_MODEL = "trained"  # a session's own model from the training lab, under the name explorer.ui.training gives it
TEXT_MAX_CHARS = 2000  # the text box's limit; the tokens read are capped at MAX_TOKENS after that
MAX_COMPARE = 8  # each comparison sentence runs through the encoder twice per ablation


# ----------------------------------------------------------------------------------------------------------------
# The settings, checked in one place.


@dataclass(frozen=True)
class InternalsSettings:
    """What the student sets: the model and the text it reads (as a chat message or not), the head zoomed into,
    the head view's layer, heads and line threshold, the heads switched off, and the sentences the encoder's
    sentence embedding is compared with."""

    model: str = "smollm2-135m"
    text: str = DEFAULT_TEXT["smollm2-135m"]
    chat: bool = False
    layer: int = 0  # the head zoomed into, framed in the grid
    head: int = 0
    view_layer: int = 0
    view_heads: tuple[int, ...] = (0, 1, 2, 3)
    min_weight: float = 0.1  # the head view draws the weights from this one up
    ablated: tuple[Head, ...] = ()
    compare: tuple[str, ...] = DEFAULT_COMPARE

    def validate(self, model: LoadedModel | None = None) -> None:
        """Raise ValueError with a sentence for the student when these settings cannot be run.

        Without ``model``, the settings alone. With the model the run is for, also the text as its tokenizer reads
        it (not empty, the chat format only for a chat model) and every layer and head within the model."""
        choice("model", self.model, MODEL_NAMES + (TRAINED_MODEL,))
        if model is not None and model.name != self.model:
            raise ValueError(Msg("internals.error.other_model", settings=self.model, model=model.name))
        _check_text(self.text)
        choice("chat", self.chat, (True, False))
        if model is not None:
            read_text(model, self)
        _check_threshold(self.min_weight)
        _check_compare(self.compare)
        if model is None:
            return
        n_layer, n_head = model.config.n_layer, model.config.n_head
        check_layer(self.layer, n_layer)
        check_head(self.head, n_head)
        check_layer(self.view_layer, n_layer)
        for head in self.view_heads:
            check_head(head, n_head)
        validate_heads(self.ablated, n_layer, n_head)


def _check_text(text) -> None:
    text_box(Msg("internals.name.text"), text, TEXT_MAX_CHARS)


def _check_threshold(min_weight) -> None:
    finite_number(Msg("internals.name.min_weight"), min_weight)
    if not 0 <= min_weight <= 1:
        raise ValueError(Msg("internals.error.threshold", got=repr(min_weight)))


def _check_compare(compare) -> None:
    if not isinstance(compare, (tuple, list)) or not all(isinstance(c, str) for c in compare):
        raise ValueError(Msg("internals.error.compare_not_list", got=repr(compare)))
    if not compare:
        raise ValueError(Msg("internals.error.compare_empty"))
    if len(compare) > MAX_COMPARE:
        raise ValueError(Msg("internals.error.compare_too_many", max_compare=MAX_COMPARE, got=len(compare)))
    if blank := next((c for c in compare if not c.strip()), None):
        raise ValueError(Msg("internals.error.compare_blank", got=repr(blank)))


def read_text(model: LoadedModel, settings: InternalsSettings) -> Encoded:
    """The text as ``model`` reads it, at most MAX_TOKENS tokens (ValueError with a sentence when it cannot)."""
    return model.encode(settings.text, chat=settings.chat, max_tokens=MAX_TOKENS)


def _passes(check: Callable[[], object]) -> bool:
    try:
        check()
    except ValueError:
        return False
    return True


def nearest(model: LoadedModel, settings: InternalsSettings) -> InternalsSettings:
    """Each control at its nearest valid value on ``model``, the others as they were: a text the model cannot read
    becomes the example text, the chat format goes where the model has none, layers and heads that do not exist go
    or move to the nearest that do, and no usable comparison sentence brings back the default ones."""
    s, default = settings, InternalsSettings()
    n_layer, n_head = model.config.n_layer, model.config.n_head
    text, chat = s.text, s.chat is True and model.supports_chat
    if not _passes(lambda: _check_text(text)) or not _passes(lambda: model.encode(text, chat=chat)):
        text, chat = FALLBACK_TEXT, False
    min_weight = min(max(s.min_weight, 0.0), 1.0) if _passes(lambda: finite_number("min_weight", s.min_weight)) \
        else default.min_weight
    words = [c for c in s.compare if isinstance(c, str) and c.strip()] if isinstance(s.compare, (tuple, list)) else []
    return dataclasses.replace(
        s, model=model.name, text=text, chat=chat,
        layer=nearest_whole(s.layer, 0, n_layer - 1, default.layer),
        head=nearest_whole(s.head, 0, n_head - 1, default.head),
        view_layer=nearest_whole(s.view_layer, 0, n_layer - 1, default.view_layer),
        view_heads=tuple(h for h in s.view_heads if _passes(lambda: check_head(h, n_head))),
        min_weight=min_weight,
        ablated=tuple(p for p in s.ablated if _passes(lambda: validate_heads([p], n_layer, n_head))),
        compare=tuple(words[:MAX_COMPARE]) or DEFAULT_COMPARE,
    )


def fallback_sentence(requested: InternalsSettings, used: InternalsSettings) -> Msg | None:
    """What the page shows instead of ``requested``, in the words of each control."""
    said = []
    if used.text != requested.text:
        said.append(Msg("internals.fallback.text", text=used.text))
    elif used.chat != requested.chat:
        said.append(Msg("internals.fallback.chat"))
    if used.compare != requested.compare:
        said.append(Msg("internals.fallback.compare_default") if used.compare == DEFAULT_COMPARE else
                    Msg("internals.fallback.compare_first", n=MAX_COMPARE) if len(requested.compare) > MAX_COMPARE
                    else Msg("internals.fallback.compare_words"))
    if used.ablated != requested.ablated:
        said.append(Msg("internals.fallback.ablated_some", heads=", ".join(map(head_name, used.ablated)))
                    if used.ablated else Msg("internals.fallback.ablated_none"))
    rest = dataclasses.replace(requested, text=used.text, chat=used.chat, compare=used.compare, ablated=used.ablated)
    changed = [f"{f.name} = {getattr(used, f.name)}" for f in dataclasses.fields(used)
               if getattr(used, f.name) != getattr(rest, f.name)]
    if changed:
        said.append(Msg("internals.fallback.fields", fields=", ".join(changed)))
    return Msg.join(said) if said else None


# ----------------------------------------------------------------------------------------------------------------
# The run.


@dataclass(frozen=True)
class InternalsResult:
    """What the page draws for one text. L = layers, H = heads, T = tokens."""

    tokens: Encoded  # the text as the model read it
    analysis: Internals
    entropy: Entropy
    norms: np.ndarray  # (L + 1, T) residual_norms
    norm_facts: ResidualNormFacts | None  # the attention sink the decoder's captions describe (None: encoder)
    lines: list[HeadLine]  # the head view's lines, of every query token
    ablation: Ablation
    lens: LogitLens | None  # None for the encoder: it has no next-token head
    lens_facts: LensFacts | None


class Steps:
    """How ``run`` computes its expensive parts. Each reads only the settings it depends on (the analysis: model,
    text and chat; the ablation: those and the heads and sentences), so a subclass may cache it on those
    (explorer.ui.internals does); ``base`` is the analysis of the same settings."""

    def analysis(self, model: LoadedModel, settings: InternalsSettings) -> Internals:
        return analyze(model, read_text(model, settings))

    def lens(self, model: LoadedModel, settings: InternalsSettings, base: Internals) -> LogitLens:
        return logit_lens(model, base)

    def ablation(self, model: LoadedModel, settings: InternalsSettings, base: Internals) -> Ablation:
        return ablate(model, read_text(model, settings), settings.ablated, base, compare=settings.compare)


def run(model: LoadedModel, settings: InternalsSettings, steps: Steps = Steps()
        ) -> Outcome[InternalsSettings, InternalsResult]:
    """Everything the page draws for ``settings`` on ``model``; never raises for bad input: settings that cannot
    be used are the outcome's error, and its result is that of the nearest settings that can (``nearest``)."""
    return run_lab(settings, lambda used: _compute(model, used, steps), lambda s: nearest(model, s),
                   validate=lambda s: s.validate(model), describe=fallback_sentence)


def _compute(model: LoadedModel, settings: InternalsSettings, steps: Steps) -> InternalsResult:
    decoder = is_decoder(model)
    base = steps.analysis(model, settings)
    norms = residual_norms(base)
    lens = steps.lens(model, settings, base) if decoder else None
    return InternalsResult(
        tokens=read_text(model, settings), analysis=base, entropy=attention_entropy(base.patterns, causal=decoder),
        norms=norms, norm_facts=residual_norm_facts(norms, base.labels, base.patterns) if decoder else None,
        lines=head_view_lines(base.patterns[settings.view_layer], settings.view_heads, settings.min_weight),
        ablation=steps.ablation(model, settings, base), lens=lens,
        lens_facts=logit_lens_facts(lens, base.ids) if lens is not None else None,
    )

"""The generation lab: a decoder continues the student's prompt one token at a time, and every choice is shown.

``GenerationSettings`` is everything the page's controls set. ``run(model, settings)`` checks them against the model
the run is for and returns, in an Outcome, the prompt as that model reads it: what the page shows before anything
runs, and what ``start_run`` continues. The run itself is an explorer.generation.Generation, a stream the page steps
through behind the server's admission queue (explorer.ui.generation). ``summarize`` and ``compare_cache`` turn a
run into the numbers the page shows about it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

from .. import limits
from ..checks import choice, text_box
from ..generation import (FINISH_REASONS, Generation, Prompt, SpeedReport, Step, generate, prepare_prompt,
                          replay_speed, tokens_per_second)
from ..models import LoadedModel
from ..models.tiny import TINY_DECODERS
from ..sampling import SamplingSettings
from ..i18n import Msg
from ..i18n import sentence_of
from .outcome import Outcome

REAL_MODEL = "smollm2-135m"
MODEL_CHOICES = (REAL_MODEL,) + TINY_DECODERS
TRAINED_MODEL = "trained"  # the session's own model from the training lab (explorer.ui.training), never shared
DEFAULT_PROMPT = "What is the capital of France?"
REPLAY_MAX = 48  # tokens timed by the KV-cache comparison: enough to see the trend, quick enough for a class


@dataclass(frozen=True)
class GenerationSettings:
    """What the student sets: the model, the prompt and its format, how the next token is picked
    (explorer.sampling.SamplingSettings says what each setting may be) and whether the KV cache is used."""

    model: str = REAL_MODEL
    prompt: str = DEFAULT_PROMPT
    chat: bool = True  # wrap the prompt in the model's chat template
    greedy: bool = False
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 0.9
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 32
    seed: int | None = 0
    use_cache: bool = True

    def sampling(self) -> SamplingSettings:
        """The decoding settings; ValueError with a sentence when one of them makes no sense."""
        return SamplingSettings(greedy=self.greedy, temperature=self.temperature, top_k=self.top_k,
                                top_p=self.top_p, min_p=self.min_p, repetition_penalty=self.repetition_penalty,
                                max_new_tokens=self.max_new_tokens, seed=self.seed)

    def validate(self, model: LoadedModel | None = None) -> None:
        """Raise ValueError with a sentence for the student when these settings cannot be run.

        Without ``model``, the settings alone: a model of this lab, a prompt the box could hold, decoding settings
        that make sense (within explorer.limits' new tokens). With the model the run is for, also the prompt as
        its tokenizer reads it (explorer.generation.prepare_prompt: not empty, within the lab's prompt tokens and
        the context, a chat template when chat is asked for) and, without the KV cache, the whole run within the
        tokens one run may read."""
        choice(Msg("generation.name.model"), self.model, MODEL_CHOICES + (TRAINED_MODEL,))
        choice(Msg("generation.name.chat"), self.chat, (True, False))
        choice(Msg("generation.name.use_cache"), self.use_cache, (True, False))
        text_box(Msg("generation.name.prompt"), self.prompt, limits.GENERATION_PROMPT_MAX_CHARS)
        self.sampling()
        if model is None:
            return
        self.check_model(model)
        self.check_run(read_prompt(model, self))

    def check_model(self, model: LoadedModel) -> None:
        if model.name != self.model:
            raise ValueError(Msg("generation.lab.wrong_model", settings=self.model, model=model.name))

    def check_run(self, prompt: Prompt) -> None:
        """Without the KV cache, the whole run must stay within the tokens one run may read."""
        if not self.use_cache and (too_long := limits.no_cache_too_long(len(prompt), self.max_new_tokens)):
            raise ValueError(too_long)


def read_prompt(model: LoadedModel, settings: GenerationSettings) -> Prompt:
    """The prompt as ``model`` reads it: token ids and a label per token (ValueError when it cannot)."""
    return prepare_prompt(model.tokenizer, settings.prompt, model.config.max_seq_len, chat=settings.chat)


def run(model: LoadedModel, settings: GenerationSettings) -> Outcome[GenerationSettings, Prompt]:
    """The prompt as ``model`` reads it, for the page to show and ``start_run`` to continue; never raises for bad
    input.

    Chat asked of a model without a chat template falls back to plain completion: ``fallback`` says so and there is
    no error (the format control is offered for every model; nothing the student typed is wrong). Any other problem
    is the outcome's error, and no run may start from it. The result is then still the prompt when only the run
    was refused (without the KV cache, over the tokens one run may read), so the page can show what the model
    would read; it is None when the prompt itself cannot be read."""
    fallback = None
    if settings.chat is True and not model.supports_chat:
        settings = dataclasses.replace(settings, chat=False)
        fallback = Msg("generation.lab.no_chat_template", model=model.name)
    try:  # what validate(model) checks, with the prompt read once (every rerun of the page comes through here)
        settings.validate()
        settings.check_model(model)
        prompt = read_prompt(model, settings)
    except ValueError as err:
        return Outcome(settings, None, sentence_of(err), fallback)
    try:
        settings.check_run(prompt)
    except ValueError as err:
        return Outcome(settings, prompt, sentence_of(err), fallback)
    return Outcome(settings, prompt, None, fallback)


def start_run(model: LoadedModel, outcome: Outcome[GenerationSettings, Prompt]) -> Generation:
    """A new run of ``model`` from an outcome of ``run`` without an error, recording the attention the page shows;
    iterate it for the Steps."""
    if not outcome.ok or outcome.result is None:
        raise ValueError(Msg("generation.lab.no_run", error=outcome.error))
    settings = outcome.settings
    return generate(model.model, model.tokenizer, outcome.result, settings.sampling(), use_cache=settings.use_cache,
                    attention=True, stop_ids=model.eos_token_ids)


@dataclass(frozen=True)
class RunSummary:
    """What the page says about the steps of a run so far."""

    n_tokens: int
    text: str  # what the steps added to the text
    tokens_per_second: float  # decoding speed, after the first token (explorer.generation.tokens_per_second)
    first_token_ms: float  # reading the prompt and picking the first token
    mean_entropy_bits: float  # of the model's own distribution, averaged over the steps
    finish: str | None  # why the run ended (a sentence), None while it can go on
    cut_character: bool  # the text ends inside a character whose last bytes were never generated


def summarize(steps: Sequence[Step]) -> RunSummary:
    if not steps:
        raise ValueError(Msg("generation.lab.nothing_yet"))
    text = "".join(s.delta for s in steps)
    finish = steps[-1].finish
    return RunSummary(
        n_tokens=len(steps), text=text, tokens_per_second=tokens_per_second([s.seconds for s in steps]),
        first_token_ms=steps[0].seconds * 1000, mean_entropy_bits=sum(s.model_entropy for s in steps) / len(steps),
        finish=None if finish is None else FINISH_REASONS[finish],
        cut_character=finish is not None and text.endswith("\ufffd"),
    )


@dataclass(frozen=True)
class CacheComparison:
    """The same tokens of one run timed with the KV cache on and off."""

    on: SpeedReport
    off: SpeedReport

    @property
    def speedup(self) -> float:
        return self.on.tokens_per_second / self.off.tokens_per_second


def replay_length(run: Generation) -> int:
    """How many of the run's tokens the comparison times: at most REPLAY_MAX, and within the tokens one run may
    read, since the replay without the cache re-reads the whole text at every step."""
    return min(len(run.steps), REPLAY_MAX, limits.max_new_without_cache(len(run.prompt)))


def compare_cache(run: Generation, n_tokens: int) -> CacheComparison:
    """Replay the first ``n_tokens`` generated tokens of ``run`` with the KV cache on, then off
    (explorer.generation.replay_speed: teacher forcing, so both do exactly the same work)."""
    ids = run.token_ids[:n_tokens]
    return CacheComparison(on=replay_speed(run.model, run.prompt.ids, ids, use_cache=True),
                           off=replay_speed(run.model, run.prompt.ids, ids, use_cache=False))

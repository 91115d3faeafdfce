"""The inference lab's "Speculative decoding" tab: plain greedy decoding and speculative decoding of the same prompt
on the same model, timed in the same call, with every round's proposed, accepted and rejected tokens, the acceptance
rate, tokens per target forward beside the model (1 - α^(k+1)) / (1 - α), and the check that both texts are the
same token for token (explorer.speculative).

The target is SmolLM2-135M-Instruct (its Q4_1 GGUF release dequantized to float32) or the student's model from the
training lab; the draft is prompt lookup, the target's own first layers (early exit), or the student's model when
its vocabulary is the target's (with SmolLM2 it never is: the page says why and uses prompt lookup instead).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..checks import choice, nearest_whole, text_box, whole_number
from ..generation import prepare_prompt
from ..i18n import Msg, sentence_of
from ..models.protocol import LoadedModel
from ..models.token_labels import sequence_labels
from ..speculative import (MAX_K, GreedyRun, ModelDraft, PromptLookupDraft, SpeculativeRun,
                           expected_tokens_per_forward, greedy_decode, hidden_states, run_speculative_decode,
                           vocabularies_match)
from .outcome import Outcome, run_lab

REAL_MODEL = "smollm2-135m"
TRAINED_MODEL = "trained"  # the session's own model from the training lab (explorer.ui.training), never shared
MODELS = (REAL_MODEL, TRAINED_MODEL)
DRAFTS = ("prompt_lookup", "early_exit", "trained")
MAX_PROMPT_CHARS = 2000
MAX_PROMPT_TOKENS = 256
MAX_NEW_TOKENS = 96
MAX_NGRAM = 5
MAX_EXIT_LAYERS = 29  # SmolLM2 has 30 layers: an exit after all of them would be the target itself
# What one click may cost, in target forwards (a draft forward of L of n layers counts L / n): plain greedy's
# max_new_tokens forwards plus the speculative run's worst case, every proposal rejected (max_new_tokens rounds of
# k draft forwards and one verification). About 20 s of a quiet 2-core server at SmolLM2's ~40 ms a forward.
MAX_FORWARDS = 480
LABEL_CONTEXT = 8  # tokens before a round that can hold the start of its first character (4 UTF-8 bytes at most)

# Example prompts: (text, chat). A copy task repeats its input (prompt lookup's good case); free text does not.
# (SmolLM2-135M-Instruct asked to edit code tends to answer in prose about it, so no code example.)
EXAMPLES = {
    "copy": ("Fix the spelling and write the text out again: The quick brown fox jumpd over the lazy dog. Then the "
             "dog woke up and chasd the fox across the feild.", True),
    "chinese": ("请把这句话原样再写一遍：今天天气很好，我们一起去公园散步，然后去图书馆看书。", True),
    "free": ("Write a short story about a cat who learns to swim.", True),
}


@dataclass(frozen=True)
class SpeculativeSettings:
    """The tab's controls: the target model and its prompt, the draft and how many tokens it proposes a round (k),
    the early-exit depth, prompt lookup's longest n-gram, and how many tokens both runs generate."""

    prompt: str = EXAMPLES["copy"][0]
    chat: bool = True
    model: str = REAL_MODEL
    draft: str = "prompt_lookup"
    k: int = 4
    exit_layers: int = 24  # SmolLM2 was not trained to exit early: fewer layers are almost never accepted
    ngram: int = 3
    max_new_tokens: int = 48

    def validate(self, target: LoadedModel | None = None, trained: LoadedModel | None = None) -> None:
        """Raise ValueError with a sentence when a control cannot be used; with the target model (and the session's
        trained model, if any), also what depends on them."""
        choice(Msg("inference_speculative.name.model"), self.model, MODELS)
        choice(Msg("inference_speculative.name.draft"), self.draft, DRAFTS)
        text_box(Msg("inference_speculative.name.prompt"), self.prompt, MAX_PROMPT_CHARS)
        whole_number("k", self.k, 1, MAX_K)
        whole_number(Msg("inference_speculative.name.ngram"), self.ngram, 1, MAX_NGRAM)
        whole_number(Msg("inference_speculative.name.max_new_tokens"), self.max_new_tokens, 1, MAX_NEW_TOKENS)
        if not isinstance(self.chat, bool):
            raise ValueError(Msg("checks.one_of", name="chat", choices="True, False", got=repr(self.chat)))
        whole_number(Msg("inference_speculative.name.exit_layers"), self.exit_layers, 1, MAX_EXIT_LAYERS)
        if target is None:
            return
        n_layer = target.config.n_layer
        if self.draft == "early_exit":
            if n_layer < 2:
                raise ValueError(Msg("inference_speculative.error.one_layer"))
            whole_number(Msg("inference_speculative.name.exit_layers"), self.exit_layers, 1, n_layer - 1)
            cost = worst_case_forwards(self, n_layer)
            if cost > MAX_FORWARDS:
                raise ValueError(Msg("inference_speculative.error.too_costly", cost=cost, budget=MAX_FORWARDS))
        if self.draft == "trained":
            if trained is None:
                raise ValueError(Msg("inference_speculative.error.no_trained"))
            if self.model == TRAINED_MODEL:
                raise ValueError(Msg("inference_speculative.error.draft_is_target"))
            why = vocabularies_match(target.tokenizer, trained.tokenizer, target.config.vocab_size,
                                     trained.config.vocab_size)
            if why is not None:
                raise ValueError(why)
            cost = worst_case_forwards(self, n_layer, draft_cost=draft_cost(target, trained))
            if cost > MAX_FORWARDS:
                raise ValueError(Msg("inference_speculative.error.too_costly", cost=cost, budget=MAX_FORWARDS))
        if self.chat and not target.supports_chat:
            raise ValueError(Msg("inference_speculative.error.no_chat"))


def draft_cost(target: LoadedModel, draft: LoadedModel) -> float:
    """A draft model's forward in target forwards, by parameter count (decoding reads every weight once)."""
    count = lambda m: sum(p.numel() for p in m.model.parameters())  # noqa: E731
    return count(draft) / count(target)


def worst_case_forwards(settings: SpeculativeSettings, n_layer: int, draft_cost: float | None = None) -> int:
    """Target forwards of one click when the draft is always wrong (see MAX_FORWARDS), rounded up."""
    per_draft = 0.0
    if settings.draft == "early_exit":
        per_draft = settings.exit_layers / n_layer
    elif settings.draft == "trained":
        per_draft = draft_cost or 0.0
    n = settings.max_new_tokens
    return int(-(-(n + n * (1 + settings.k * per_draft)) // 1))


def nearest(settings: SpeculativeSettings, target: LoadedModel | None = None,
            trained: LoadedModel | None = None) -> SpeculativeSettings:
    """Each control at its nearest valid value; a draft that cannot be used becomes prompt lookup, and a request
    that would cost too much keeps its draft with fewer new tokens (or a shallower exit) within the budget."""
    default = SpeculativeSettings()
    prompt = settings.prompt if isinstance(settings.prompt, str) else default.prompt
    n_layer = target.config.n_layer if target is not None else 30
    used = dataclasses.replace(
        settings,
        model=settings.model if settings.model in MODELS else default.model,
        draft=settings.draft if settings.draft in DRAFTS else default.draft,
        prompt=prompt[:MAX_PROMPT_CHARS],
        chat=settings.chat if isinstance(settings.chat, bool) else default.chat,
        k=nearest_whole(settings.k, 1, MAX_K, default.k),
        ngram=nearest_whole(settings.ngram, 1, MAX_NGRAM, default.ngram),
        max_new_tokens=nearest_whole(settings.max_new_tokens, 1, MAX_NEW_TOKENS, default.max_new_tokens),
        exit_layers=nearest_whole(settings.exit_layers, 1,
                                  max(1, min(MAX_EXIT_LAYERS, n_layer - 1)) if settings.draft == "early_exit"
                                  else MAX_EXIT_LAYERS, max(1, min(default.exit_layers, n_layer - 1))),
    )
    if target is not None and used.chat and not target.supports_chat:
        used = dataclasses.replace(used, chat=False)
    if target is None:
        return used
    if used.draft == "trained":
        try:
            used.validate(target, trained)
        except ValueError:
            used = dataclasses.replace(used, draft="prompt_lookup")
    if used.draft == "early_exit" and n_layer < 2:
        used = dataclasses.replace(used, draft="prompt_lookup")
    while used.draft == "early_exit" and worst_case_forwards(used, n_layer) > MAX_FORWARDS:
        if used.max_new_tokens > 16:
            used = dataclasses.replace(used, max_new_tokens=used.max_new_tokens - 8)
        elif used.exit_layers > 1:
            used = dataclasses.replace(used, exit_layers=used.exit_layers - 1)
        else:
            used = dataclasses.replace(used, k=used.k - 1)
    return used


@dataclass(frozen=True)
class RoundView:
    """One round as the page shows it: the labels of what the draft proposed and of the target's own token."""

    proposed: tuple[str, ...]
    accepted: int
    target: str
    bonus: bool  # every proposal was accepted: the target's token is a free extra one


@dataclass(frozen=True)
class SpeculativeResult:
    prompt_labels: tuple[str, ...]
    prompt_tokens: int
    plain: GreedyRun
    spec: SpeculativeRun
    rounds: tuple[RoundView, ...]
    text_plain: str
    text_spec: str
    identical: bool
    first_difference: int | None  # the first generated token where the texts part, None when identical
    gap_there: float | None  # plain greedy's top-2 logit gap at that token: a near tie when tiny
    k: int
    draft_cost: float  # a draft forward in target forwards (0 for prompt lookup)
    target_title: str
    draft_unused: Msg | None = None  # why the student's trained model cannot be SmolLM2's draft (shown beside)

    @property
    def alpha(self) -> float | None:
        return self.spec.acceptance_rate

    @property
    def expected_tokens_per_forward(self) -> float | None:
        """The model's tokens per target forward at the measured acceptance rate and this k."""
        return None if self.alpha is None else expected_tokens_per_forward(self.alpha, self.k)

    @property
    def speedup(self) -> float:
        return self.spec.tokens_per_second / max(self.plain.tokens_per_second, 1e-9)

    def model_curve(self) -> list[tuple[int, float]]:
        """(k, expected tokens per forward) for k = 1 .. MAX_K at the measured acceptance rate."""
        a = self.alpha or 0.0
        return [(k, expected_tokens_per_forward(a, k)) for k in range(1, MAX_K + 1)]


def make_draft(settings: SpeculativeSettings, target: LoadedModel, trained: LoadedModel | None):
    """The draft of ``settings`` and what one of its forwards costs in target forwards."""
    if settings.draft == "early_exit":
        cost = settings.exit_layers / target.config.n_layer
        return ModelDraft(target.model, settings.exit_layers, "early_exit"), cost
    if settings.draft == "trained":
        return ModelDraft(trained.model, None, "trained"), draft_cost(target, trained)
    return PromptLookupDraft(max_ngram=settings.ngram), 0.0


def _warm_up(target: LoadedModel, ids) -> None:
    # The first forward of a process allocates and picks kernels: neither timed run should pay for it alone.
    with torch.inference_mode():
        hidden_states(target.model, torch.tensor(list(ids)[-8:], dtype=torch.long, device=target.device), None)


def compute(settings: SpeculativeSettings, target: LoadedModel, trained: LoadedModel | None) -> SpeculativeResult:
    prompt = prepare_prompt(target.tokenizer, settings.prompt, target.config.max_seq_len, chat=settings.chat,
                            max_prompt_tokens=MAX_PROMPT_TOKENS)
    ids, stop = list(prompt.ids), target.eos_token_ids
    _warm_up(target, ids)
    draft, cost = make_draft(settings, target, trained)
    # Speculative first, then plain: a page rerun cannot favour one by order (both are measured in this call).
    spec = run_speculative_decode(target.model, ids, draft, settings.k, settings.max_new_tokens, stop)
    plain = greedy_decode(target.model, ids, settings.max_new_tokens, stop)
    first = next((i for i, (a, b) in enumerate(zip(spec.tokens, plain.tokens)) if a != b),
                 None if len(spec.tokens) == len(plain.tokens) else min(len(spec.tokens), len(plain.tokens)))
    tok = target.tokenizer
    views, context = [], list(ids)
    # Labelled in their own text: a character split over tokens is named in each part ('气₁/₂'); the text's tokens
    # as the whole text names them (a character may end in the next round), a rejected guess as its round's.
    text_labels = iter(sequence_labels(tok, ids + list(spec.tokens))[len(ids):])
    for r in spec.rounds:
        before = context[-LABEL_CONTEXT:]
        kept = [next(text_labels) for _ in r.emitted]
        guessed = sequence_labels(tok, before + list(r.proposed))[len(before):]
        views.append(RoundView(proposed=tuple(kept[:r.accepted]) + tuple(guessed[r.accepted:]),
                               accepted=r.accepted, target=kept[-1],
                               bonus=bool(r.proposed) and r.accepted == len(r.proposed)))
        context += r.emitted
    unused = None
    if settings.model == REAL_MODEL and settings.draft != "trained" and trained is not None:
        unused = vocabularies_match(target.tokenizer, trained.tokenizer, target.config.vocab_size,
                                    trained.config.vocab_size)
    return SpeculativeResult(
        prompt_labels=tuple(prompt.labels), prompt_tokens=len(ids), plain=plain, spec=spec, rounds=tuple(views),
        text_plain=tok.decode(list(plain.tokens), skip_special_tokens=True),
        text_spec=tok.decode(list(spec.tokens), skip_special_tokens=True),
        identical=first is None, first_difference=first,
        gap_there=plain.gaps[first] if first is not None and first < len(plain.gaps) else None,
        k=settings.k, draft_cost=cost, target_title=str(target.title), draft_unused=unused)


def check_prompt(settings: SpeculativeSettings, target: LoadedModel) -> None:
    """The prompt as the target reads it: not empty, within MAX_PROMPT_TOKENS and the context (ValueError with a
    sentence otherwise)."""
    prepare_prompt(target.tokenizer, settings.prompt, target.config.max_seq_len,
                   chat=settings.chat and target.supports_chat, max_prompt_tokens=MAX_PROMPT_TOKENS)


def run_speculative(settings: SpeculativeSettings, target: LoadedModel | None,
                    trained: LoadedModel | None = None) -> Outcome[SpeculativeSettings, SpeculativeResult]:
    """Both runs of ``settings`` on ``target`` (None: the student asked for their trained model and has none).
    Never raises for bad input: a control that cannot be used falls back to its nearest value, with the reason;
    a prompt that cannot be read gets its sentence and no result (another prompt's text would not be theirs)."""
    if target is None:
        return Outcome(settings, None, Msg("inference_speculative.error.no_trained"))
    try:
        text_box(Msg("inference_speculative.name.prompt"), settings.prompt, MAX_PROMPT_CHARS)
        check_prompt(settings, target)
    except ValueError as err:
        return Outcome(settings, None, sentence_of(err))
    return run_lab(settings, lambda s: compute(s, target, trained), lambda s: nearest(s, target, trained),
                   validate=lambda s: s.validate(target, trained))

"""How the next token is picked from the model's scores: the sampling settings and the logit processors.

Each processor is a pure function on a (vocab,) or (batch, vocab) tensor of logits and returns a new tensor; removed
tokens get -inf so that softmax gives them probability exactly 0. They are applied in the order Hugging Face's
``generate`` uses, so a setting here means what it means there:

    repetition penalty -> temperature -> top-k -> top-p -> min-p -> softmax -> argmax (greedy) or a draw (sampling)

Greedy decoding only applies the repetition penalty: the other four reshape a distribution that greedy never draws
from (they cannot change which token is the most likely).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import finite_number
from .i18n import Msg
from .limits import GENERATION_MAX_NEW_TOKENS

FILTERED = float("-inf")

# Ranges beyond which a setting stops being an experiment and becomes a mistake; the messages say why.
MAX_TEMPERATURE = 5.0
MAX_REPETITION_PENALTY = 10.0
MAX_NEW_TOKENS = GENERATION_MAX_NEW_TOKENS  # what one run may cost the shared server (explorer.limits)


def apply_repetition_penalty(logits: torch.Tensor, context_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty (Keskar et al. 2019): every token already in the context (prompt included) has its
    logit divided by ``penalty`` when positive and multiplied by it when negative, so penalty > 1 always makes a
    repeat less likely. ``context_ids``: (T,) for a (vocab,) logit vector, (B, T) for (B, vocab)."""
    if penalty == 1.0 or context_ids.numel() == 0:
        return logits
    seen = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    seen.scatter_(-1, context_ids.to(logits.device).long(), True)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z / T): T < 1 sharpens the distribution towards the most likely token, T > 1 flattens it."""
    if temperature == 1.0:
        return logits
    return logits / temperature


def apply_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest-scoring tokens (ties with the k-th are kept too); k = 0 keeps everything."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth_best = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_best, FILTERED)


def apply_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely tokens whose probabilities add
    up to at least p. Equivalently, drop the least likely tokens for as long as their total stays within 1 - p.
    The single most likely token always survives."""
    if p >= 1.0:
        return logits
    ascending, order = torch.sort(logits, dim=-1)  # least likely first
    mass_from_bottom = torch.softmax(ascending, dim=-1).cumsum(dim=-1)
    drop_sorted = mass_from_bottom <= 1.0 - p
    drop_sorted[..., -1] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, FILTERED)


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """min-p sampling (Nguyen et al. 2024): drop tokens less likely than min_p times the most likely token's
    probability; the threshold follows the model's confidence. min_p = 0 keeps everything."""
    if min_p <= 0.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    threshold = min_p * probs.max(dim=-1, keepdim=True).values
    drop = probs < threshold
    drop.scatter_(-1, probs.argmax(dim=-1, keepdim=True), False)  # the best token always survives
    return logits.masked_fill(drop, FILTERED)


def entropy_bits(probs: torch.Tensor) -> torch.Tensor:
    """H(p) = -sum p log2 p over the last dimension; 2^H is the number of equally likely choices it amounts to."""
    return torch.special.entr(probs).sum(dim=-1) / math.log(2)  # entr(p) = -p ln p, and 0 at p = 0


@dataclass(frozen=True)
class SamplingSettings:
    """Everything that decides how tokens are picked. Validated on creation with messages for a student.

    ``greedy=True`` always takes the most likely token (only the repetition penalty applies). Otherwise the token is
    drawn from the processed distribution with a private random generator seeded by ``seed``: the same seed gives
    the same text; ``seed=None`` draws a fresh one.
    """

    greedy: bool = False
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 32
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.greedy, bool):
            raise ValueError(Msg("generation.check.greedy", got=repr(self.greedy)))
        finite_number(Msg("generation.name.temperature"), self.temperature)
        if not 0 < self.temperature <= MAX_TEMPERATURE:
            raise ValueError(Msg("generation.check.temperature", high=MAX_TEMPERATURE, got=self.temperature))
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(Msg("generation.check.top_k", got=repr(self.top_k)))
        finite_number("top-p", self.top_p)
        if not 0 < self.top_p <= 1:
            raise ValueError(Msg("generation.check.top_p", got=self.top_p))
        finite_number("min-p", self.min_p)
        if not 0 <= self.min_p < 1:
            raise ValueError(Msg("generation.check.min_p", got=self.min_p))
        finite_number(Msg("generation.name.repetition_penalty"), self.repetition_penalty)
        if not 0 < self.repetition_penalty <= MAX_REPETITION_PENALTY:
            raise ValueError(Msg("generation.check.repetition_penalty", high=MAX_REPETITION_PENALTY,
                                 got=self.repetition_penalty))
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or not (
                1 <= self.max_new_tokens <= MAX_NEW_TOKENS):
            raise ValueError(Msg("generation.check.max_new_tokens", high=MAX_NEW_TOKENS,
                                 got=repr(self.max_new_tokens)))
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2 ** 63):
            raise ValueError(Msg("generation.check.seed", got=repr(self.seed)))

    def process(self, logits: torch.Tensor, context_ids: torch.Tensor) -> torch.Tensor:
        """The logits after every processor this setting switches on, in Hugging Face's order."""
        out = apply_repetition_penalty(logits, context_ids, float(self.repetition_penalty))
        if self.greedy:
            return out
        out = apply_temperature(out, float(self.temperature))
        out = apply_top_k(out, self.top_k)
        out = apply_top_p(out, float(self.top_p))
        return apply_min_p(out, float(self.min_p))

    def describe(self) -> Msg:
        """One line for a caption: what this run did."""
        if self.greedy:
            parts = [Msg("generation.describe.greedy")]
        else:
            parts = [Msg("generation.describe.sampling"),
                     Msg("generation.describe.temperature", t=self.temperature)]
            if self.top_k:
                parts.append(Msg("generation.describe.top_k", k=self.top_k))
            if self.top_p < 1:
                parts.append(Msg("generation.describe.top_p", p=self.top_p))
            if self.min_p > 0:
                parts.append(Msg("generation.describe.min_p", p=self.min_p))
            if self.seed is not None:
                parts.append(Msg("generation.describe.seed", seed=self.seed))
        if self.repetition_penalty != 1:
            parts.append(Msg("generation.describe.repetition_penalty", penalty=self.repetition_penalty))
        return Msg.join(parts, sep=" · ")

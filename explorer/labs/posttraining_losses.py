"""The post-training lab's ``losses`` tab: cross-entropy, KL(π ‖ π_ref) per token, and the DPO loss on a chosen and
a rejected answer, each term shown; and a short DPO run that moves the implicit reward margin while the policy
drifts away from the reference (KL grows).

The formulas are in explorer.preference. The model is SmolLM2-135M-Instruct; the reference π_ref is the shared
frozen model, the policy π a explorer.policy.TailPolicy whose last ``trainable_layers`` blocks are the student's
own copy (the rest is shared): before any DPO update π = π_ref, so every log-ratio, every KL and the margin are 0
and the DPO loss is log 2 — which is what the page shows until the student trains.

The preference pairs are assets/posttraining/preferences.jsonl (written for the app, in English and Chinese).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..checks import choice, whole_number
from ..i18n import Msg
from ..models.protocol import LoadedModel
from ..models.token_labels import sequence_labels
from ..optim import AdamW
from ..policy import TailPolicy
from ..preference import dpo_terms, kl_exact, kl_k1, kl_k3, shifted, token_logprobs
from .outcome import Outcome, run_lab

PAIRS_FILE = Path(__file__).resolve().parents[2] / "assets" / "posttraining" / "preferences.jsonl"
BETAS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)  # DPO's β; 0.1 is the paper's and trl's default
LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
MAX_STEPS = 60
TRAINABLE_LAYERS = (1, 2, 3, 4)
CHAT_PROMPT = "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@dataclass(frozen=True)
class PreferencePair:
    id: str
    lang: str
    prompt: str
    chosen: str
    rejected: str


@functools.cache
def load_pairs() -> tuple[PreferencePair, ...]:
    with PAIRS_FILE.open(encoding="utf-8") as f:
        return tuple(PreferencePair(**json.loads(line)) for line in f if line.strip())


def pair_ids() -> tuple[str, ...]:
    return tuple(p.id for p in load_pairs())


def pair_by_id(pair_id: str) -> PreferencePair:
    return next(p for p in load_pairs() if p.id == pair_id)


@dataclass(frozen=True)
class LossesSettings:
    """The tab's controls: the pair shown, DPO's β, and the DPO run (updates, learning rate, blocks trained)."""

    pair: str = "en-capital"
    beta: float = 0.1
    steps: int = 20
    lr: float = 1e-4
    trainable_layers: int = 2

    def validate(self) -> None:
        choice(Msg("posttraining_losses.name.pair"), self.pair, pair_ids())
        choice("β", self.beta, BETAS)
        whole_number(Msg("posttraining_losses.name.steps"), self.steps, 1, MAX_STEPS)
        choice(Msg("posttraining_losses.name.lr"), self.lr, LRS)
        choice(Msg("posttraining_losses.name.trainable_layers"), self.trainable_layers, TRAINABLE_LAYERS)


# ---- token ids --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairBatch:
    """Prompt + answer rows, right-padded: row 2i is pair i's chosen answer, row 2i + 1 its rejected one.
    ``completion`` is True on the answer's tokens (the closing end-of-turn token included)."""

    tokens: torch.Tensor  # (2B, T)
    completion: torch.Tensor  # (2B, T) bool
    lengths: tuple[int, ...]


def answer_ids(model: LoadedModel, answer: str) -> list[int]:
    """The answer's tokens as the model writes them after the chat prompt, ending with its end-of-turn token."""
    ids = model.tokenizer.encode(answer, add_special_tokens=False)
    return ids + list(model.eos_token_ids[:1])


def prompt_ids(model: LoadedModel, question: str) -> list[int]:
    """The question in SmolLM2's chat format (ChatML), without the template's default system message: its twenty
    tokens would be the same in every row and would more than double the work of a training step."""
    return model.tokenizer.encode(CHAT_PROMPT.format(question=question), add_special_tokens=False)


def encode_pairs(model: LoadedModel, pairs: tuple[PreferencePair, ...]) -> PairBatch:
    rows, masks = [], []
    for pair in pairs:
        prompt = prompt_ids(model, pair.prompt)
        for answer in (pair.chosen, pair.rejected):
            ids = answer_ids(model, answer)
            rows.append(prompt + ids)
            masks.append([False] * len(prompt) + [True] * len(ids))
    width = max(len(r) for r in rows)
    # Right padding: a causal model's real tokens never look at the pad columns after them, so no padding mask.
    tokens = torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    completion = torch.tensor([m + [False] * (width - len(m)) for m in masks], dtype=torch.bool)
    return PairBatch(tokens, completion, tuple(len(r) for r in rows))


# ---- one pair, every term -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnswerTerms:
    """One answer's tokens and, per token, its log-probability under π and π_ref, CE, and KL(π ‖ π_ref) three ways."""

    labels: tuple[str, ...]
    logp: np.ndarray
    logp_ref: np.ndarray
    kl_exact: np.ndarray
    kl_k1: np.ndarray
    kl_k3: np.ndarray

    @property
    def ce(self) -> np.ndarray:
        return -self.logp

    @property
    def seq_logp(self) -> float:
        return float(self.logp.sum())

    @property
    def seq_logp_ref(self) -> float:
        return float(self.logp_ref.sum())


@dataclass(frozen=True)
class LossesView:
    pair: PreferencePair
    beta: float
    chosen: AnswerTerms
    rejected: AnswerTerms
    chosen_logratio: float
    rejected_logratio: float
    chosen_reward: float
    rejected_reward: float
    margin: float
    loss: float
    trained: bool  # False: π is still π_ref (no DPO update yet)


def _answer_terms(model: LoadedModel, policy: TailPolicy, tokens: torch.Tensor, completion: torch.Tensor,
                  trained: bool) -> AnswerTerms:
    with torch.no_grad():
        trunk = policy.trunk(tokens)
        _, targets, mask = shifted(tokens, tokens, completion)
        rows = mask[0]  # the positions that predict an answer token
        ref = policy.head(policy.hidden(trunk, reference=True)[:, :-1][0, rows])  # (n, V)
        pol = policy.head(policy.hidden(trunk)[:, :-1][0, rows]) if trained else ref
        target = targets[0, rows]
        logp, logp_ref = token_logprobs(pol, target), token_logprobs(ref, target)
        kl = kl_exact(pol, ref)
    ids = tokens[0, 1:][rows].tolist()
    return AnswerTerms(tuple(sequence_labels(model.tokenizer, ids)), logp.numpy(), logp_ref.numpy(), kl.numpy(),
                       kl_k1(logp, logp_ref).numpy(), kl_k3(logp, logp_ref).numpy())


def pair_view(settings: LossesSettings, model: LoadedModel, policy: TailPolicy, trained: bool) -> LossesView:
    pair = pair_by_id(settings.pair)
    batch = encode_pairs(model, (pair,))
    terms = []
    for row in range(2):
        n = batch.lengths[row]
        terms.append(_answer_terms(model, policy, batch.tokens[row:row + 1, :n], batch.completion[row:row + 1, :n],
                                   trained))
    chosen, rejected = terms
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    d = dpo_terms(t(chosen.seq_logp), t(rejected.seq_logp), t(chosen.seq_logp_ref), t(rejected.seq_logp_ref),
                  settings.beta)
    return LossesView(pair, settings.beta, chosen, rejected, float(d.chosen_logratio), float(d.rejected_logratio),
                      float(d.chosen_reward), float(d.rejected_reward), float(d.margin), float(d.loss), trained)


def run(settings: LossesSettings, model: LoadedModel, policy: TailPolicy | None = None,
        trained: bool = False) -> Outcome[LossesSettings, LossesView]:
    """Every term for the chosen pair under ``policy`` (None: a fresh one, equal to the reference)."""
    def compute(s: LossesSettings) -> LossesView:
        return pair_view(s, model, policy or TailPolicy(model.model, s.trainable_layers), trained and policy is not None)
    return run_lab(settings, compute, nearest)


def nearest(settings: LossesSettings) -> LossesSettings:
    """Each control that cannot be used goes back to its default; the others stay."""
    default = LossesSettings()
    values = {}
    for name, check in (("pair", lambda v: v in pair_ids()), ("beta", lambda v: v in BETAS),
                        ("steps", lambda v: isinstance(v, int) and 1 <= v <= MAX_STEPS), ("lr", lambda v: v in LRS),
                        ("trainable_layers", lambda v: v in TRAINABLE_LAYERS)):
        value = getattr(settings, name)
        values[name] = value if check(value) else getattr(default, name)
    return LossesSettings(**values)


# ---- the DPO run --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DPOStep:
    """One update, measured on all the pairs before it: mean loss, mean implicit rewards and margin, the share of
    pairs whose chosen answer has the higher implicit reward, and the mean KL(π ‖ π_ref) per answer token."""

    step: int
    loss: float
    chosen_reward: float
    rejected_reward: float
    margin: float
    accuracy: float
    kl: float


class DPORun:
    """DPO on the preference pairs of one language at once (one batch of 10 pairs per update), training the policy's own
    with AdamW. The shared blocks' output and the reference's log-probabilities are computed once, on the first
    step: only the own blocks and the head run at each update."""

    def __init__(self, model: LoadedModel, settings: LossesSettings, policy: TailPolicy | None = None):
        self.model, self.settings = model, settings
        self.policy = policy or TailPolicy(model.model, settings.trainable_layers)
        self.optimizer = AdamW(self.policy.parameters(), lr=settings.lr, weight_decay=0.0)
        self.updates = 0

    def pairs(self) -> tuple[PreferencePair, ...]:
        """The pairs in the language of the pair shown: ten short rows each way, so an update takes a second."""
        lang = pair_by_id(self.settings.pair).lang
        return tuple(p for p in load_pairs() if p.lang == lang)

    def _prepare(self):
        batch = encode_pairs(self.model, self.pairs())
        trunk = self.policy.trunk(batch.tokens)
        _, targets, mask = shifted(batch.tokens, batch.tokens, batch.completion)
        with torch.no_grad():
            ref_hidden = self.policy.hidden(trunk, reference=True)[:, :-1][mask]  # (n, d) answer positions only
            ref_logp_tok = token_logprobs(self.policy.head(ref_hidden), targets[mask])
        return trunk, targets, mask, ref_hidden, ref_logp_tok

    def _measure(self, trunk, targets, mask, ref_hidden, ref_logp_tok):
        hidden = self.policy.hidden(trunk)[:, :-1][mask]  # (n, d)
        logits = self.policy.head(hidden)
        logp_tok = token_logprobs(logits, targets[mask])
        row = torch.nonzero(mask)[:, 0]  # each answer token's row
        n_rows = mask.shape[0]
        seq = torch.zeros(n_rows).index_add(0, row, logp_tok)
        seq_ref = torch.zeros(n_rows).index_add(0, row, ref_logp_tok)
        d = dpo_terms(seq[0::2], seq[1::2], seq_ref[0::2], seq_ref[1::2], self.settings.beta)
        with torch.no_grad():
            kl = kl_exact(logits.detach(), self.policy.head(ref_hidden)).mean()
        return d, kl

    def steps(self) -> Iterator[DPOStep]:
        """Step 0 is the measurement before any update; then ``settings.steps`` updates, each measured before it
        is applied (the loss it minimises), and one last measurement after the last update."""
        prepared = self._prepare()
        for step in range(self.settings.steps + 1):
            d, kl = self._measure(*prepared)
            loss = d.loss.mean()
            m = lambda x: x.detach().mean().item()  # noqa: E731
            yield DPOStep(step, m(loss), m(d.chosen_reward), m(d.rejected_reward), m(d.margin),
                          m((d.margin > 0).float()), kl.item())
            if step == self.settings.steps:
                return
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.updates += 1

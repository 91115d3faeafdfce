"""The training lab: a tiny GPT learns a corpus (causal language modelling) while the student watches.

Pre-training maximises the likelihood of the corpus: at every position the model guesses the next token, and the
loss is the mean of −log p(the token that came). ``prepare(settings)`` builds everything before the first update
(text, tokenizer, model, optimiser, the learning-rate schedule drawn in advance); ``Trainer.steps()`` is a generator
of typed ``TrainStep`` records, usable from a notebook as from the page's background runner:

    trainer = prepare(TrainingSettings(corpus="tangshi", steps=200)).result
    for step in trainer.steps():
        print(step.step, step.loss, step.val_loss, step.sample)

Record ``s`` describes the model after ``s`` updates: the training loss of batch ``s`` (the batch update s+1 learns
from), the lr that update uses, its gradient's norm per layer; at every ``eval_every``-th step the validation loss,
at every ``sample_every``-th a sample and the attention of one head; the last record (s = steps) is the trained
model, measured and never updated. Stopping is closing the generator (or dropping it): nothing runs between two
records, so pausing is not asking for the next one.

Determinism and isolation: the weights (explorer.model.Transformer.from_seed), the batches and the samples are drawn
from generators of the Trainer's own, never from torch's global random state, so the same settings give the same
curve on any thread, while any number of other sessions train at the same time (tests/test_training_lib.py).
Each step calls explorer.priority.yield_to_interactive() first: a page's interactive work goes before it.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from .. import priority
from ..checks import choice, finite_number, text_box, whole_number
from ..config import ACTIVATIONS, NORM_POSITIONS, NORMS, POSITIONALS, ModelConfig
from ..i18n import Msg
from ..model import Transformer
from ..optim import AdamW, grouped_grad_norms, schedule
from .outcome import Outcome, run_lab
from .training_data import SOURCES, TOKENIZERS, CUSTOM, TokenData, TrainedTokenizer, source_text, token_data
from .training_io import TrainedModel, load_trained, save_trained, trained_model
from .training_views import (ATTENTION_TOKENS, PROMPT_TOKENS, AttentionMap, BatchView, attention_map, batch_view,
                             sample)

__all__ = ["TrainingSettings", "TrainStep", "Trainer", "prepare", "run", "nearest", "check_data", "count_params",
           "save_trained", "load_trained",
           "TrainedModel", "trained_model", "BatchView", "AttentionMap", "TrainedTokenizer", "TOKENIZERS", "SOURCES"]

# A classroom server trains many small models at once on a few cores: these caps keep one run to seconds or
# minutes and to tens of MB (the logits of a batch, B x T x V floats, are the largest tensor: MAX_LOGITS bounds it).
MAX_LAYERS = 8
MAX_D_MODEL = 512
MAX_HEADS = 16
MAX_CONTEXT = 256
MAX_BATCH = 64
MAX_STEPS = 5_000
MAX_MERGES = 2_000
MAX_TEXT_CHARS = 200_000
MAX_LOGITS = 16 * 2**20  # B x T x V floats: 64 MB, about 4 such tensors live during a step
MAX_PARAMS = 20_000_000
MAX_LR = 0.1
SEED_MAX = 2**31 - 1
# Validation loss: the mean over this many fixed batches of held-out text; each costs about a third of a step.
EVAL_BATCHES = 2
SAMPLE_NEW_TOKENS = 96  # a 五言绝句 with its title and author is about 35 characters
TPS_WINDOW = 10  # tokens/s over the last records


@dataclass(frozen=True)
class TrainingSettings:
    """Everything the student controls; the model fields are named as in ModelConfig (context = max_seq_len)."""

    corpus: str = "tangshi"  # explorer.corpora.CORPORA or 'custom' (then ``text``)
    text: str = ""
    tokenizer: str = "char"
    merges: int = 500  # BPE merges (tokenizer='bpe')
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    n_kv_head: int = 4
    norm: str = "layernorm"
    norm_position: str = "pre"
    activation: str = "gelu"
    positional: str = "learned"
    context: int = 32  # a 五言 line is 13 characters with its punctuation: two and a half lines
    batch_size: int = 32  # 唐诗, char, 300 steps: val loss 5.42 at 32 x 32, 5.55 at 16 x 64 (same tokens per step)
    steps: int = 300
    lr: float = 3e-3
    warmup: int = 30
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip: float = 1.0  # max gradient norm; 0 = no clipping
    seed: int = 0
    eval_every: int = 25
    sample_every: int = 50
    val_fraction: float = 0.1
    min_lr_ratio: float = 0.1  # the cosine ends at this fraction of lr (nanoGPT: lr / 10)
    attn_layer: int = 0  # the head whose attention TrainStep.attention shows
    attn_head: int = 0

    def validate(self) -> None:
        """Raise ValueError with a sentence for the student when a control cannot be used."""
        choice(Msg("training.lib.name.corpus"), self.corpus, SOURCES)
        text_box(Msg("training.lib.name.text"), self.text, MAX_TEXT_CHARS)
        if self.corpus == CUSTOM and len(self.text.strip()) < 2:
            raise ValueError(Msg("training.lib.text_empty"))
        choice(Msg("training.lib.name.tokenizer"), self.tokenizer, TOKENIZERS)
        whole_number(Msg("training.lib.name.merges"), self.merges, 0, MAX_MERGES)
        whole_number("n_layer", self.n_layer, 1, MAX_LAYERS)
        whole_number("d_model", self.d_model, 1, MAX_D_MODEL)
        whole_number("n_head", self.n_head, 1, MAX_HEADS)
        whole_number("n_kv_head", self.n_kv_head, 1, MAX_HEADS)  # its relation to n_head: the core says it
        choice("norm", self.norm, NORMS)
        choice("norm_position", self.norm_position, NORM_POSITIONS)
        choice("activation", self.activation, ACTIVATIONS)
        choice("positional", self.positional, POSITIONALS)
        whole_number(Msg("training.lib.name.context"), self.context, 2, MAX_CONTEXT)
        whole_number(Msg("training.lib.name.batch_size"), self.batch_size, 1, MAX_BATCH)
        whole_number(Msg("training.lib.name.steps"), self.steps, 1, MAX_STEPS)
        _between(Msg("training.lib.name.lr"), self.lr, 0, MAX_LR, low_open=True)
        whole_number(Msg("training.lib.name.warmup"), self.warmup, 0, MAX_STEPS)  # beyond steps: lr never peaks
        _between("β1", self.beta1, 0, 1, high_open=True)
        _between("β2", self.beta2, 0, 1, high_open=True)
        _between("ε", self.eps, 0, 1e-2, low_open=True)
        _between(Msg("training.lib.name.weight_decay"), self.weight_decay, 0, 1)
        _between(Msg("training.lib.name.clip"), self.clip, 0, 100)
        whole_number(Msg("training.lib.name.seed"), self.seed, 0, SEED_MAX)
        whole_number(Msg("training.lib.name.eval_every"), self.eval_every, 1, MAX_STEPS)
        whole_number(Msg("training.lib.name.sample_every"), self.sample_every, 1, MAX_STEPS)
        _between(Msg("training.lib.name.val_fraction"), self.val_fraction, 0.01, 0.5)
        _between(Msg("training.lib.name.min_lr_ratio"), self.min_lr_ratio, 0, 1)
        whole_number(Msg("training.lib.name.attn_layer"), self.attn_layer, 0, self.n_layer - 1)
        whole_number(Msg("training.lib.name.attn_head"), self.attn_head, 0, self.n_head - 1)
        self.model_config(vocab_size=256)  # d_model / n_head / n_kv_head / RoPE rules: the core's sentences

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(arch="decoder", n_layer=self.n_layer, d_model=self.d_model, n_head=self.n_head,
                           n_kv_head=self.n_kv_head, vocab_size=vocab_size, max_seq_len=self.context,
                           activation=self.activation, norm=self.norm, norm_position=self.norm_position,
                           positional=self.positional, mask="causal", tie_embeddings=True, dropout=0.0)


def _between(name, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    finite_number(name, value)
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        raise ValueError(Msg("training.lib.between", name=name, low=low, high=high, got=repr(value),
                             low_bracket="(" if low_open else "[", high_bracket=")" if high_open else "]"))
    return value


def _data(settings: TrainingSettings) -> TokenData:
    return token_data(source_text(settings.corpus, settings.text), settings.tokenizer, settings.merges,
                      float(settings.val_fraction))


def check_data(settings: TrainingSettings) -> None:
    """The checks that need the tokenized text: enough tokens for one window, a batch's logits and the model
    within the caps."""
    settings.validate()
    data = _data(settings)
    if len(data.train_ids) < settings.context + 2:
        raise ValueError(Msg("training.lib.too_few_tokens", n=len(data.train_ids), context=settings.context))
    if len(data.val_ids) < 2:
        raise ValueError(Msg("training.lib.too_few_val_tokens", n=len(data.val_ids)))
    vocab = data.tokenizer.vocab_size
    if settings.batch_size * settings.context * vocab > MAX_LOGITS:
        raise ValueError(Msg("training.lib.logits_too_big", batch_size=settings.batch_size, context=settings.context,
                             vocab=vocab, cap=MAX_LOGITS))
    n_params = count_params(settings.model_config(vocab))
    if n_params > MAX_PARAMS:
        raise ValueError(Msg("training.lib.too_many_params", n=n_params, cap=MAX_PARAMS))


def count_params(cfg: ModelConfig) -> int:
    """The exact number of trained parameters of ``cfg`` (a tied embedding counted once), without allocating them."""
    with torch.device("meta"):
        model = Transformer(cfg)
    return sum(p.numel() for p in model.parameters())


def nearest(settings: TrainingSettings) -> TrainingSettings:
    """The default settings with every one of ``settings``' fields that is valid by itself kept, field by field."""
    used = TrainingSettings()
    for f in dataclasses.fields(TrainingSettings):
        candidate = dataclasses.replace(used, **{f.name: getattr(settings, f.name)})
        try:
            check_data(candidate)
        except ValueError:
            continue
        used = candidate
    return used


@dataclass(frozen=True)
class TrainStep:
    """The model after ``step`` updates (see the module docstring)."""

    step: int
    loss: float  # training loss of this step's batch, mean −log p
    val_loss: float | None  # on held-out text, at eval_every steps and at the end
    lr: float  # the lr of the update this batch feeds (the schedule's end value on the last record)
    grad_norms: dict[str, float]  # gradient L2 norm per layer before clipping: embed, blocks.0 ..., final
    grad_norm: float  # over all parameters, before clipping (what clip compares with)
    tokens_per_s: float  # training tokens per second over the last records, checkpoints included
    sample: str | None  # text written by the model at sample_every steps and at the end
    attention: AttentionMap | None  # at the same checkpoints
    elapsed_s: float  # seconds of training so far (time paused between records not counted)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


class Trainer:
    """One training run: its model, tokenizer, optimiser and schedule, and the generator of its steps.

    Owned by one session; ``steps()`` runs in one thread at a time, and ``batch_view`` / ``trained_model`` /
    ``save_trained`` may be called from another while it runs (one lock: each waits for the current step)."""

    def __init__(self, settings: TrainingSettings, data: TokenData):
        self.settings, self.data = settings, data
        self.tokenizer = data.tokenizer
        self.config = settings.model_config(data.tokenizer.vocab_size)
        self.model = Transformer.from_seed(self.config, settings.seed).train()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.train_tokens, self.val_tokens = len(data.train_ids), len(data.val_ids)
        self.optimizer = AdamW(param_groups(self.model, settings.weight_decay), lr=settings.lr,
                               betas=(settings.beta1, settings.beta2), eps=settings.eps)
        self.layers = layer_groups(self.model)
        self._lrs = schedule(settings.lr, settings.steps, settings.warmup, settings.min_lr_ratio)
        self._batches = torch.Generator().manual_seed(settings.seed)
        self._windows = data.train_ids.unfold(0, settings.context + 1, 1)  # (N - T, T + 1): a view, no copy
        self._val_batches = _fixed_windows(data.val_ids, settings.context, settings.batch_size * EVAL_BATCHES)
        self._prompt = _prompt(data, settings.context)
        self._snippet = data.val_ids[:min(ATTENTION_TOKENS, settings.context)].tolist()
        self._first_batch = self._draw(torch.Generator().manual_seed(settings.seed))  # = batch 0 of steps()
        self._lock = threading.Lock()
        self._running = False
        self.next_step = 0  # the record steps() yields next
        self.elapsed_s = 0.0

    # --- what the page shows before training -------------------------------------------------------------------
    def schedule(self) -> list[float]:
        """The lr of every update 0 .. steps-1, then where the curve ends (steps + 1 values), drawn in advance."""
        return list(self._lrs)

    def batch_view(self, lang: str, positions: int = 16) -> BatchView:
        """Batch 0 (the first one training learns from) under the model as it is now."""
        with self._lock:
            return batch_view(self.model, self.tokenizer, *self._first_batch, lang, positions)

    @property
    def split(self) -> tuple[str, str]:
        """(train text, validation text)."""
        return self.data.train_text, self.data.val_text

    # --- training ----------------------------------------------------------------------------------------------
    def _draw(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._windows[torch.randint(len(self._windows), (self.settings.batch_size,), generator=generator)]
        return rows[:, :-1], rows[:, 1:]  # inputs, targets shifted by one: (B, T) each

    def steps(self) -> Iterator[TrainStep]:
        """Records ``next_step`` .. ``steps`` (all of them on a fresh Trainer); closing the generator stops after the
        record it is at, and a later ``steps()`` goes on from there."""
        if self._running:
            raise RuntimeError("this Trainer is already training")
        self._running = True
        try:
            yield from self._loop()
        finally:
            self._running = False

    def _loop(self) -> Iterator[TrainStep]:
        s, cfg, total = self.settings, self.config, self.settings.steps
        tokens_per_step = s.batch_size * s.context
        recent: deque[float] = deque(maxlen=TPS_WINDOW)
        while self.next_step <= total:
            step = self.next_step
            priority.yield_to_interactive()
            started = time.perf_counter()
            with self._lock:
                x, y = self._draw(self._batches)
                logits = self.model(x)
                loss = F.cross_entropy(logits.view(-1, cfg.vocab_size), y.reshape(-1))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norms, total_norm = grouped_grad_norms(self.layers, s.clip if s.clip > 0 else None)
                lr = self._lrs[step]
                if step < total:
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    self.optimizer.step()
                else:
                    self.optimizer.zero_grad(set_to_none=True)  # the last record measures; it does not learn
                last = step == total
                val = self._val_loss() if step % s.eval_every == 0 or last else None
                checkpoint = step % s.sample_every == 0 or last
                text = sample(self.model, self.tokenizer, self._prompt, SAMPLE_NEW_TOKENS,
                              seed=s.seed * 100_003 + step) if checkpoint else None
                attn = attention_map(self.model, self.tokenizer, self._snippet, s.attn_layer,
                                     s.attn_head) if checkpoint else None
                self.next_step = step + 1
            spent = time.perf_counter() - started
            self.elapsed_s += spent
            recent.append(spent)
            yield TrainStep(step=step, loss=loss.item(), val_loss=val, lr=lr, grad_norms=norms, grad_norm=total_norm,
                            tokens_per_s=tokens_per_step * len(recent) / max(sum(recent), 1e-9), sample=text,
                            attention=attn, elapsed_s=self.elapsed_s)

    @torch.no_grad()
    def _val_loss(self) -> float:
        x, y = self._val_batches
        losses = [F.cross_entropy(self.model(xb).flatten(0, 1), yb.reshape(-1), reduction="sum")
                  for xb, yb in zip(x.split(self.settings.batch_size), y.split(self.settings.batch_size))]
        return float(torch.stack(losses).sum() / y.numel())

    # --- the trained model -------------------------------------------------------------------------------------
    def trained_model(self, name: str = "trained", title: str | None = None) -> TrainedModel:
        """A snapshot of the model as it is now, for the generation and internals labs (training may go on)."""
        with self._lock:
            return trained_model(self.model, self.tokenizer, name=name, title=title, steps=self.next_step - 1)

    def save(self) -> bytes:
        """save_trained(self): the zip of the model as it is now."""
        return save_trained(self)


def param_groups(model: Transformer, weight_decay: float) -> list[dict]:
    """Weight decay on the matrices and embeddings only; biases and norm gains are not decayed (GPT-2, nanoGPT)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return [dict(params=decay, weight_decay=weight_decay), dict(params=rest, weight_decay=0.0)]


def layer_groups(model: Transformer) -> dict[str, list[torch.nn.Parameter]]:
    """Parameters by layer for the grad-norm chart: the embeddings (the tied unembedding with them), each block,
    and what follows the blocks (the final norm)."""
    groups: dict[str, list[torch.nn.Parameter]] = {"embed": list(model.stack.embed.parameters())}
    for i, block in enumerate(model.stack.blocks):
        groups[f"blocks.{i}"] = list(block.parameters())
    seen = {id(p) for params in groups.values() for p in params}
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:  # a post-norm model with a tied head has nothing after its last block
        groups["final"] = rest
    return groups


def _fixed_windows(ids: torch.Tensor, context: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` windows spread evenly over ``ids`` (the same ones at every evaluation), shorter than ``context``
    when the validation text is."""
    T = min(context, len(ids) - 1)
    starts = torch.linspace(0, len(ids) - T - 1, steps=min(n, len(ids) - T)).round().long().unique()
    rows = torch.stack([ids[i:i + T + 1] for i in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


def _prompt(data: TokenData, context: int) -> list[int]:
    """The sample's prompt: the first line of the validation text (a poem's title), at most PROMPT_TOKENS tokens."""
    line = data.val_text.split("\n", 1)[0] + "\n"
    ids = data.tokenizer.encode(line)[:min(PROMPT_TOKENS, context // 2)]
    return ids or data.val_ids[:1].tolist()


def _build(settings: TrainingSettings) -> Trainer:
    return Trainer(settings, _data(settings))


def prepare(settings: TrainingSettings) -> Outcome[TrainingSettings, Trainer]:
    """A Trainer ready for its first step; invalid settings fall back field by field to the defaults (the outcome
    says which). Never raises for bad input."""
    return run_lab(settings, _build, nearest, validate=check_data)


def run(settings: TrainingSettings) -> Outcome[TrainingSettings, Trainer]:
    """The lab's run(): the same as prepare()."""
    return prepare(settings)

"""The post-training lab's LoRA tab: how many parameters and how much memory LoRA trains instead of the whole model
(exact counts on the sizing lab's formulas, for SmolLM2 and the large presets), and a real LoRA fine-tune of SmolLM2
or the student's trained model on the lab's instruction set (explorer.sft), run in the background.

``run_lora(settings)`` gives the counts (cheap arithmetic on a config); ``lora_trainer(settings, base, lang)`` the
fine-tune, whose ``steps()`` a background explorer.jobs.Job steps through.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterator

import torch
from safetensors.torch import save as safetensors_bytes

from .. import priority
from ..checks import choice, whole_number
from ..i18n import Msg, sentence_of
from ..lora import (TARGETS, FineTuneMemory, adamw_fp32_state_bytes, check_targets, full_finetune_memory,
                    lora_memory, lora_model)
from ..optim import AdamW, grouped_grad_norms, schedule
from ..presets import REAL_MODELS
from ..sft import ChatTokens, chat_tokens, greedy_answer, instruction_set, masked_loss
from .outcome import Outcome, run_lab

# SmolLM2 (the model the tab fine-tunes), the sizes the course's table names (Qwen-1.8B, LLaMA-7B), a larger
# LLaMA, and GPT-3 175B, on which Hu et al. 2021 measured LoRA first.
PRESETS = ("SmolLM2-135M", "Qwen-1.8B", "LLaMA-7B", "Llama-3-8B", "Llama-2-70B", "GPT-3 175B")
MAX_RANK = 64
TABLE_RANKS = (1, 2, 4, 8, 16, 32, 64)
MAX_ALPHA = 256
DROPOUTS = (0.0, 0.05, 0.1, 0.2)
MODELS = ("smollm2-135m", "trained")  # "trained": the session's model from the training lab
MAX_STEPS = 40
LRS = (1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2)
SEED_MAX = 2 ** 31 - 1
BATCH = 2  # conversations per update: about a second per update of SmolLM2 on one core
MAX_NEW_TOKENS = 16  # per held-out answer, before and after
HELDOUT = 3  # held-out prompts answered, the page's language first
CLIP = 1.0


@dataclass(frozen=True)
class LoraSettings:
    preset: str = "SmolLM2-135M"  # whose counts the table shows
    rank: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ("q", "v")
    dropout: float = 0.0
    model: str = "smollm2-135m"  # what the fine-tune trains
    steps: int = 10
    lr: float = 2e-3  # LoRA takes a larger rate than full fine-tuning: B starts at zero and is all that moves
    seed: int = 0

    def validate(self) -> None:
        choice("preset", self.preset, PRESETS)
        whole_number("rank", self.rank, 1, MAX_RANK)
        whole_number("alpha", self.alpha, 1, MAX_ALPHA)
        _check_targets(REAL_MODELS[self.preset].cfg, self.targets, self.preset)
        choice("dropout", self.dropout, DROPOUTS)
        choice("model", self.model, MODELS)
        whole_number("steps", self.steps, 1, MAX_STEPS)
        choice("lr", self.lr, LRS)
        whole_number("seed", self.seed, 0, SEED_MAX)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


def _check_targets(cfg, targets, model: str) -> None:
    try:
        check_targets(cfg, targets)
    except (ValueError, TypeError):
        shown = ", ".join(map(str, targets)) if isinstance(targets, tuple) else str(targets)
        raise ValueError(Msg("posttraining_lora.bad_targets", targets=shown or "—", model=model,
                             choices=", ".join(TARGETS))) from None


def nearest(settings: LoraSettings) -> LoraSettings:
    """Each value kept where it is valid with the ones kept before it, else its default."""
    used = LoraSettings()
    for f in dataclasses.fields(LoraSettings):
        trial = dataclasses.replace(used, **{f.name: getattr(settings, f.name)})
        if f.name == "targets" and isinstance(settings.targets, tuple):
            allowed = tuple(t for t in settings.targets if t in TARGETS)
            trial = dataclasses.replace(used, targets=allowed or used.targets)
        try:
            trial.validate()
        except (ValueError, TypeError):
            continue
        used = trial
    return used


# ---- the counts ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankRow:
    rank: int
    lora: FineTuneMemory

    def share(self, full: FineTuneMemory) -> float:
        """Trainable parameters in percent of the full model's."""
        return 100.0 * self.lora.trainable / full.trainable


@dataclass(frozen=True)
class LoraCounts:
    preset: str
    targets: tuple[str, ...]
    rank: int
    full: FineTuneMemory
    chosen: FineTuneMemory
    table: tuple[RankRow, ...]  # TABLE_RANKS, and the chosen rank when it is not one of them
    curve: tuple[RankRow, ...]  # every rank 1 .. MAX_RANK

    @property
    def saving(self) -> float:
        """How many times fewer parameters are trained."""
        return self.full.trainable / self.chosen.trainable

    @property
    def memory_ratio(self) -> float:
        """LoRA's model states in percent of full fine-tuning's."""
        return 100.0 * self.chosen.total / self.full.total


def counts(preset: str, targets: tuple[str, ...], rank: int) -> LoraCounts:
    cfg = REAL_MODELS[preset].cfg
    curve = tuple(RankRow(r, lora_memory(cfg, targets, r)) for r in range(1, MAX_RANK + 1))
    table = tuple(row for row in curve if row.rank in TABLE_RANKS or row.rank == rank)
    return LoraCounts(preset, check_targets(cfg, targets), rank, full_finetune_memory(cfg),
                      lora_memory(cfg, targets, rank), table, curve)


def run_lora(settings: LoraSettings) -> Outcome[LoraSettings, LoraCounts]:
    """The counts for ``settings`` (never raises for bad input: a bad value falls back, with a sentence)."""
    return run_lab(settings, lambda s: counts(s.preset, s.targets, s.rank), nearest)


# ---- the fine-tune -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answers:
    prompts: tuple[str, ...]
    texts: tuple[str, ...]


@dataclass(frozen=True)
class LoraStep:
    """One item of the run: 'before' (held-out answers of the base model), 'train' (update ``step``), 'after' (the
    adapted model's answers, the adapter's size, the optimizer's measured state)."""

    phase: str
    step: int
    loss: float | None = None  # the batch's masked SFT loss before this update
    lr: float | None = None
    grad_norm: float | None = None
    elapsed_s: float = 0.0
    answers: Answers | None = None
    adapter_bytes: int | None = None  # the adapter saved as safetensors, header included
    optimizer_bytes: int | None = None  # AdamW's m and v as held in memory
    merge_diff: float | None = None  # max |logit, B·A merged into W − logit with the adapter| on a held-out prompt
    logit_scale: float | None = None  # max |logit| there: what that difference is small against


@dataclass(frozen=True)
class TrainingSet:
    """The instruction set tokenized for one model: what it trains on and the held-out prompts it answers."""

    examples: tuple[ChatTokens, ...]
    heldout_ids: tuple[tuple[int, ...], ...]
    heldout_prompts: tuple[str, ...]
    chat: bool  # the chat template (SmolLM2), else plain '问：…\n答：' text


# the SFT tab's plain format (explorer.sft.plain_tokens), for a model without a chat template
PLAIN_HEAD = {"zh": "问：{}\n答：", "en": "Q: {}\nA: "}


def _plain(tok, ex) -> ChatTokens | None:
    """'问：…\n答：…' for a model without a chat template, the answer's tokens counted; None when the model's
    tokenizer cannot write it (a character tokenizer knows only its own corpus's characters)."""
    inner = getattr(tok, "inner", None)
    prefix = PLAIN_HEAD[ex.lang].format(ex.prompt)
    if inner is not None and hasattr(inner, "unknown") and inner.unknown(prefix + ex.answer):
        return None
    head, answer = tok.encode(prefix), tok.encode(ex.answer)
    ids = tuple(head) + tuple(answer)
    return ChatTokens(prefix + ex.answer, ids, (), (False,) * len(head) + (True,) * len(answer),
                      ((len(prefix), len(prefix) + len(ex.answer)),))


def training_set(base, lang: str) -> TrainingSet:
    """Every training pair (both languages) the model can read and that fits its context; the held-out prompts in
    the page's language. ValueError (a sentence) when too few pairs are left to train on."""
    data = instruction_set()
    chat = bool(getattr(base, "supports_chat", False))
    tok, context = base.tokenizer, base.model.cfg.max_seq_len
    made = [chat_tokens(tok, ex.messages()) if chat else _plain(tok, ex) for ex in data.train]
    examples = tuple(e for e in made if e is not None and len(e.ids) <= context and any(e.in_loss[1:]))
    if len(examples) < BATCH:
        raise ValueError(Msg("posttraining_lora.too_few_examples", n=len(examples), total=len(data.train)))
    heldout, ids = [], []
    for ex in [ex for ex in data.heldout if ex.lang == lang] + [ex for ex in data.heldout if ex.lang != lang]:
        prompt = tok.chat_ids(ex.prompt) if chat else _plain(tok, dataclasses.replace(ex, answer=""))
        if prompt is None:
            continue
        prompt = tuple(prompt) if chat else prompt.ids
        if len(prompt) + MAX_NEW_TOKENS <= context:
            heldout.append(ex.prompt)
            ids.append(prompt)
    return TrainingSet(examples, tuple(ids[:HELDOUT]), tuple(heldout[:HELDOUT]), chat)


_before_lock = threading.Lock()
_before: dict[tuple, tuple] = {}  # (id of the base model, held-out prompts) -> (the model, weakly; its answers)
KEEP_BEFORE = 16  # the shared SmolLM2's, and the last few trained models'; an id is checked against its model


class LoraTrainer:
    """LoRA on a private view of ``base.model`` (explorer.lora.lora_model: the shared weights are read, never
    written), trained with explorer.optim.AdamW on the masked SFT loss, BATCH conversations per update."""

    def __init__(self, base, data: TrainingSet, settings: LoraSettings):
        self.base, self.data, self.settings = base, data, settings
        self.lrs = schedule(settings.lr, settings.steps, warmup=0, min_ratio=0.1)
        self.stop_ids = tuple(getattr(base, "eos_token_ids", ()) or ())
        self.adapted = None  # the LoraModel once training started (the page reads its counts)

    @property
    def total(self) -> int:
        """Items ``steps()`` yields: the answers before, one per update, the answers after."""
        return self.settings.steps + 2

    def _answers(self, model) -> Answers:
        texts = []
        for ids in self.data.heldout_ids:
            out = greedy_answer(model, ids, self.stop_ids, MAX_NEW_TOKENS, background=True)
            texts.append(self.base.tokenizer.decode(out, skip_special_tokens=True).strip())
        return Answers(self.data.heldout_prompts, tuple(texts))

    def _batches(self) -> Iterator[list[ChatTokens]]:
        order = torch.randperm(len(self.data.examples), generator=torch.Generator().manual_seed(self.settings.seed))
        order = order.tolist()
        while True:
            for i in range(0, len(order) - BATCH + 1, BATCH):
                yield [self.data.examples[j] for j in order[i:i + BATCH]]

    def steps(self) -> Iterator[LoraStep]:
        s = self.settings
        model = self.base.model
        key = (id(model), self.data.heldout_ids)
        with _before_lock:
            ref, before = _before.get(key, (None, None))
        if ref is None or ref() is not model:  # the base's answers are the same for every run: computed once
            before = self._answers(model)
            with _before_lock:
                _before[key] = (weakref.ref(model), before)
                while len(_before) > KEEP_BEFORE:
                    del _before[next(iter(_before))]
        yield LoraStep("before", 0, answers=before)
        lm = lora_model(self.base.model, s.targets, s.rank, float(s.alpha), s.dropout, s.seed)
        self.adapted = lm
        lm.model.train()
        params = lm.parameters()
        opt = AdamW(params, lr=s.lr, weight_decay=0.0)
        batches, start, device = self._batches(), time.monotonic(), lm.model.device
        for step in range(s.steps):
            rows = next(batches)
            width = max(len(r.ids) for r in rows)
            # right-padded: under the causal mask a real token never sees the padding after it, and the padding is
            # never a target
            ids = torch.tensor([list(r.ids) + [0] * (width - len(r.ids)) for r in rows], device=device)
            labels = torch.tensor([r.labels + [-100] * (width - len(r.ids)) for r in rows], device=device)
            for group in opt.param_groups:
                group["lr"] = self.lrs[step]
            loss = masked_loss(lm.model(ids), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _, norm = grouped_grad_norms({"lora": params}, CLIP)
            opt.step()
            yield LoraStep("train", step + 1, float(loss.detach()), self.lrs[step], norm, time.monotonic() - start)
        lm.model.eval()
        state_bytes = sum(t.numel() * t.element_size() for st in opt.state.values()
                          for t in st.values() if isinstance(t, torch.Tensor))
        del opt
        adapter = safetensors_bytes({k: v.contiguous() for k, v in lm.state_dict().items()})
        with torch.no_grad():
            answers = self._answers(lm.model)
            probe = self.data.heldout_ids[0] if self.data.heldout_ids else self.data.examples[0].ids
            diff, scale = merge_check(lm, probe)
        yield LoraStep("after", s.steps, answers=answers, adapter_bytes=len(adapter), optimizer_bytes=state_bytes,
                       merge_diff=diff, logit_scale=scale)


@torch.no_grad()
def merge_check(lm, ids) -> tuple[float, float]:
    """W + (α/r)·B·A in place of the adapter: the largest change of a logit on ``ids``, and the largest logit.
    Only float32 rounding separates them ((W + ΔW) x and W x + ΔW x are the same sums, grouped otherwise)."""
    tokens = torch.tensor([list(ids)], device=lm.model.device)
    adapter = lm.model(tokens)
    lm.merge()
    try:
        merged = lm.model(tokens)
    finally:
        lm.unmerge()
    return float((merged - adapter).abs().max()), float(adapter.abs().max())


def lora_trainer(settings: LoraSettings, base, lang: str) -> Outcome[LoraSettings, LoraTrainer]:
    """A trainer for ``settings`` on ``base`` (a loaded model: ``.model``, ``.tokenizer``); its targets are checked
    against the base's own config (a tiny GELU model has no gate)."""
    def validate(s: LoraSettings) -> None:
        s.validate()
        _check_targets(base.model.cfg, s.targets, getattr(base, "title", s.model))

    def fits(s: LoraSettings) -> LoraSettings:
        used = nearest(s)
        kept = tuple(t for t in used.targets if t != "gate" or base.model.cfg.activation == "swiglu")
        return dataclasses.replace(used, targets=kept or LoraSettings().targets)

    try:
        with priority.interactive():
            data = training_set(base, lang)
    except ValueError as err:
        return Outcome(settings, None, sentence_of(err))
    return run_lab(settings, lambda s: LoraTrainer(base, data, s), fits, validate=validate)


def expected_optimizer_bytes(trainer: LoraTrainer) -> int:
    """What the formula says the run's AdamW holds: 8 bytes per trainable float32 parameter."""
    return adamw_fp32_state_bytes(trainer.adapted.trainable) if trainer.adapted is not None else 0


def adapter_share(adapter_bytes: int, n_params: int, bytes_per_param: int = 4) -> float:
    """The adapter's file in percent of the model's float32 weights."""
    return 100.0 * adapter_bytes / (n_params * bytes_per_param)


def base_param_count(base) -> int:
    return sum(p.numel() for p in base.model.parameters())


"""Supervised fine-tuning (SFT) on a chat model: which tokens the loss counts, and a short full fine-tune.

A conversation is rendered with the model's own chat template (SmolLM2's ChatML: ``<|im_start|>role\\n...<|im_end|>``)
and tokenized as the model reads it. SFT trains on the same next-token cross-entropy as pre-training, but counts it
only where the target token belongs to an assistant's answer, its end-of-turn token ``<|im_end|>`` included (the
model must learn to stop); the system prompt, the user's words and the role headers are context, labelled
``IGNORE_INDEX`` (-100, what torch's ``F.cross_entropy(ignore_index=-100)`` and Hugging Face trainers skip).

The answers' spans are found in the rendered text: the template rendered up to an assistant turn with the
generation prompt marks where its answer starts, and the first end-of-turn token after it where it ends.

The instruction set (assets/posttraining/instructions.json) is the app's own, bilingual, with held-out prompts the
fine-tune never sees.
"""
from __future__ import annotations

import copy
import json
import math
import random
import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import torch

from . import priority
from .model import KVCache, Transformer
from .optim import AdamW, grouped_grad_norms, schedule

INSTRUCTIONS = Path(__file__).resolve().parent.parent / "assets" / "posttraining" / "instructions.json"
IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")


# ---- the instruction set -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    lang: str  # "zh" or "en": the language of the pair
    kind: str  # definition, arithmetic, translation, poem
    prompt: str
    answer: str

    def messages(self) -> tuple[dict[str, str], ...]:
        return ({"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.answer})


@dataclass(frozen=True)
class InstructionSet:
    train: tuple[Example, ...]
    heldout: tuple[Example, ...]


@lru_cache(maxsize=1)
def instruction_set(path: Path = INSTRUCTIONS) -> InstructionSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    read = lambda rows: tuple(Example(r["lang"], r["kind"], r["prompt"], r["answer"]) for r in rows)  # noqa: E731
    return InstructionSet(read(data["train"]), read(data["heldout"]))


# ---- one conversation, token by token ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChatTokens:
    """A conversation as the model reads it: ``in_loss[i]`` is True where token i is a target SFT trains on."""

    text: str  # what the chat template wrote
    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]  # each token's characters in ``text``
    in_loss: tuple[bool, ...]
    answer_spans: tuple[tuple[int, int], ...]  # characters of each assistant answer, its end-of-turn token included

    @property
    def labels(self) -> list[int]:
        """The training labels, one per token: the token's id where it counts, IGNORE_INDEX elsewhere."""
        return [i if keep else IGNORE_INDEX for i, keep in zip(self.ids, self.in_loss)]


def _render(tok, messages: Sequence[dict[str, str]], *, generation_prompt: bool) -> str:
    return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def answer_spans(tokenizer, messages: Sequence[dict[str, str]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The rendered conversation and the characters of each assistant answer in it: from where the template's
    generation prompt ends to the end of the end-of-turn token that closes the answer."""
    with tokenizer.locked() as tok:
        text = _render(tok, messages, generation_prompt=False)
        end_of_turn = tok.eos_token
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(_render(tok, messages[:i], generation_prompt=True))
            through = _render(tok, messages[: i + 1], generation_prompt=False)
            if not text.startswith(through) or not through.startswith(text[:start]):
                raise ValueError("the chat template does not render a conversation as the sum of its turns")
            end = through.index(end_of_turn, start + len(message["content"])) + len(end_of_turn)
            spans.append((start, end))
    return text, tuple(spans)


def chat_tokens(tokenizer, messages: Sequence[dict[str, str]]) -> ChatTokens:
    """Tokenize ``messages`` with the chat template and mark the tokens inside an assistant answer."""
    text, spans = answer_spans(tokenizer, messages)
    pieces = tokenizer.pieces(text)  # the template writes every special token itself
    ids, offsets = tuple(pieces.ids), tuple(tuple(o) for o in pieces.offsets)
    in_loss = []
    for a, b in offsets:
        inside = any(s <= a and b <= e for s, e in spans)
        if not inside and any(a < e and s < b for s, e in spans):
            raise ValueError(f"token at characters {a}..{b} straddles an answer's border")
        in_loss.append(inside)
    return ChatTokens(text, ids, offsets, tuple(in_loss), spans)


def plain_tokens(tokenizer, example: Example) -> ChatTokens:
    """A model without a chat template: '问：…\\n答：…' (or 'Q: …\\nA: …') in plain text, the answer counted."""
    head = "问：{}\n答：" if example.lang == "zh" else "Q: {}\nA: "
    prefix = head.format(example.prompt)
    text = prefix + example.answer
    pieces = tokenizer.pieces(text)
    offsets = tuple(tuple(o) for o in pieces.offsets)
    in_loss = tuple(a >= len(prefix) for a, _ in offsets)
    return ChatTokens(text, tuple(pieces.ids), offsets, in_loss, ((len(prefix), len(text)),))


# ---- the loss, with and without the mask --------------------------------------------------------------------------

def token_losses(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(B, T) cross-entropy of each token given the ones before it, -log p(ids[t] | ids[:t]); NaN at t = 0, which
    nothing predicts."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.cat([torch.full_like(nll[:, :1], math.nan), nll], dim=1)


def masked_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SFT's loss: the mean cross-entropy over the targets whose label is not IGNORE_INDEX (labels (B, T) aligned
    with the tokens; the prediction at t - 1 is scored against labels[t])."""
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    return (nll * keep).sum() / keep.sum().clamp(min=1)


@dataclass(frozen=True)
class LossView:
    """One conversation under a model: each token's cross-entropy and the two averages SFT chooses between."""

    tokens: ChatTokens
    losses: tuple[float, ...]  # NaN for the first token
    masked: float  # mean over the answer's tokens: what SFT minimises
    unmasked: float  # mean over every predicted token: what pre-training would minimise on the same text
    n_counted: int
    n_predicted: int


@torch.no_grad()
def loss_view(model: Transformer, tokens: ChatTokens) -> LossView:
    ids = torch.tensor([tokens.ids], device=model.device)
    logits = model(ids)
    per_token = token_losses(logits, ids)[0]
    labels = torch.tensor([tokens.labels], device=model.device)
    counted = [bool(k) for k in tokens.in_loss[1:]]
    return LossView(tokens, tuple(float(x) for x in per_token), float(masked_loss(logits, labels)),
                    float(per_token[1:].mean()), sum(counted), len(counted))


# ---- greedy answers ------------------------------------------------------------------------------------------------

@torch.no_grad()
def greedy_answer(model: Transformer, prompt_ids: Sequence[int], stop_ids: Sequence[int], max_new_tokens: int,
                  *, background: bool = False) -> list[int]:
    """The most probable continuation, one token at a time with a KV cache, up to a stop token (not returned) or
    ``max_new_tokens``. ``background``: give way to interactive work before each token (explorer.priority)."""
    cache = KVCache(model.cfg.n_layer)
    logits = model(torch.tensor([list(prompt_ids)], device=model.device), kv_cache=cache)
    out: list[int] = []
    for _ in range(max_new_tokens):
        nxt = int(logits[0, -1].argmax())
        if nxt in stop_ids:
            break
        out.append(nxt)
        if len(prompt_ids) + len(out) >= model.cfg.max_seq_len:
            break
        if background:
            priority.yield_to_interactive()
        logits = model(torch.tensor([[nxt]], device=model.device), kv_cache=cache)
    return out


# ---- a short full fine-tune --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    steps: int = 8
    batch: int = 4
    lr: float = 1e-4
    max_new_tokens: int = 24
    seed: int = 0
    clip: float = 1.0
    weight_decay: float = 0.0  # a few steps away from a good model: nothing to regularise toward zero


@dataclass(frozen=True)
class SftStep:
    """One item of the run: ``phase`` 'before' (one held-out prompt answered by the untouched model), 'train' (one
    update: ``step`` 1 .. steps), 'after' (one held-out prompt answered by the fine-tuned model). One answer per
    item, so a Stop or a Pause is heard between two answers, not after all of them."""

    phase: str
    step: int
    loss: float | None = None  # the batch's masked loss before this update
    lr: float | None = None
    grad_norm: float | None = None
    tokens: int = 0  # tokens that counted in this update's loss
    elapsed_s: float = 0.0
    prompt: int | None = None  # 'before' / 'after': which held-out prompt
    answer: str | None = None
    weight_change: float | None = None  # 'after': ‖θ − θ₀‖ / ‖θ₀‖ over every parameter, how far the update moved


_before_lock = threading.Lock()
# The untouched model's answers, the same for every run: computed once per model (held weakly: a model that is
# gone takes its answers with it, and a new one at the same address never reads them).
_before: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, tuple[str, ...]]]" = weakref.WeakKeyDictionary()


class SftTrainer:
    """Full fine-tuning of a copy of ``base`` (a PretrainedModel or a model with ``.model``/``.tokenizer``): every
    parameter trained with AdamW, the masked loss on ``examples``. The shared model is never touched."""

    def __init__(self, base, examples: Sequence[ChatTokens], heldout: Sequence[Sequence[int]],
                 config: TrainConfig = TrainConfig(), *, stop_ids: Sequence[int] = (), decode=None):
        self.base, self.config = base, config
        self.examples, self.heldout = list(examples), [list(h) for h in heldout]
        self.stop_ids, self.decode = tuple(stop_ids), decode
        self.lrs = schedule(config.lr, config.steps, warmup=0, min_ratio=0.1)

    @property
    def total(self) -> int:
        """Items the run yields: each held-out answer twice, and the updates."""
        return self.config.steps + 2 * len(self.heldout)

    def _answer(self, model: Transformer, ids: Sequence[int]) -> str:
        out = greedy_answer(model, ids, self.stop_ids, self.config.max_new_tokens, background=True)
        return self.decode(out) if self.decode else " ".join(map(str, out))

    def _batches(self) -> Iterator[list[ChatTokens]]:
        rng = random.Random(self.config.seed)
        order: list[int] = []
        while True:
            if len(order) < self.config.batch:
                fresh = list(range(len(self.examples)))
                rng.shuffle(fresh)
                order += fresh
            yield [self.examples[i] for i in order[: self.config.batch]]
            del order[: self.config.batch]

    def _before_answers(self) -> Iterator[SftStep]:
        key = (tuple(map(tuple, self.heldout)), self.config.max_new_tokens, self.stop_ids)
        with _before_lock:
            known = _before.get(self.base.model, {}).get(key)
        texts = []
        for i, ids in enumerate(self.heldout):
            texts.append(known[i] if known else self._answer(self.base.model, ids))
            yield SftStep("before", 0, prompt=i, answer=texts[-1])
        with _before_lock:
            _before.setdefault(self.base.model, {})[key] = tuple(texts)

    def steps(self) -> Iterator[SftStep]:
        yield from self._before_answers()
        # Locals only: when the job ends, or is stopped between two items (the generator is closed), the copy and
        # the optimiser's state go with it; a finished run keeps its numbers, not 135M parameters per student.
        model = copy.deepcopy(self.base.model).requires_grad_(True).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        pad = 0
        batches = self._batches()
        start = time.monotonic()
        for step in range(self.config.steps):
            rows = next(batches)
            width = max(len(r.ids) for r in rows)
            # right-padded: under the causal mask a real token never sees the padding after it
            ids = torch.tensor([list(r.ids) + [pad] * (width - len(r.ids)) for r in rows], device=model.device)
            labels = torch.tensor([r.labels + [IGNORE_INDEX] * (width - len(r.ids)) for r in rows],
                                  device=model.device)
            for group in opt.param_groups:
                group["lr"] = self.lrs[step]
            loss = masked_loss(model(ids), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _, norm = grouped_grad_norms({"all": params}, self.config.clip)
            opt.step()
            yield SftStep("train", step + 1, loss.item(), self.lrs[step], norm,
                          int((labels[:, 1:] != IGNORE_INDEX).sum()), time.monotonic() - start)
        model.eval().requires_grad_(False)
        del opt, params  # the optimiser's two moments: twice the model's size, not needed to answer
        change = relative_change(self.base.model, model)
        for i, ids in enumerate(self.heldout):
            yield SftStep("after", self.config.steps, prompt=i, answer=self._answer(model, ids),
                          weight_change=change)


@torch.no_grad()
def relative_change(before: torch.nn.Module, after: torch.nn.Module) -> float:
    """‖θ − θ₀‖ / ‖θ₀‖ over all parameters (a tied matrix counted once, as ``parameters()`` lists it)."""
    moved = total = 0.0
    for p0, p1 in zip(before.parameters(), after.parameters()):
        moved += float((p1 - p0).double().pow(2).sum())
        total += float(p0.double().pow(2).sum())
    return math.sqrt(moved / total) if total else 0.0


"""The post-training lab's SFT tab: one conversation of the instruction set in the model's chat template, which of
its tokens the loss counts, each token's cross-entropy under the model, and the loss with and without the mask; then
a short full fine-tune of a copy of the model on the instruction set (explorer.sft), in the background.

``run_sft`` computes the conversation's view; ``trainer_for`` builds the fine-tune the same settings describe. The
model is an argument: SmolLM2 (a chat template) in the app, any model with ``.model`` and ``.tokenizer`` in a test;
one without a chat template gets the plain '问：…\\n答：…' format, and the outcome says so.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..checks import choice, whole_number
from ..i18n import Msg
from ..models.token_labels import sequence_labels
from ..sft import ChatTokens, Example, LossView, SftTrainer, TrainConfig, chat_tokens, instruction_set, loss_view, \
    plain_tokens
from .outcome import Outcome, run_lab

TURNS = (1, 2)
# Evenly spaced (the page draws them as one slider). Each update is a forward and backward pass of all 135M
# parameters over batch x at most 128 tokens (checked by the tests), plus AdamW over 135M: only a short run fits.
STEPS = (4, 8, 12, 16)
BATCHES = (1, 2, 4)
LRS = (3e-5, 1e-4, 3e-4)
MAX_NEW_TOKENS = 24  # each held-out answer, greedy: enough to see its style, bounded for 8 prompts twice


@dataclass(frozen=True)
class SftSettings:
    example: int = 0  # which pair of the instruction set's training part is shown
    turns: int = 1  # 2: the next pair follows as a second round, to show every answer counts and no question does
    steps: int = 8
    batch: int = 2
    lr: float = 1e-4

    def validate(self) -> None:
        whole_number(Msg("posttraining_sft.name.example"), self.example, 0, len(instruction_set().train) - 1)
        choice(Msg("posttraining_sft.name.turns"), self.turns, TURNS)
        choice(Msg("posttraining_sft.name.steps"), self.steps, STEPS)
        choice(Msg("posttraining_sft.name.batch"), self.batch, BATCHES)
        choice(Msg("posttraining_sft.name.lr"), self.lr, LRS)


def nearest(settings: SftSettings) -> SftSettings:
    default = SftSettings()
    keep = lambda name, ok: getattr(settings, name) if ok else getattr(default, name)  # noqa: E731
    n = len(instruction_set().train)
    return dataclasses.replace(
        settings,
        example=keep("example", isinstance(settings.example, int) and 0 <= settings.example < n),
        turns=keep("turns", settings.turns in TURNS), steps=keep("steps", settings.steps in STEPS),
        batch=keep("batch", settings.batch in BATCHES), lr=keep("lr", settings.lr in LRS))


def conversation(settings: SftSettings) -> tuple[Example, ...]:
    train = instruction_set().train
    return tuple(train[(settings.example + i) % len(train)] for i in range(settings.turns))


def tokens_for(model, examples: tuple[Example, ...]) -> ChatTokens:
    """The examples as one conversation in the model's chat template; without one, the first pair in plain text."""
    if model.tokenizer.supports_chat:
        return chat_tokens(model.tokenizer, [m for e in examples for m in e.messages()])
    return plain_tokens(model.tokenizer, examples[0])


@dataclass(frozen=True)
class SftView:
    examples: tuple[Example, ...]
    view: LossView
    labels: tuple[str, ...]  # each token as the page shows it
    chat: bool  # False: the plain format of a model without a chat template


def run_sft(settings: SftSettings, model) -> Outcome[SftSettings, SftView]:
    """The conversation ``settings`` pick, under ``model``; never raises for bad settings."""
    chat = model.tokenizer.supports_chat

    def compute(used: SftSettings) -> SftView:
        examples = conversation(used)
        tokens = tokens_for(model, examples)
        return SftView(examples, loss_view(model.model, tokens), tuple(sequence_labels(model.tokenizer, tokens.ids)), chat)

    shown = run_lab(settings, compute, nearest)
    if not chat and shown.result is not None:
        shown = dataclasses.replace(shown, fallback=Msg.join(
            [f for f in (shown.fallback, Msg("posttraining_sft.plain_format")) if f]))
    return shown


def trainer_for(settings: SftSettings, model) -> SftTrainer:
    """The fine-tune of a copy of ``model`` on the whole training part, answering the held-out prompts before and
    after (settings already checked: the page trains what it shows)."""
    data = instruction_set()
    examples = [tokens_for(model, (e,)) for e in data.train]
    if model.tokenizer.supports_chat:
        heldout = [model.tokenizer.chat_ids(e.prompt) for e in data.heldout]
    else:
        heldout = [list(plain_tokens(model.tokenizer, dataclasses.replace(e, answer="")).ids) for e in data.heldout]
    stop = tuple(getattr(model, "eos_token_ids", ()) or ())
    config = TrainConfig(steps=settings.steps, batch=settings.batch, lr=settings.lr, max_new_tokens=MAX_NEW_TOKENS)
    return SftTrainer(model, examples, heldout, config, stop_ids=stop,
                      decode=lambda ids: model.tokenizer.decode(ids, skip_special_tokens=True))

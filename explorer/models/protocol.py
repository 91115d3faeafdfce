"""What a loaded model offers a lab, named once: a real model (explorer.models.pretrained.PretrainedModel) and a tiny
one (explorer.models.tiny.TinyModel) both fit, and a lab that takes a model is typed with it: its config, its
model, its tokenizer, and text to ids (``encode``), ids to text (``decode``) and ids to labels (``token_labels``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import torch

from ..config import ModelConfig
from ..model import Transformer
from .token_labels import sequence_labels


@runtime_checkable
class ModelTokenizer(Protocol):
    """Text to ids and back, and a readable label per token; safe to call from several sessions at once."""

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...
    def chat_ids(self, user: str) -> list[int]: ...
    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str: ...
    def token_bytes(self, ids: Sequence[int]) -> list[bytes | None]: ...  # None: a token that is not bytes
    def token_labels(self, ids: Sequence[int]) -> list[str]:
        """One axis label per token; a token that is only part of a character shows its bytes, as
        explorer.models.token_labels.byte_label writes them ('‹E4 BB›')."""
        ...


@dataclass(frozen=True)
class Encoded:
    """A tokenized, length-checked text."""

    ids: list[int]
    labels: list[str]
    truncated: bool  # True when the text was longer than the cap and its end was cut off
    n_original: int  # token count before the cap

    def ids_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor([self.ids], dtype=torch.long, device=device)  # (1, T)


@runtime_checkable
class LoadedModel(Protocol):
    """A model shared read-only by every session: a lab reads it and runs it, never writes onto it."""

    name: str
    title: str
    model: Transformer  # eval mode, on ``device``
    tokenizer: ModelTokenizer
    config: ModelConfig
    eos_token_ids: tuple[int, ...]  # generation stops at any of these (empty for an encoder)

    @property
    def supports_chat(self) -> bool: ...

    @property
    def device(self) -> torch.device: ...

    def encode(self, text: str, *, chat: bool = False, max_tokens: int | None = None) -> Encoded: ...
    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str: ...
    def token_labels(self, ids: Sequence[int]) -> list[str]: ...


class TextMethods:
    """``encode`` / ``decode`` / ``token_labels`` of a LoadedModel, written once on top of its ``tokenizer``,
    ``config``, ``title`` and ``supports_chat``: the real and the tiny models inherit them."""

    def encode(self, text: str, *, chat: bool = False, max_tokens: int | None = None) -> Encoded:
        """Tokenize ``text`` (as a chat prompt when ``chat``), keeping at most ``max_tokens`` tokens."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("Type some text first: the model needs at least one word to read.")
        if chat and not self.supports_chat:
            raise ValueError(f"{self.title} is not a chat model, so it has no chat format.")
        ids = self.tokenizer.chat_ids(text) if chat else self.tokenizer.encode(text)
        cap = min(self.config.max_seq_len, max_tokens or self.config.max_seq_len)
        n = len(ids)
        if n > cap:
            ids = ids[:cap - 1] + [ids[-1]] if self.config.arch == "encoder" else ids[:cap]  # BERT keeps [SEP]
        # Labelled as one text: a character split over tokens is named in each part ('气₁/₂'), not shown as bytes.
        return Encoded(ids=ids, labels=sequence_labels(self.tokenizer, ids), truncated=n > cap, n_original=n)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.token_labels(ids)

"""What a loaded model offers a lab, named once: a real model (explorer.models.pretrained.PretrainedModel) and a tiny
one (explorer.models.tiny.TinyModel) both fit, and a lab that takes a model is typed with it."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch

from ..config import ModelConfig
from ..model import Transformer


@runtime_checkable
class ModelTokenizer(Protocol):
    """Text to ids and back, and a readable label per token; safe to call from several sessions at once."""

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...
    def chat_ids(self, user: str) -> list[int]: ...
    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str: ...
    def token_labels(self, ids: Sequence[int]) -> list[str]: ...


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

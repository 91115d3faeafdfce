"""The core's tiny teaching presets as text generators: random weights and a byte-level tokenizer.

Their output is gibberish, and that is the lesson: the architecture alone knows nothing about language; every bit
of fluency in a real model comes from its trained weights. The weights are drawn from a fixed seed by a generator
of their own (torch's global random state is never touched, so loading one disturbs nobody's random numbers) and
every load gives the same model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..config import PRESETS, ModelConfig
from ..model import Transformer
from .protocol import TextMethods
from .token_labels import byte_label, visible

TINY_DECODERS = tuple(name for name, cfg in PRESETS.items() if cfg.arch == "decoder")


class ByteTokenizer:
    """UTF-8 bytes as tokens: 256 ids, nothing to learn, thread-safe (no state). A Chinese character is 3 tokens."""

    supports_chat = False
    eos_token_id: int | None = None
    vocab_size = 256

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(text.encode("utf-8"))

    def chat_ids(self, user: str) -> list[int]:
        raise ValueError("This model has no chat template (it was never fine-tuned to chat): use plain completion.")

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, ids: Sequence[int]) -> list[bytes]:
        return [bytes([int(i)]) for i in ids]

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        # An ASCII character shows as itself (blanks made visible); a control character or one byte of a multi-byte
        # character shows its byte.
        return [visible(chr(b)) if b < 128 and (chr(b).isprintable() or chr(b) in "\n\t") else byte_label(bytes([b]))
                for b in map(int, ids)]


@dataclass(frozen=True)
class TinyModel(TextMethods):
    """An ``explorer.models.LoadedModel``, as the real models are."""

    name: str
    title: str
    model: Transformer
    tokenizer: ByteTokenizer
    config: ModelConfig
    eos_token_ids: tuple[int, ...] = ()

    @property
    def supports_chat(self) -> bool:
        return False

    @property
    def device(self) -> torch.device:
        return self.model.device


def load_tiny(name: str, seed: int = 0, device: torch.device | str | None = None) -> TinyModel:
    """One of the decoder presets with random (GPT-2-style initialised) weights, in eval mode."""
    if name not in TINY_DECODERS:
        raise ValueError(f"Unknown tiny model {name!r}; choose one of {', '.join(TINY_DECODERS)}.")
    cfg = PRESETS[name]
    # Shared read-only by every session of the app (explorer.ui.generation): nothing may write to it.
    model = Transformer.from_seed(cfg, seed).to(device or "cpu").eval().requires_grad_(False)
    title = f"{name} (random weights, {cfg.n_layer} layers x {cfg.n_head} heads, bytes as tokens)"
    return TinyModel(name=name, title=title, model=model, tokenizer=ByteTokenizer(), config=cfg)

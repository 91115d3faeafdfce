"""The course's 评测指标 (evaluation metrics), written out so every intermediate number can be shown: perplexity of a
causal language model on a text, BLEU (Papineni et al. 2002) and ROUGE-1/2/L (Lin 2004).

Perplexity. A causal model gives every token after the first a probability from the tokens before it; the
cross-entropy of token t is CE_t = -ln p(x_t | x_<t) (nats), and perplexity = exp(mean CE) over the scored tokens.
The first token has nothing before it and is never scored. A text longer than the model's context is read with a
sliding window (the method of Hugging Face's "Perplexity of fixed-length models" guide): windows of ``window``
tokens start every ``stride`` tokens, and each window scores only the tokens that no earlier window scored, so every
token is scored exactly once, with at least ``window - stride`` tokens of context once the first window is past.
With ``stride == window`` the windows do not overlap and the first token of each window has no context inside it:
it is left unscored, as that guide's loop leaves it.

BLEU. For n = 1..4, the modified n-gram precision p_n = (clipped matches) / (n-grams of the hypothesis), where an
n-gram's matches are clipped to the most times it occurs in any one reference; the brevity penalty
BP = exp(1 - r/c) when the hypothesis length c is below the reference length r (the reference length closest to c,
the shorter on a tie), else 1; BLEU = BP * exp(mean ln p_n). Corpus BLEU adds the counts and lengths of all the
sentences before dividing, so it is not the mean of the sentence BLEUs. The smoothing methods keep sacrebleu's
names and values (Chen & Cherry 2014): ``none``; ``floor`` (a zero count becomes 0.1); ``add-k`` (k = 1 added to
the matches and the totals of n >= 2); ``exp`` (the k-th zero precision becomes 1 / (2^k * total)). Sentence BLEU
uses the effective order, as sacrebleu's ``sentence_bleu`` does: orders longer than the hypothesis are left out
of the mean instead of making it zero.

Tokens. BLEU splits text as sacrebleu does: with its ``13a`` tokenizer (mteval-v13a, the WMT standard:
punctuation apart, a period or comma inside a number kept) for text without CJK characters, and with its ``zh``
tokenizer as soon as a text has one: every CJK character is a token of its own (Chinese is written without spaces;
a word segmenter would make the score depend on the segmenter), the rest split by the same rules. ROUGE splits as
rouge-score does (lowercase, anything but a-z and 0-9 is a separator, no stemming) with, again, every CJK character a
token of its own: rouge-score alone would drop Chinese text entirely.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .model import Transformer

MAX_ORDER = 4  # BLEU-4, the order every MT paper reports
SMOOTHING = ("exp", "floor", "add-k", "none")  # sacrebleu's names
SMOOTH_VALUE = {"floor": 0.1, "add-k": 1.0}  # sacrebleu's defaults
TOKENIZERS = ("13a", "zh")  # sacrebleu's names

# sacrebleu's zh tokenizer: the characters it splits off one by one. Its table writes CJK Extension B as
# '\u20000'..'\u2a6d6', which Python reads as U+2000 followed by '0' (and U+2A6D followed by '6'); compared as
# strings that range is U+2001..U+2A6D: general punctuation (— “ ” …), arrows and maths symbols are split off
# too, and Extension B itself (U+20000 and up) is not. The same holds for '\u2f800'..'\u2fa1d'. We follow what it
# does, since its scores are the ones papers report.
_CJK_RANGES = (
    (0x3400, 0x4DB5), (0x4E00, 0x9FA5), (0x9FA6, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A), (0xFA70, 0xFAD9),
    (0x2001, 0x2A6D), (0x2F81, 0x2FA1), (0xFF00, 0xFFEF), (0x2E80, 0x2EFF), (0x3000, 0x303F), (0x31C0, 0x31EF),
    (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF), (0x3100, 0x312F), (0x31A0, 0x31BF), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F),
    (0x2600, 0x26FF), (0x2700, 0x27BF), (0x3200, 0x32FF), (0x3300, 0x33FF),
)
# mteval-v13a's rules, in order: ASCII punctuation and symbols apart; a period or comma apart unless it sits
# between digits (3.14, 1,000); a dash after a digit apart.
_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)
_ROUGE_SEPARATORS = re.compile(r"[^a-z0-9]+")


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def has_cjk(text: str) -> bool:
    return any(is_cjk(c) for c in text)


def bleu_tokens(text: str, tokenize: str = "13a") -> list[str]:
    """``text`` as BLEU counts it with sacrebleu's tokenizer ``tokenize``: ``13a`` (mteval-v13a, the WMT standard)
    or ``zh`` (every CJK character apart, then the same rules without 13a's unescaping and padding: a text's
    leading ",5" or trailing "3." stays whole under ``zh``, as sacrebleu leaves it)."""
    if tokenize not in TOKENIZERS:
        raise ValueError(f"tokenize is one of {', '.join(TOKENIZERS)}, not {tokenize!r}")
    if tokenize == "zh":
        line = "".join(f" {c} " if is_cjk(c) else c for c in text.strip())
    else:
        line = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
        if "&" in line:  # mteval reads its input as escaped XML text
            line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def bleu_tokenizer(*texts: str) -> str:
    """The tokenizer BLEU is computed with: ``zh`` when any of the texts has a CJK character, else ``13a``, as an
    MT evaluation picks sacrebleu's tokenizer by the target language."""
    return "zh" if any(has_cjk(t) for t in texts) else "13a"


def rouge_tokens(text: str) -> list[str]:
    """``text`` as ROUGE counts it: lowercase words of a-z and 0-9, and CJK characters one by one."""
    spaced = "".join(f" {c} " if is_cjk(c) else c for c in text.lower())
    tokens = []
    for piece in spaced.split():
        if len(piece) == 1 and is_cjk(piece):
            if piece.isalnum():  # a Chinese character; CJK punctuation (，。) is a separator, as ASCII's is
                tokens.append(piece)
        else:
            tokens.extend(w for w in _ROUGE_SEPARATORS.split(piece) if w)
    return tokens


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


# ---- perplexity ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Perplexity:
    """The per-token cross-entropy of one text under one model, and how the windows read it."""

    ids: tuple[int, ...]
    losses: np.ndarray  # (T,) float64, nats; NaN where a token was not scored (the first; a window's first)
    context: np.ndarray  # (T,) int: how many tokens of context the model had for each token
    window: int
    stride: int
    n_windows: int
    n_original: int  # tokens of the text before the cap (``len(ids)`` when nothing was cut)

    @property
    def n_scored(self) -> int:
        return int(np.isfinite(self.losses).sum())

    @property
    def mean_loss(self) -> float:
        """Mean cross-entropy in nats over the scored tokens (NaN when none is)."""
        return float(np.nanmean(self.losses)) if self.n_scored else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_loss) if self.n_scored else math.nan

    @property
    def truncated(self) -> bool:
        return self.n_original > len(self.ids)


def windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored) of each window over ``n_tokens`` tokens: the tokens [first, end) are scored by the
    window [begin, end)."""
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be from 1 to window ({window}), not {stride}")
    out, begin, scored_to = [], 0, 1
    while True:
        end = min(begin + window, n_tokens)
        out.append((begin, end, max(scored_to, begin + 1)))
        scored_to = end
        if end >= n_tokens:
            return out
        begin += stride


@torch.no_grad()
def perplexity(model: Transformer, ids: Sequence[int], window: int, stride: int,
               n_original: int | None = None) -> Perplexity:
    """Cross-entropy of every token of ``ids`` given the tokens before it (within its window), on ``model``."""
    ids = tuple(int(i) for i in ids)
    n = len(ids)
    losses = np.full(n, np.nan)
    context = np.zeros(n, dtype=np.int64)
    spans = windows(n, window, stride) if n > 1 else []
    device = next(model.parameters()).device
    for begin, end, first in spans:
        if first >= end:
            continue
        tokens = torch.tensor([ids[begin:end]], device=device)
        logits = model(tokens)[0].float()  # (L, vocab)
        targets = torch.arange(first, end, device=device)
        ce = F.cross_entropy(logits[targets - begin - 1], tokens[0, targets - begin], reduction="none")
        losses[first:end] = ce.double().cpu().numpy()
        context[first:end] = np.arange(first, end) - begin
    return Perplexity(ids, losses, context, window, stride, len(spans), n if n_original is None else n_original)


# ---- BLEU ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NgramCount:
    """One n-gram of the hypothesis: how often it occurs there, the most times in any one reference, and the
    matches it is credited with (the smaller of the two)."""

    ngram: tuple[str, ...]
    in_hypothesis: int
    in_reference: int

    @property
    def clipped(self) -> int:
        return min(self.in_hypothesis, self.in_reference)


@dataclass(frozen=True)
class BleuCounts:
    """The sufficient statistics of BLEU for one sentence (or, summed, a corpus)."""

    matches: tuple[int, ...]  # clipped matches, n = 1..MAX_ORDER
    totals: tuple[int, ...]  # n-grams of the hypothesis, n = 1..MAX_ORDER
    hyp_len: int
    ref_len: int  # the reference length BLEU compares with (closest to hyp_len)

    def __add__(self, other: "BleuCounts") -> "BleuCounts":
        return BleuCounts(tuple(a + b for a, b in zip(self.matches, other.matches)),
                          tuple(a + b for a, b in zip(self.totals, other.totals)),
                          self.hyp_len + other.hyp_len, self.ref_len + other.ref_len)


@dataclass(frozen=True)
class Bleu:
    counts: BleuCounts
    precisions: tuple[float, ...]  # p_n in [0, 1] after smoothing, n = 1..MAX_ORDER (0 past the effective order)
    order: int  # the orders that enter the geometric mean
    brevity_penalty: float
    score: float  # 0..100, as papers and sacrebleu report it
    smooth: str
    tokenize: str = "13a"
    ngrams: tuple[tuple[NgramCount, ...], ...] = ()  # per order, the hypothesis's n-grams (a sentence only)
    hyp_tokens: tuple[str, ...] = ()
    ref_tokens: tuple[tuple[str, ...], ...] = ()


def bleu_counts(hypothesis: str, references: Sequence[str], tokenize: str = "13a"
                ) -> tuple[BleuCounts, tuple[tuple[NgramCount, ...], ...], list[str], list[list[str]]]:
    """The counts of one hypothesis against its references, with each n-gram's own count."""
    hyp = bleu_tokens(hypothesis, tokenize)
    refs = [bleu_tokens(r, tokenize) for r in references]
    per_order = []
    for n in range(1, MAX_ORDER + 1):
        best: Counter = Counter()
        for ref in refs:
            best |= ngrams(ref, n)  # | keeps the larger count: the most times in any one reference
        per_order.append(tuple(NgramCount(g, c, best.get(g, 0)) for g, c in ngrams(hyp, n).items()))
    # the reference length closest to the hypothesis's, the shorter one on a tie
    ref_len = min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1] if refs else 0
    counts = BleuCounts(tuple(sum(g.clipped for g in order) for order in per_order),
                        tuple(max(0, len(hyp) - n + 1) for n in range(1, MAX_ORDER + 1)), len(hyp), ref_len)
    return counts, tuple(per_order), hyp, refs


def bleu_from_counts(counts: BleuCounts, smooth: str = "exp", effective_order: bool = False,
                     tokenize: str = "13a") -> Bleu:
    """BLEU from its counts, smoothed as ``smooth`` says (one of SMOOTHING)."""
    if smooth not in SMOOTHING:
        raise ValueError(f"smooth is one of {', '.join(SMOOTHING)}, not {smooth!r}")
    matches, totals = list(map(float, counts.matches)), list(map(float, counts.totals))
    precisions = [0.0] * MAX_ORDER
    order, zeros = MAX_ORDER, 0
    c, r = counts.hyp_len, counts.ref_len
    bp = 1.0 if c >= r else (math.exp(1 - r / c) if c > 0 else 0.0)
    if not any(counts.matches):  # nothing in common: smoothing must not invent a score (sacrebleu's rule too)
        return Bleu(counts, tuple(precisions), order, bp, 0.0, smooth, tokenize)
    for n in range(MAX_ORDER):
        if smooth == "add-k" and n > 0:
            matches[n] += SMOOTH_VALUE["add-k"]
            totals[n] += SMOOTH_VALUE["add-k"]
        if totals[n] == 0:  # a hypothesis shorter than n tokens has no n-grams at all
            break
        if effective_order:
            order = n + 1
        if matches[n] > 0:
            precisions[n] = matches[n] / totals[n]
        elif smooth == "exp":
            zeros += 1
            precisions[n] = 1.0 / (2 ** zeros * totals[n])
        elif smooth == "floor":
            precisions[n] = SMOOTH_VALUE["floor"] / totals[n]
    used = precisions[:order]
    score = 0.0 if c == 0 or min(used) <= 0 else 100 * bp * math.exp(sum(map(math.log, used)) / order)
    return Bleu(counts, tuple(precisions), order, bp, score, smooth, tokenize)


def sentence_bleu(hypothesis: str, references: Sequence[str], smooth: str = "exp", tokenize: str | None = None
                  ) -> Bleu:
    """BLEU of one hypothesis, with its effective order (as sacrebleu.sentence_bleu), every n-gram's count kept.
    ``tokenize`` None: picked by ``bleu_tokenizer`` from the texts."""
    tokenize = tokenize or bleu_tokenizer(hypothesis, *references)
    counts, per_order, hyp, refs = bleu_counts(hypothesis, references, tokenize)
    score = bleu_from_counts(counts, smooth, effective_order=True, tokenize=tokenize)
    return Bleu(**{**score.__dict__, "ngrams": per_order, "hyp_tokens": tuple(hyp),
                   "ref_tokens": tuple(map(tuple, refs))})


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]], smooth: str = "exp",
                tokenize: str | None = None) -> Bleu:
    """BLEU of a corpus: ``references[i]`` are hypothesis i's references; counts and lengths summed first. One
    tokenizer for the whole corpus (``zh`` as soon as any text has a CJK character, when ``tokenize`` is None)."""
    if len(hypotheses) != len(references):
        raise ValueError("one list of references per hypothesis")
    tokenize = tokenize or bleu_tokenizer(*hypotheses, *(r for refs in references for r in refs))
    total = BleuCounts((0,) * MAX_ORDER, (0,) * MAX_ORDER, 0, 0)
    for hyp, refs in zip(hypotheses, references):
        total = total + bleu_counts(hyp, refs, tokenize)[0]
    return bleu_from_counts(total, smooth, tokenize=tokenize)


# ---- ROUGE -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RougeScore:
    """One ROUGE variant: overlap (matched n-grams, or the LCS length), and the totals it is divided by."""

    name: str  # rouge1, rouge2, rougeL
    overlap: int
    hyp_total: int
    ref_total: int

    @property
    def precision(self) -> float:
        return self.overlap / self.hyp_total if self.hyp_total else 0.0

    @property
    def recall(self) -> float:
        return self.overlap / self.ref_total if self.ref_total else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


@dataclass(frozen=True)
class Rouge:
    scores: tuple[RougeScore, ...]  # rouge1, rouge2, rougeL
    lcs: tuple[str, ...]  # one longest common subsequence (what ROUGE-L counts)
    hyp_tokens: tuple[str, ...]
    ref_tokens: tuple[str, ...]

    def __getitem__(self, name: str) -> RougeScore:
        return next(s for s in self.scores if s.name == name)


def _overlap(hyp: Sequence[str], ref: Sequence[str], n: int) -> RougeScore:
    h, r = ngrams(hyp, n), ngrams(ref, n)
    return RougeScore(f"rouge{n}", sum((h & r).values()), sum(h.values()), sum(r.values()))


def longest_common_subsequence(a: Sequence[str], b: Sequence[str]) -> list[str]:
    """One longest common subsequence of ``a`` and ``b`` (dynamic programming, O(len(a) * len(b)))."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]  # lists: element access in numpy is slower here
    for i, x in enumerate(a, 1):
        above, row = table[i - 1], table[i]
        for j, y in enumerate(b, 1):
            row[j] = above[j - 1] + 1 if x == y else max(above[j], row[j - 1])
    out, i, j = [], len(a), len(b)
    while i and j:
        if a[i - 1] == b[j - 1]:
            out.append(a[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] >= table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def rouge(hypothesis: str, reference: str) -> Rouge:
    """ROUGE-1, ROUGE-2 and ROUGE-L of ``hypothesis`` against ``reference``."""
    hyp, ref = rouge_tokens(hypothesis), rouge_tokens(reference)
    lcs = longest_common_subsequence(hyp, ref)
    return Rouge((_overlap(hyp, ref, 1), _overlap(hyp, ref, 2), RougeScore("rougeL", len(lcs), len(hyp), len(ref))),
                 tuple(lcs), tuple(hyp), tuple(ref))

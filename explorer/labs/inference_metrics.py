"""The inference lab's "Perplexity and metrics" tab: how a language model and a generated text are scored, with every
intermediate number computed (explorer.metrics) rather than typed.

Perplexity: the model's cross-entropy on every token of a text (the course's own sentences in English and Chinese,
or the student's), and perplexity = exp(mean CE) of that text beside the same text with its words shuffled and
the same sentence in the other language. BLEU and ROUGE: a reference and a hypothesis, with the n-gram counts,
clipping, lengths and brevity penalty, and the corpus BLEU of the built-in pairs next to their sentence BLEUs.

The model is SmolLM2-135M-Instruct (its Q4_1 GGUF release dequantized to float32: explorer.models.quantization) or
the student's model from the training lab; the library takes the model as an argument (explorer.models.LoadedModel).
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np

from ..checks import choice, nearest_whole, text_box, whole_number
from ..i18n import Msg
from ..metrics import SMOOTHING, Bleu, Perplexity, Rouge, corpus_bleu, has_cjk, perplexity, rouge, sentence_bleu
from ..models.protocol import LoadedModel
from ..models.token_labels import sequence_labels
from .outcome import Outcome, run_lab

REAL_MODEL = "smollm2-135m"
TRAINED_MODEL = "trained"  # the session's own model from the training lab (explorer.ui.training), never shared
MODELS = (REAL_MODEL, TRAINED_MODEL)
OWN = "own"  # the student's own text or pair, beside the built-in ones

# The course's own sentences: Vaswani et al.'s English, which the notes translate, and the notes' Chinese, which
# is translated here; each language's version of the same sentence, so "another language" is the same content.
EXAMPLES = {
    "attention_en": "An attention function can be described as mapping a query and a set of key-value pairs to an "
                    "output, where the query, keys, values, and output are all vectors.",
    "attention_zh": "注意力函数可以被描述为：将一个查询和一组键值对映射为一个输出，其中查询、键、值以及输出都是向量。",
    "residual_en": "A residual connection adds the input of each sub-layer directly to its output before "
                   "normalization, which keeps the original information and eases the vanishing gradients of deep "
                   "networks.",
    "residual_zh": "残差连接就是把每个子层的输入直接加到子层输出上，再经过归一化，这样既保留了原始信息，又缓解了深层网络的梯度消失问题。",
}
OTHER_LANGUAGE = {"attention_en": "attention_zh", "attention_zh": "attention_en", "residual_en": "residual_zh",
                  "residual_zh": "residual_en"}
# Reference / hypothesis pairs, as a translation or a summary would be scored: the reference from the notes or the
# paper, the hypothesis a shorter, reworded version of it.
PAIRS = {
    "attention_en": ("An attention function can be described as mapping a query and a set of key-value pairs to an "
                     "output.", "The attention function maps a query and a set of key-value pairs to an output."),
    "residual_en": ("The residual connection adds the input of each sub-layer directly to its output.",
                    "A residual connection adds each sub-layer's input to its output."),
    "transformer_en": ("The Transformer relies entirely on attention to capture dependencies between any positions "
                       "of a sequence.", "The Transformer uses only attention to capture dependencies between "
                                         "positions in a sequence."),
    "attention_zh": ("注意力函数可以被描述为将一个查询和一组键值对映射为一个输出。", "注意力函数把一个查询和一组键值对映射到输出。"),
    "residual_zh": ("残差连接就是把每个子层的输入直接加到子层输出上。", "残差连接把子层的输入加到它的输出上。"),
    "transformer_zh": ("Transformer 通过自注意力机制能够直接捕捉序列中任意位置的依赖。", "Transformer 用自注意力直接捕捉序列中各个位置之间的依赖。"),
}
WINDOWS = (16, 32, 64, 128, 256, 512)  # tokens per window; each window is one forward pass
MAX_TEXT_CHARS = 2000  # what the text box holds
MAX_TOKENS = 512  # tokens scored; past them the text is cut, and the page says so
MAX_PAIR_CHARS = 500  # a sentence pair; ROUGE-L's LCS table is (tokens x tokens)
SEED_MAX = 10_000


@dataclass(frozen=True)
class MetricsSettings:
    """The tab's controls: the model and the text it reads, its window and stride; the pair BLEU and ROUGE score
    and BLEU's smoothing. ``text`` is read when ``example`` is OWN, ``reference``/``hypothesis`` when ``pair`` is."""

    model: str = REAL_MODEL
    example: str = "attention_en"
    text: str = ""
    window: int = 256
    stride: int = 128
    seed: int = 0  # the shuffle of the words
    pair: str = "attention_en"
    reference: str = ""
    hypothesis: str = ""
    smooth: str = "exp"

    def validate(self, model: LoadedModel | None = None) -> None:
        """Raise ValueError with a sentence for the student when a control cannot be used; with ``model``, also
        the window against its context length."""
        choice(Msg("inference_metrics.name.model"), self.model, MODELS)
        choice(Msg("inference_metrics.name.example"), self.example, (*EXAMPLES, OWN))
        text_box(Msg("inference_metrics.name.text"), self.text, MAX_TEXT_CHARS)
        if self.example == OWN and not self.text.strip():
            raise ValueError(Msg("inference_metrics.error.empty_text"))
        choice(Msg("inference_metrics.name.window"), self.window, WINDOWS)
        whole_number(Msg("inference_metrics.name.stride"), self.stride, min_stride(self.window), self.window)
        whole_number(Msg("inference_metrics.name.seed"), self.seed, 0, SEED_MAX)
        choice(Msg("inference_metrics.name.pair"), self.pair, (*PAIRS, OWN))
        text_box(Msg("inference_metrics.name.reference"), self.reference, MAX_PAIR_CHARS)
        text_box(Msg("inference_metrics.name.hypothesis"), self.hypothesis, MAX_PAIR_CHARS)
        choice(Msg("inference_metrics.name.smooth"), self.smooth, SMOOTHING)
        if model is not None and self.window > model.config.max_seq_len:
            raise ValueError(Msg("inference_metrics.error.window_too_long", window=self.window,
                                 context=model.config.max_seq_len))

    def scored_text(self) -> str:
        return self.text if self.example == OWN else EXAMPLES[self.example]

    def scored_pair(self) -> tuple[str, str]:
        return (self.reference, self.hypothesis) if self.pair == OWN else PAIRS[self.pair]


def min_stride(window: int) -> int:
    """The smallest stride: every token is then read by at most 8 windows, which bounds the forward passes of one
    text to 8 x MAX_TOKENS tokens."""
    return max(1, window // 8)


def nearest(settings: MetricsSettings, model: LoadedModel | None = None) -> MetricsSettings:
    """Each control at its nearest valid value: a text past the box's size is cut to it, an empty own text or pair
    is replaced by the first example, a window past the model's context is the largest that fits."""
    d = MetricsSettings()
    context = model.config.max_seq_len if model is not None else max(WINDOWS)
    fitting = [w for w in WINDOWS if w <= context] or [min(WINDOWS)]
    if settings.window in fitting:
        window = settings.window
    elif isinstance(settings.window, int) and not isinstance(settings.window, bool) and settings.window > fitting[-1]:
        window = fitting[-1]  # the longest window the model reads
    else:
        window = min(d.window, fitting[-1])
    text = settings.text[:MAX_TEXT_CHARS] if isinstance(settings.text, str) else ""
    example = settings.example if settings.example in (*EXAMPLES, OWN) else d.example
    if example == OWN and not text.strip():
        example = d.example
    cut = lambda s: s[:MAX_PAIR_CHARS] if isinstance(s, str) else ""  # noqa: E731
    return dataclasses.replace(
        settings, model=settings.model if settings.model in MODELS else d.model, example=example, text=text,
        window=window, stride=nearest_whole(settings.stride, min_stride(window), window, window // 2),
        seed=nearest_whole(settings.seed, 0, SEED_MAX, d.seed),
        pair=settings.pair if settings.pair in (*PAIRS, OWN) else d.pair, reference=cut(settings.reference),
        hypothesis=cut(settings.hypothesis), smooth=settings.smooth if settings.smooth in SMOOTHING else d.smooth)


def describe(requested: MetricsSettings, used: MetricsSettings) -> Msg | None:
    """'Showing window = 128, text (cut) instead.': a changed text is named, not quoted (it may be 2,000 characters)."""
    texts = ("text", "reference", "hypothesis")
    changed = [Msg("inference_metrics.fallback.cut", name=Msg(f"inference_metrics.name.{f.name}")) if f.name in texts
               else f"{f.name} = {getattr(used, f.name)}"
               for f in dataclasses.fields(used) if getattr(used, f.name) != getattr(requested, f.name)]
    return Msg("common.showing_instead", fields=Msg.join(changed, sep=", ")) if changed else None


# ---- perplexity ----------------------------------------------------------------------------------------------------

def shuffle_words(text: str, seed: int) -> str:
    """``text`` with its words in a random order (Chinese, written without spaces: its characters), the same
    words and characters, so only the order is lost."""
    rng = random.Random(seed)
    if has_cjk(text):
        chars = [c for c in text if not c.isspace()]
        rng.shuffle(chars)
        return "".join(chars)
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


@dataclass(frozen=True)
class TextPerplexity:
    """One text read by the model: its tokens' labels and losses, and what its tokenizer could not read."""

    text: str
    scored: Perplexity
    labels: tuple[str, ...]
    unknown: tuple[str, ...]  # characters a trained model's tokenizer writes as <unk>


@dataclass(frozen=True)
class ComparedText:
    """A row of the comparison: which text (an example or OWN), fluent or shuffled, and its numbers."""

    example: str
    shuffled: bool
    n_tokens: int
    n_scored: int
    mean_loss: float
    perplexity: float
    n_chars: int  # characters of the text read (spaces included)
    total_loss: float  # summed CE of the scored tokens, nats

    @property
    def loss_per_char(self) -> float:
        """Nats per character: comparable across tokenizers and languages, where a token's loss is not (SmolLM2
        splits a Chinese character into byte pieces whose later pieces are nearly certain)."""
        return self.total_loss / self.n_chars if self.n_chars else float("nan")


def read_text(model: LoadedModel, text: str, window: int, stride: int) -> TextPerplexity:
    """``text``'s per-token cross-entropy on ``model`` (at most MAX_TOKENS tokens, the rest cut)."""
    ids = list(model.tokenizer.encode(text))
    inner = getattr(model.tokenizer, "inner", None)
    unknown = tuple(inner.unknown(text)) if hasattr(inner, "unknown") else ()
    kept = ids[:MAX_TOKENS]
    scored = perplexity(model.model, kept, window, stride, n_original=len(ids))
    return TextPerplexity(text, scored, tuple(sequence_labels(model.tokenizer, kept)), unknown)


def compare_texts(model: LoadedModel, settings: MetricsSettings, read=read_text) -> tuple[ComparedText, ...]:
    """Every built-in text and, when the student typed one, theirs: each fluent and with its words shuffled
    (``read``: read_text, or a page's cached version of it)."""
    names = (*EXAMPLES, OWN) if settings.example == OWN else tuple(EXAMPLES)
    rows = []
    for name in names:
        fluent = settings.text if name == OWN else EXAMPLES[name]
        for shuffled in (False, True):
            text = shuffle_words(fluent, settings.seed) if shuffled else fluent
            read_ = read(model, text, settings.window, settings.stride)
            p = read_.scored
            chars = len(model.tokenizer.decode(p.ids)) if p.truncated else len(text)
            rows.append(ComparedText(name, shuffled, len(p.ids), p.n_scored, p.mean_loss, p.perplexity, chars,
                                     float(np.nansum(p.losses))))
    return tuple(rows)


# ---- BLEU and ROUGE ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairScores:
    reference: str
    hypothesis: str
    bleu: Bleu  # sentence BLEU, with its n-grams
    rouge: Rouge


@dataclass(frozen=True)
class CorpusScores:
    """The built-in pairs of one language: each pair's sentence BLEU, and the corpus BLEU of them all."""

    pairs: tuple[str, ...]
    sentence_scores: tuple[float, ...]
    corpus: Bleu


def score_pair(reference: str, hypothesis: str, smooth: str) -> PairScores:
    return PairScores(reference, hypothesis, sentence_bleu(hypothesis, [reference], smooth), rouge(hypothesis,
                                                                                                    reference))


def corpus_of(chinese: bool, smooth: str) -> CorpusScores:
    names = tuple(name for name, (ref, _) in PAIRS.items() if has_cjk(ref) == chinese)
    refs, hyps = [[PAIRS[n][0]] for n in names], [PAIRS[n][1] for n in names]
    return CorpusScores(names, tuple(sentence_bleu(h, r, smooth).score for h, r in zip(hyps, refs)),
                        corpus_bleu(hyps, refs, smooth))


# ---- the tab -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricsResult:
    text: TextPerplexity
    compared: tuple[ComparedText, ...]
    pair: PairScores
    corpus: CorpusScores


def run_metrics(settings: MetricsSettings, model: LoadedModel, *, read=read_text, compare=compare_texts
                ) -> Outcome[MetricsSettings, MetricsResult]:
    """Everything the tab shows, for ``model`` (the one ``settings.model`` names); never raises for bad input.
    ``read`` and ``compare`` default to this module's functions (a page passes cached ones)."""
    def compute(used: MetricsSettings) -> MetricsResult:
        reference, hypothesis = used.scored_pair()
        return MetricsResult(read(model, used.scored_text(), used.window, used.stride), compare(model, used),
                             score_pair(reference, hypothesis, used.smooth),
                             corpus_of(has_cjk(reference + hypothesis), used.smooth))

    return run_lab(settings, compute, lambda s: nearest(s, model), validate=lambda s: s.validate(model),
                   describe=describe)

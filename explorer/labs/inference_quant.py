"""The inference lab's quantization tab: what 4 bits (or 8, 3, 2) cost in quality and save in memory on SmolLM2.

The baseline is itself quantized: the app's SmolLM2 is the Q4_1 GGUF release dequantized to float32
(explorer.models.quantization), so "fp32" below means those float32 values, and quantizing them again to Q4_1 with
the same blocks of 32 gives them back exactly (every block already holds its minimum at code 0 and its maximum at
code 15). The token embedding, which is also the output layer, stays as the file stores it (Q8_0) in every
quantized format: only the 7 matrices of each of the 30 blocks are quantized here.

Cheap parts, computed on every change: one matrix before and after (:func:`matrix_view`), the whole model's bytes
in each format (:func:`memory_table`, arithmetic on the shapes), and the outliers (:func:`outliers`, once per
process). The expensive part (:func:`evaluate`: quantize all 210 matrices into a copy of the model, the error per
layer, the KL divergence and perplexity on a text, greedy outputs side by side) runs when the student asks for it,
on a copy whose weights are quantize→dequantize ("fake quantization"): the shared model is never written.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import priority
from ..checks import choice, nearest_whole, text_box, whole_number
from ..i18n import Msg
from ..model import KVCache, Transformer
from ..models.protocol import LoadedModel
from ..quant import (
    BITS, GRANULARITIES, Q4_1_BLOCK, SCHEMES, QuantFormat, fake_quantize, q4_1_bytes, quantize, quantized_bytes,
    relative_rms_error,
)
from .outcome import Outcome, run_lab

FORMATS = SCHEMES + ("q4_1",)  # the grid's placement, or GGUF's Q4_1 blocks (4 bits, groups of 32, min scheme)
GROUP_SIZES = (16, 32, 64, 128, 256)
# a block's matrices, by the names a link carries (?matrix=down), and where each lives in explorer.model.Block
MATRIX_PATHS = {"q": "attn.W_q", "k": "attn.W_k", "v": "attn.W_v", "o": "attn.W_o", "gate": "mlp.W_gate",
                "up": "mlp.W_in", "down": "mlp.W_out"}
MATRICES = tuple(MATRIX_PATHS)
MAX_TEXT_CHARS = 2000
MAX_TEXT_TOKENS = 160  # two forward passes of this many tokens: about a second on two cores
MAX_PROMPT_CHARS = 300
MAX_NEW_TOKENS = 48
HISTOGRAM_BINS = 241
Q8_0_BYTES_PER_32 = 34  # the shipped embedding's type: a float16 scale and 32 int8 codes per block
OUTLIER_BITS = 4
DEFAULT_TEXT = ("The Transformer reads a sentence all at once. Each token looks at the others through attention, "
                "and a small feed-forward network then updates every token on its own. Stacking many such layers "
                "gives a model that can continue a text, answer a question or translate a sentence.")
DEFAULT_PROMPT = "What is the capital of France?"


@dataclass(frozen=True)
class QuantSettings:
    """The tab's controls: the format (scheme or ``q4_1``), its bits, granularity and group size; the matrix shown;
    the text scored and the prompt continued greedily (only used when the student asks for the whole model)."""

    format: str = "symmetric"
    bits: int = 4
    granularity: str = "group"
    group_size: int = 32
    layer: int = 0
    matrix: str = "down"
    text: str = DEFAULT_TEXT
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = 24

    def validate(self, n_layer: int = 30) -> None:
        """Raise ValueError with a sentence for the student when a control cannot be used."""
        choice(Msg("inference_quant.name.format"), self.format, FORMATS)
        choice(Msg("inference_quant.name.bits"), self.bits, BITS)
        choice(Msg("inference_quant.name.granularity"), self.granularity, GRANULARITIES)
        choice(Msg("inference_quant.name.group_size"), self.group_size, GROUP_SIZES)
        whole_number(Msg("inference_quant.name.layer"), self.layer, 0, n_layer - 1)
        choice(Msg("inference_quant.name.matrix"), self.matrix, MATRICES)
        text_box(Msg("inference_quant.name.text"), self.text, MAX_TEXT_CHARS)
        if not self.text.strip():
            raise ValueError(Msg("inference_quant.error.empty", name=Msg("inference_quant.name.text")))
        text_box(Msg("inference_quant.name.prompt"), self.prompt, MAX_PROMPT_CHARS)
        if not self.prompt.strip():
            raise ValueError(Msg("inference_quant.error.empty", name=Msg("inference_quant.name.prompt")))
        whole_number("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)

    @property
    def quant_format(self) -> "QuantFormat | str":
        """What :func:`explorer.quant.fake_quantize` takes: a QuantFormat, or ``"q4_1"``."""
        if self.format == "q4_1":
            return "q4_1"
        return QuantFormat(self.bits, self.format, self.granularity, self.group_size)


def nearest(settings: QuantSettings, n_layer: int = 30) -> QuantSettings:
    """Each control at its nearest valid value (a choice that is not one: the default), the others as they were."""
    default = QuantSettings()
    pick = lambda value, options, fallback: value if value in options else fallback  # noqa: E731
    text_ok = lambda value, cap, fallback: value if isinstance(value, str) and value.strip() \
        and len(value) <= cap else fallback  # noqa: E731
    return dataclasses.replace(
        settings, format=pick(settings.format, FORMATS, default.format), bits=pick(settings.bits, BITS, default.bits),
        granularity=pick(settings.granularity, GRANULARITIES, default.granularity),
        group_size=pick(settings.group_size, GROUP_SIZES, default.group_size),
        layer=nearest_whole(settings.layer, 0, n_layer - 1, default.layer),
        matrix=pick(settings.matrix, MATRICES, default.matrix),
        text=text_ok(settings.text, MAX_TEXT_CHARS, default.text),
        prompt=text_ok(settings.prompt, MAX_PROMPT_CHARS, default.prompt),
        max_new_tokens=nearest_whole(settings.max_new_tokens, 1, MAX_NEW_TOKENS, default.max_new_tokens))


def format_label(fmt: "QuantFormat | str") -> Msg:
    """'4-bit symmetric, groups of 32' (or 'GGUF Q4_1'), for legends and tables."""
    if fmt == "q4_1":
        return Msg("inference_quant.fmt.q4_1")
    where = (Msg("inference_quant.fmt.group", g=fmt.group_size) if fmt.granularity == "group"
             else Msg(f"inference_quant.fmt.{fmt.granularity}"))
    return Msg("inference_quant.fmt.label", bits=fmt.bits, scheme=Msg(f"inference_quant.fmt.{fmt.scheme}"),
               where=where)


def linear_weights(model: Transformer) -> list[tuple[int, str, torch.Tensor]]:
    """(layer, matrix, weight) of the 7 matrices of every block, layer by layer (210 for SmolLM2)."""
    return [(i, matrix, weight_of(model, i, matrix)) for i in range(len(model.stack.blocks)) for matrix in MATRICES]


def weight_of(model: Transformer, layer: int, matrix: str) -> torch.Tensor:
    part, name = MATRIX_PATHS[matrix].split(".")
    return getattr(getattr(model.stack.blocks[layer], part), name).weight


def matrix_bytes(shape: tuple[int, int], fmt: "QuantFormat | str") -> int:
    return q4_1_bytes(shape) if fmt == "q4_1" else quantized_bytes(shape, fmt)


# ---- one matrix ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MatrixView:
    """One weight matrix before and after quantize→dequantize."""

    layer: int
    matrix: str
    shape: tuple[int, int]
    edges: np.ndarray  # (bins + 1,) histogram bin edges, over the range of both
    before: np.ndarray  # (bins,) counts of the float32 weights
    after: np.ndarray  # (bins,) counts of the dequantized weights
    distinct_after: int  # how many different values the dequantized matrix holds
    rel_rms: float  # ‖W - W'‖ / ‖W‖
    max_error: float  # max |W - W'|
    max_half_step: float  # the largest half step of any group: the error bound
    bits_per_weight: float  # stored bits per weight, scales and offsets included


def matrix_view(w: torch.Tensor, fmt: "QuantFormat | str", layer: int, matrix: str) -> MatrixView:
    w = w.detach().float().contiguous()
    w_hat = fake_quantize(w, fmt)
    if fmt == "q4_1":
        blocks = w.reshape(w.shape[0], -1, Q4_1_BLOCK)
        half_step = float(((blocks.amax(-1) - blocks.amin(-1)) / 15).max()) / 2
    else:
        half_step = float(quantize(w, fmt).scales.max()) / 2
    lo = float(min(w.min(), w_hat.min()))
    hi = float(max(w.max(), w_hat.max()))
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    before, _ = np.histogram(w.numpy(), bins=edges)
    after, _ = np.histogram(w_hat.numpy(), bins=edges)
    shape = tuple(w.shape)
    return MatrixView(layer, matrix, shape, edges, before, after, int(w_hat.unique().numel()),
                      relative_rms_error(w, w_hat), float((w - w_hat).abs().max()), half_step,
                      8 * matrix_bytes(shape, fmt) / w.numel())


# ---- memory ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryRow:
    """The whole model's weights in one format, in bytes."""

    label: Msg
    linear: int  # the 210 block matrices
    embedding: int  # the token embedding (also the output layer)
    norms: int  # the norm vectors
    chosen: bool  # the student's format

    @property
    def total(self) -> int:
        return self.linear + self.embedding + self.norms


def memory_table(model: Transformer, fmt: "QuantFormat | str") -> tuple[MemoryRow, ...]:
    """float32, float16, the student's scheme at 8, 4, 3 and 2 bits (or the symmetric one beside Q4_1), and Q4_1.
    Quantized rows keep the embedding in Q8_0 and the norms in float32, as the shipped file does."""
    shapes = [tuple(w.shape) for _, _, w in linear_weights(model)]
    emb = model.stack.embed.tok.weight
    n_linear = sum(r * c for r, c in shapes)
    n_norms = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 1)
    q8_emb = emb.numel() // 32 * Q8_0_BYTES_PER_32
    rows = [MemoryRow(Msg("inference_quant.fmt.float32"), 4 * n_linear, 4 * emb.numel(), 4 * n_norms, False),
            MemoryRow(Msg("inference_quant.fmt.float16"), 2 * n_linear, 2 * emb.numel(), 2 * n_norms, False)]
    base = fmt if isinstance(fmt, QuantFormat) else QuantFormat(4, "symmetric", "group", 32)
    for bits in BITS:
        row_fmt = dataclasses.replace(base, bits=bits)
        rows.append(MemoryRow(format_label(row_fmt), sum(quantized_bytes(s, row_fmt) for s in shapes), q8_emb,
                              4 * n_norms, row_fmt == fmt))
    rows.append(MemoryRow(format_label("q4_1"), sum(q4_1_bytes(s) for s in shapes), q8_emb, 4 * n_norms,
                          fmt == "q4_1"))
    return tuple(rows)


# ---- outliers --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutlierMatrix:
    layer: int
    matrix: str
    row_absmax: np.ndarray  # (rows,) max |w| of each output channel
    spread: float  # largest row max / median row max
    errors: dict[str, float]  # relative RMS error at OUTLIER_BITS, symmetric: per tensor / per channel / groups of 32


@dataclass(frozen=True)
class Outliers:
    """Why one scale per tensor is not enough, on SmolLM2's own weights: the matrix whose rows differ most in size
    (found from the data) beside a typical one (the median spread)."""

    spreads: np.ndarray  # (210,) spread of every matrix, in linear_weights order
    worst: OutlierMatrix
    typical: OutlierMatrix


def _outlier_matrix(layer: int, matrix: str, w: torch.Tensor) -> OutlierMatrix:
    w = w.detach().float().contiguous()
    absmax = w.abs().amax(dim=1)
    errors = {g: relative_rms_error(w, fake_quantize(w, QuantFormat(OUTLIER_BITS, "symmetric", g, 32)))
              for g in GRANULARITIES}
    return OutlierMatrix(layer, matrix, absmax.numpy(), float(absmax.max() / absmax.median()), errors)


def outliers(model: Transformer) -> Outliers:
    weights = linear_weights(model)
    spreads = []
    for _, _, w in weights:
        absmax = w.detach().abs().amax(dim=1)
        spreads.append(float(absmax.max() / absmax.median()))
    spreads = np.array(spreads)
    worst = int(spreads.argmax())
    typical = int(np.argsort(spreads)[len(spreads) // 2])
    return Outliers(spreads, _outlier_matrix(*weights[worst]), _outlier_matrix(*weights[typical]))


# ---- the whole model ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuantizedModel:
    """A copy of the model whose block matrices are quantize→dequantize of the shared model's; everything else
    (embedding, norms) is the shared model's own tensors, only read."""

    fmt: "QuantFormat | str"
    model: Transformer
    layer_errors: np.ndarray  # (210,) relative RMS error of each matrix, in linear_weights order
    nbytes: int  # the quantized matrices' stored bytes
    n_weights: int  # how many weights they hold


def quantized_copy(model: Transformer, fmt: "QuantFormat | str") -> QuantizedModel:
    """Quantize every block matrix; between matrices the generation engine and training may take a step
    (explorer.priority): this runs for seconds, and other students' work should not stall behind it."""
    state = dict(model.state_dict(keep_vars=True))
    errors, nbytes, n_weights = [], 0, 0
    for layer, matrix, w in linear_weights(model):
        priority.yield_to_interactive(0.2)
        w32 = w.detach().float().contiguous()
        w_hat = fake_quantize(w32, fmt)
        errors.append(relative_rms_error(w32, w_hat))
        nbytes += matrix_bytes(tuple(w32.shape), fmt)
        n_weights += w32.numel()
        if not w.is_contiguous():  # the shared model's decode layout (explorer.model.decode_layout_), kept
            w_hat = w_hat.t().contiguous().t()
        state[f"stack.blocks.{layer}.{MATRIX_PATHS[matrix]}.weight"] = w_hat
    state = {k: v.detach() for k, v in state.items()}
    with torch.device("meta"):
        copy = Transformer(model.cfg)
    copy.load_state_dict(state, strict=True, assign=True)
    if model.cfg.tie_embeddings:
        copy.lm_head.weight = copy.stack.embed.tok.weight
    copy = copy.eval().requires_grad_(False)
    return QuantizedModel(fmt, copy, np.array(errors), nbytes, n_weights)


class CopyCache:
    """At most ``capacity`` quantized copies (each holds the 210 matrices in float32: 425 MB for SmolLM2), built one
    at a time: a copy is evicted before the next is built, so memory never holds more than ``capacity``."""

    def __init__(self, capacity: int = 1):
        self.capacity = capacity
        self._copies: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: Transformer, fmt: "QuantFormat | str") -> QuantizedModel:
        key = (id(model), fmt)
        with self._lock:
            if key in self._copies:
                self._copies.move_to_end(key)
                return self._copies[key]
            while len(self._copies) >= self.capacity:
                self._copies.popitem(last=False)
            built = quantized_copy(model, fmt)
            self._copies[key] = built
            return built

    def __len__(self) -> int:
        return len(self._copies)


@dataclass(frozen=True)
class Predictions:
    """Next-token distributions of both models over a text: KL(p_fp32 ‖ p_quant) per position, perplexities."""

    labels: tuple[str, ...]  # the text's tokens
    kl: np.ndarray  # (T,) nats, for the distribution after each token
    nll_ref: np.ndarray  # (T - 1,) -log p of the actual next token, float32 model
    nll_quant: np.ndarray
    truncated: bool  # the text was cut to MAX_TEXT_TOKENS

    @property
    def perplexity_ref(self) -> float:
        return float(np.exp(self.nll_ref.mean()))

    @property
    def perplexity_quant(self) -> float:
        return float(np.exp(self.nll_quant.mean()))


def predictions(ref: Transformer, quant: Transformer, ids: list[int], labels: list[str],
                truncated: bool) -> Predictions:
    x = torch.tensor([ids])
    with torch.inference_mode():
        log_p = F.log_softmax(ref(x)[0].float(), dim=-1)
        log_q = F.log_softmax(quant(x)[0].float(), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp(min=0)  # ≥ 0 in exact arithmetic; rounding may dip below
    nxt = x[0, 1:, None]
    nll_ref = -log_p[:-1].gather(1, nxt)[:, 0]
    nll_quant = -log_q[:-1].gather(1, nxt)[:, 0]
    return Predictions(tuple(labels), kl.numpy(), nll_ref.numpy(), nll_quant.numpy(), truncated)


def greedy(model: Transformer, prompt_ids: list[int], n: int, eos: tuple[int, ...]) -> list[int]:
    """Arg-max decoding with a KV cache, ``n`` tokens at most (stopping after an end-of-sequence token)."""
    cache = KVCache(model.cfg.n_layer)
    out: list[int] = []
    with torch.inference_mode():
        logits = model(torch.tensor([prompt_ids]), kv_cache=cache)
        for _ in range(n):
            token = int(logits[0, -1].argmax())
            out.append(token)
            if token in eos or len(prompt_ids) + len(out) >= model.cfg.max_seq_len:
                break
            priority.yield_to_interactive(0.2)
            logits = model(torch.tensor([[token]]), kv_cache=cache)
    return out


@dataclass(frozen=True)
class GreedyPair:
    ref_text: str
    quant_text: str
    ref_ids: tuple[int, ...]
    quant_ids: tuple[int, ...]

    @property
    def first_difference(self) -> int | None:
        """Index of the first token where the two differ; None when identical."""
        for i, (a, b) in enumerate(zip(self.ref_ids, self.quant_ids)):
            if a != b:
                return i
        return None if len(self.ref_ids) == len(self.quant_ids) else min(len(self.ref_ids), len(self.quant_ids))


@dataclass(frozen=True)
class Evaluation:
    """The whole model quantized: the error of every matrix, KL and perplexity on the text, greedy outputs."""

    layer_errors: np.ndarray  # (210,)
    layers: tuple[int, ...]  # (210,) the layer of each matrix
    matrices: tuple[str, ...]  # (210,) its name
    quantized_bytes: int
    predictions: Predictions
    greedy: GreedyPair


def evaluate(pm: LoadedModel, copy: QuantizedModel, settings: QuantSettings) -> Evaluation:
    enc = pm.encode(settings.text, max_tokens=MAX_TEXT_TOKENS)
    preds = predictions(pm.model, copy.model, enc.ids, enc.labels, enc.truncated)
    prompt = pm.encode(settings.prompt, chat=pm.supports_chat).ids
    ref_ids = greedy(pm.model, prompt, settings.max_new_tokens, pm.eos_token_ids)
    quant_ids = greedy(copy.model, prompt, settings.max_new_tokens, pm.eos_token_ids)
    pair = GreedyPair(pm.decode(ref_ids, skip_special_tokens=True), pm.decode(quant_ids, skip_special_tokens=True),
                      tuple(ref_ids), tuple(quant_ids))
    weights = linear_weights(pm.model)
    return Evaluation(copy.layer_errors, tuple(w[0] for w in weights), tuple(w[1] for w in weights), copy.nbytes,
                      preds, pair)


# ---- the tab ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuantResult:
    matrix: MatrixView
    memory: tuple[MemoryRow, ...]
    outliers: Outliers
    evaluation: Evaluation | None  # None until the student asks for the whole model


def run_quant(settings: QuantSettings, pm: LoadedModel, *, evaluation: bool = False,
              evaluation_of: Callable[[QuantSettings], Evaluation] | None = None,
              outliers_of: Callable[[], Outliers] | None = None,
              matrix_of: Callable[[QuantSettings], MatrixView] | None = None) -> Outcome[QuantSettings, QuantResult]:
    """Everything the tab shows; the whole-model evaluation only with ``evaluation=True``. The callables let a page
    cache each part on its own (the copies in a :class:`CopyCache`); by default each is computed here."""
    n_layer = pm.config.n_layer

    def compute(s: QuantSettings) -> QuantResult:
        fmt = s.quant_format
        view = matrix_of(s) if matrix_of else matrix_view(weight_of(pm.model, s.layer, s.matrix), fmt, s.layer,
                                                          s.matrix)
        found = outliers_of() if outliers_of else outliers(pm.model)
        done = None
        if evaluation:
            done = evaluation_of(s) if evaluation_of else evaluate(pm, quantized_copy(pm.model, fmt), s)
        return QuantResult(view, memory_table(pm.model, fmt), found, done)

    return run_lab(settings, compute, lambda s: nearest(s, n_layer), validate=lambda s: s.validate(n_layer))


def mean_kl(e: Evaluation) -> float:
    return float(e.predictions.kl.mean())


def perplexity_change(e: Evaluation) -> float:
    """Relative change of perplexity, quantized vs float32 (0.05 = 5 % higher)."""
    return e.predictions.perplexity_quant / e.predictions.perplexity_ref - 1

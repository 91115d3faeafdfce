"""Everything the attention lab shows, computed from a sentence and a few settings.

One multi-head attention layer (explorer.model.Attention, Section 3.2.2 of Vaswani et al. 2017) with random
weights runs on the student's tokens; ``run`` keeps every step of softmax(Q K^T / sqrt(d_k) + M) V, head by
head, then Concat(head_1..head_h) W^O, or says why the settings could not be used and what is shown instead.
``sqrt_dk_study`` measures why the scaling is there, ``attention_params`` counts the layer's parameters and KV
cache for MHA / GQA / MQA: they depend on fewer settings, so they are cached on their own.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..attention import additive_mask, attention, build_mask, repeat_kv
from ..checks import choice, nearest_whole, whole_number
from ..config import ModelConfig, attention_kind, kv_head_choices
from ..i18n import Msg
from ..model import Attention
from ..positional import sinusoidal
from ..sampling import entropy_bits
from ..models.toy_tokens import MAX_LAB_TOKENS, Tokens, token_vectors
from .outcome import Outcome, run_lab

MASK_CHOICES = ("none", "causal", "padding", "sliding_window", "prefix")  # each one's words: attention.mask.<value>
# The core mask (explorer.config.MASKS) each of the lab's masks is built from; padding then hides the [PAD] keys.
CORE_MASKS = {"none": "bidirectional", "causal": "causal", "padding": "bidirectional",
              "sliding_window": "sliding_window", "prefix": "prefix"}
D_MODEL_MAX = 512
N_HEAD_MAX = 16
PAD_MAX = 16
SEED_MAX = 10_000
DK_SWEEP = (2, 4, 8, 16, 32, 64, 128, 256, 512)
HEADS_PER_DK = 8  # random heads averaged at each d_k of the sqrt(d_k) study
LAYER_NAME = "attn"  # the hook prefix of the lab's one layer (the lab reads its steps itself, it sets no hooks)


@dataclass(frozen=True)
class AttentionSettings:
    """The lab's controls. ``n_kv_head=None`` means one key/value head per query head (plain MHA)."""

    d_model: int = 64
    n_head: int = 4
    n_kv_head: int | None = None
    mask: str = "causal"
    pad_len: int = 2
    window: int = 3
    prefix_len: int = 2
    scale: bool = True
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError with a sentence for the student when this layer cannot be drawn."""
        whole_number("d_model", self.d_model, 1, D_MODEL_MAX)
        whole_number("n_head", self.n_head, 1, N_HEAD_MAX)
        whole_number(Msg("attention.name.seed"), self.seed, 0, SEED_MAX)
        choice("mask", self.mask, MASK_CHOICES)
        if self.mask == "padding":
            whole_number(Msg("attention.name.pad_len"), self.pad_len, 1, PAD_MAX)
        if self.mask == "sliding_window":
            whole_number(Msg("attention.name.window"), self.window, 1, MAX_LAB_TOKENS)
        if self.mask == "prefix":
            whole_number(Msg("attention.name.prefix_len"), self.prefix_len, 0, MAX_LAB_TOKENS)
        self._model_config()  # how d_model, n_head and n_kv_head fit together is ModelConfig's to say

    def config(self) -> ModelConfig:
        """The ModelConfig of this attention layer; raises ValueError with a sentence for the student."""
        self.validate()
        return self._model_config()

    def _model_config(self) -> ModelConfig:
        core_mask = CORE_MASKS[self.mask]
        return ModelConfig(
            arch="decoder" if core_mask != "bidirectional" else "encoder", n_layer=1, d_model=self.d_model,
            n_head=self.n_head, n_kv_head=self.n_kv_head, positional="sinusoidal", mask=core_mask,
            window=self.window if core_mask == "sliding_window" else None, prefix_len=self.prefix_len,
            max_seq_len=MAX_LAB_TOKENS + PAD_MAX,
        )


def nearest(settings: AttentionSettings) -> AttentionSettings:
    """The valid settings nearest to ``settings``: every number within its range, d_model a multiple of n_head,
    n_kv_head a divisor of it."""
    default = AttentionSettings()
    n_head = nearest_whole(settings.n_head, 1, N_HEAD_MAX, default.n_head)
    d_model = nearest_whole(settings.d_model, 1, D_MODEL_MAX, default.d_model)
    d_model = min(max(n_head, round(d_model / n_head) * n_head), D_MODEL_MAX // n_head * n_head)
    n_kv = settings.n_kv_head
    if n_kv is not None:
        n_kv = next((d for d in kv_head_choices(n_head) if d <= nearest_whole(n_kv, 1, n_head, n_head)), n_head)
    return dataclasses.replace(
        settings, d_model=d_model, n_head=n_head, n_kv_head=n_kv,
        mask=settings.mask if settings.mask in MASK_CHOICES else default.mask,
        pad_len=nearest_whole(settings.pad_len, 1, PAD_MAX, default.pad_len),
        window=nearest_whole(settings.window, 1, MAX_LAB_TOKENS, default.window),
        prefix_len=nearest_whole(settings.prefix_len, 0, MAX_LAB_TOKENS, default.prefix_len),
        seed=nearest_whole(settings.seed, 0, SEED_MAX, default.seed),
    )


def _square_weights(d_model: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Four d_model x d_model matrices N(0, 1/d_model), one per projection, for this caller alone.

    They depend on d_model and the seed only, so changing n_head or n_kv_head splits the same weights into
    other heads. The draw is cached (every session of the app shares it) and each caller gets a copy, which costs
    a few percent of drawing them again: what one session does to its layer never reaches another's.
    """
    return tuple(w.clone() for w in _drawn_square_weights(d_model, seed))


@lru_cache(maxsize=8)
def _drawn_square_weights(d_model: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(d_model, d_model, generator=gen) / math.sqrt(d_model) for _ in range(4))


def build_layer(cfg: ModelConfig, seed: int) -> Attention:
    """explorer's attention layer with weights N(0, 1/d_in) and zero biases.

    GPT-2's N(0, 0.02) initialisation would make every score nearly 0 and every head uniform, which shows
    nothing; with 1/d_in the entries of Q and K have variance about 1, as in a trained model's typical range.
    The layer and its weights belong to the caller alone.
    """
    with torch.device("meta"):  # shapes only: the weights are assigned below
        layer = Attention(cfg, name=LAYER_NAME, layer=0)
    w_q, w_k, w_v, w_o = _square_weights(cfg.d_model, seed)
    inner, kv_inner = cfg.n_head * cfg.d_head, cfg.n_kv_head * cfg.d_head  # rows of nn.Linear's (out, in) weight
    state = {"W_q.weight": w_q[:inner], "W_k.weight": w_k[:kv_inner], "W_v.weight": w_v[:kv_inner],
             "W_o.weight": w_o[:, :inner]}
    for name, lin in (("W_q", layer.W_q), ("W_k", layer.W_k), ("W_v", layer.W_v), ("W_o", layer.W_o)):
        if lin.bias is not None:
            state[f"{name}.bias"] = torch.zeros(lin.out_features)
    layer.load_state_dict(state, assign=True)
    return layer


@dataclass(frozen=True)
class AttentionLabResult:
    """Every step of one multi-head attention layer on one sentence (numpy, so it caches cheaply).

    T = tokens (with [PAD]s when the mask is padding), nh = n_head, nkv = n_kv_head, dh = d_head.
    """

    tokens: tuple[str, ...]  # axis labels, length T
    d_head: int
    scale: float  # 1 / sqrt(d_k), or 1 when scaling is off
    X: np.ndarray  # (T, d_model) token embedding + sinusoidal position
    Q: np.ndarray  # (nh, T, dh)
    K: np.ndarray  # (nkv, T, dh)
    V: np.ndarray  # (nkv, T, dh)
    QK: np.ndarray  # (nh, T, T) Q K^T, before scaling
    scaled: np.ndarray  # (nh, T, T) Q K^T * scale
    M: np.ndarray  # (T, T) 0 where allowed, -inf where masked
    masked: np.ndarray  # (nh, T, T) scaled + M
    weights: np.ndarray  # (nh, T, T) softmax over keys
    Z: np.ndarray  # (nh, T, dh) weights @ V
    concat: np.ndarray  # (T, nh * dh)
    output: np.ndarray  # (T, d_model) concat @ W^O + b^O
    head_outputs: np.ndarray  # (nh, T, d_model) head h's share z_h W^O_h; output = their sum + b^O
    sharpness: Sharpness  # the star of the sqrt(d_k) study

    @property
    def n_head(self) -> int:
        return self.Q.shape[0]

    @property
    def n_kv_head(self) -> int:
        return self.K.shape[0]

    @property
    def kind(self) -> str:
        return attention_kind(self.n_head, self.n_kv_head)

    def kv_head(self, head: int) -> int:
        """Which key/value head query head ``head`` reads (GQA / MQA share them)."""
        return head // (self.n_head // self.n_kv_head)


def lab_inputs(tokens: Tokens, settings: AttentionSettings) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor]:
    """(labels, X, allowed): the token labels, X = embedding + sinusoidal PE (T, d), allowed (T, T) boolean."""
    cfg = settings.config()
    seq = tokens.padded(settings.pad_len) if settings.mask == "padding" else tokens
    T = len(seq)
    X = token_vectors(seq.toy_ids, cfg.d_model, settings.seed) + sinusoidal(T, cfg.d_model)  # (T, d)
    allowed = build_mask(cfg.mask, T, window=cfg.window, prefix_len=cfg.prefix_len)  # (T, T)
    if settings.mask == "padding":
        allowed = allowed & (torch.arange(T) < len(tokens))  # every query ignores the [PAD] keys
    return seq.tokens, X, allowed


@torch.no_grad()
def run_attention(tokens: Tokens, settings: AttentionSettings) -> AttentionLabResult:
    """One attention layer on the sentence, every step kept. Raises ValueError for invalid settings."""
    cfg = settings.config()
    labels, X, allowed = lab_inputs(tokens, settings)
    T, nh, nkv, dh = X.shape[0], cfg.n_head, cfg.n_kv_head, cfg.d_head
    layer = build_layer(cfg, settings.seed)
    q = layer.W_q(X).view(T, nh, dh).transpose(0, 1)  # (nh, T, dh)
    k = layer.W_k(X).view(T, nkv, dh).transpose(0, 1)  # (nkv, T, dh)
    v = layer.W_v(X).view(T, nkv, dh).transpose(0, 1)  # (nkv, T, dh)
    scale = 1.0 / math.sqrt(dh) if settings.scale else 1.0
    res = attention(q[None], k[None], v[None], allowed, scale=scale)  # (1, nh, T, T) etc.
    z = res.z[0]  # (nh, T, dh)
    concat = z.transpose(0, 1).reshape(T, nh * dh)  # (T, nh*dh)
    output = layer.W_o(concat)  # (T, d)
    w_o = layer.W_o.weight.view(cfg.d_model, nh, dh)  # (d, nh, dh): the rows of W^O that head h writes through
    head_outputs = torch.einsum("htk,dhk->htd", z, w_o)  # (nh, T, d)
    qk = torch.matmul(q, repeat_kv(k[None], nh // nkv)[0].transpose(-2, -1))  # (nh, T, T), unscaled
    M = additive_mask(allowed)  # (T, T)
    np_ = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
    return AttentionLabResult(
        tokens=tuple(labels), d_head=dh, scale=scale, X=np_(X), Q=np_(q), K=np_(k), V=np_(v),
        QK=np_(qk), scaled=np_(res.scores[0]), M=np_(M), masked=np_(res.masked_scores[0]),
        weights=np_(res.pattern[0]), Z=np_(z), concat=np_(concat), output=np_(output),
        head_outputs=np_(head_outputs), sharpness=_sharpness(qk, M, allowed, dh),
    )


def run(tokens: Tokens, settings: AttentionSettings) -> Outcome[AttentionSettings, AttentionLabResult]:
    """The layer on the sentence; settings that cannot be drawn fall back to the nearest ones that can."""
    return run_lab(settings, lambda used: run_attention(tokens, used), nearest)



def _study_weights(d_model: int, seed: int, d_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HEADS_PER_DK random W^Q and W^K of width d_k, N(0, 1/d_model): a copy of the shared cached draw."""
    return tuple(w.clone() for w in _drawn_study_weights(d_model, seed, d_k))


@lru_cache(maxsize=4)
def _drawn_study_weights(d_model: int, seed: int, d_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1)
    return tuple(torch.randn(HEADS_PER_DK, d_model, d_k, generator=gen) / math.sqrt(d_model) for _ in range(2))


@dataclass(frozen=True)
class SqrtDkStudy:
    """Mean over queries (and HEADS_PER_DK random heads) of the largest softmax weight and of its entropy."""

    d_k: tuple[int, ...]
    max_weight_scaled: tuple[float, ...]
    max_weight_unscaled: tuple[float, ...]
    entropy_scaled: tuple[float, ...]
    entropy_unscaled: tuple[float, ...]
    score_std_unscaled: tuple[float, ...]  # grows like sqrt(d_k): the reason for the scaling
    uniform_entropy: float  # entropy if every query spread evenly over the keys it may see


@torch.no_grad()
def sqrt_dk_study(tokens: Tokens, settings: AttentionSettings, sweep: tuple[int, ...] = DK_SWEEP) -> SqrtDkStudy:
    """Why divide by sqrt(d_k): project the sentence's X to Q, K of growing d_k and watch the softmax.

    Without scaling the scores' spread grows like sqrt(d_k), the softmax saturates (largest weight -> 1, entropy
    -> 0, vanishing gradients); with it the distribution keeps the same shape whatever d_k. Depends on the
    sentence, d_model, the mask and the seed, not on n_head.
    """
    cfg = settings.config()
    _, X, allowed = lab_inputs(tokens, settings)
    w_q_all, w_k_all = _study_weights(cfg.d_model, settings.seed, max(sweep))
    stats: dict[str, list[float]] = {k: [] for k in ("ms", "mu", "es", "eu", "sd")}
    for d_k in sweep:
        w_q, w_k = w_q_all[..., :d_k], w_k_all[..., :d_k]  # a head of size d_k: the first d_k columns
        q, k = (X @ w_q)[None], (X @ w_k)[None]  # (1, H, T, d_k)
        v = torch.zeros_like(k[..., :1])  # only the weights matter here
        on = attention(q, k, v, allowed).pattern
        off = attention(q, k, v, allowed, scale=1.0)
        for key, value in (("ms", _mean_max(on, allowed)), ("mu", _mean_max(off.pattern, allowed)),
                           ("es", _mean_rows(entropy_bits(on), allowed)),
                           ("eu", _mean_rows(entropy_bits(off.pattern), allowed)),
                           ("sd", float(off.scores.masked_select(allowed.expand_as(off.scores)).std()))):
            stats[key].append(value)
    visible = allowed.sum(-1).clamp(min=1).double()
    return SqrtDkStudy(
        d_k=tuple(sweep), max_weight_scaled=tuple(stats["ms"]), max_weight_unscaled=tuple(stats["mu"]),
        entropy_scaled=tuple(stats["es"]), entropy_unscaled=tuple(stats["eu"]),
        score_std_unscaled=tuple(stats["sd"]), uniform_entropy=float(torch.log2(visible).mean()),
    )


@dataclass(frozen=True)
class Sharpness:
    """This layer's own heads, measured on their actual Q and K: mean largest weight and entropy (bits)."""

    d_k: int
    max_weight_scaled: float
    max_weight_unscaled: float
    entropy_scaled: float
    entropy_unscaled: float


def _sharpness(qk: torch.Tensor, M: torch.Tensor, allowed: torch.Tensor, d_head: int) -> Sharpness:
    """From the unscaled scores Q K^T (nh, T, T) and the additive mask M (T, T), with and without the scaling."""
    on = torch.softmax(qk / math.sqrt(d_head) + M, -1).nan_to_num(0.0)
    off = torch.softmax(qk + M, -1).nan_to_num(0.0)
    return Sharpness(d_head, _mean_max(on, allowed), _mean_max(off, allowed),
                     _mean_rows(entropy_bits(on), allowed), _mean_rows(entropy_bits(off), allowed))


def _rows_with_keys(allowed: torch.Tensor) -> torch.Tensor:
    return allowed.any(-1)  # (T,) queries that see at least one key


def _mean_rows(per_row: torch.Tensor, allowed: torch.Tensor) -> float:
    return float(per_row[..., _rows_with_keys(allowed)].mean())


def _mean_max(weights: torch.Tensor, allowed: torch.Tensor) -> float:
    return _mean_rows(weights.amax(-1), allowed)


@dataclass(frozen=True)
class ParamRow:
    """Parameters of one attention layer and its KV cache, for one choice of n_kv_head."""

    kind: str  # MHA / GQA / MQA
    n_kv_head: int
    w_q: int
    w_k: int
    w_v: int
    w_o: int
    kv_cache_values_per_token: int  # K and V numbers cached per token, per layer

    @property
    def total(self) -> int:
        return self.w_q + self.w_k + self.w_v + self.w_o

    def kv_cache_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """Per layer; 2 bytes for fp16 / bf16, 4 for fp32."""
        return self.kv_cache_values_per_token * bytes_per_value


def attention_params(d_model: int, n_head: int, n_kv_head: int | None = None, bias: bool = True) -> list[ParamRow]:
    """MHA, (GQA,) MQA rows for this d_model and n_head, counted on explorer's own layer (built on the meta
    device: shapes only, no memory). GQA uses ``n_kv_head`` when it is one, else the middle divisor of n_head."""
    gqa = [d for d in kv_head_choices(n_head) if 1 < d < n_head]
    chosen = [n_head]
    if gqa:
        chosen.append(n_kv_head if n_kv_head in gqa else gqa[len(gqa) // 2])
    if n_head > 1:
        chosen.append(1)
    rows = []
    for n_kv in chosen:
        cfg = ModelConfig(d_model=d_model, n_head=n_head, n_kv_head=n_kv, bias=bias, n_layer=1)
        with torch.device("meta"):
            layer = Attention(cfg, name=LAYER_NAME, layer=0)
        count = lambda lin: sum(p.numel() for p in lin.parameters())  # noqa: E731
        rows.append(ParamRow(cfg.attention_kind, n_kv, count(layer.W_q), count(layer.W_k), count(layer.W_v),
                             count(layer.W_o), cfg.kv_values_per_token))  # n_layer = 1: per layer
    return rows

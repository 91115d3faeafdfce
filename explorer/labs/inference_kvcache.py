"""The inference lab's KV-cache tab: how much memory the cache takes per token and over a growing context for
MHA, GQA, MQA and DeepSeek's latent cache (MLA), for real models and one the student describes; then how a server
packs many requests' caches into one memory, PagedAttention's blocks against contiguous pre-allocation.

Every byte is counted by explorer.sizing (``kv_cache_bytes``: 2 · L · n_kv · d_h numbers a token; MLA's
``mla_kv_cache_bytes``: L · (d_c + d_h^R)); the serving simulation is explorer.paging. Layouts: Shazeer 2019 (MQA),
Ainslie et al. 2023 (GQA), DeepSeek-AI 2024 (DeepSeek-V2, MLA, Section 2.1 and Table 1).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..checks import choice, whole_number
from ..config import ModelConfig
from ..i18n import Msg
from ..paging import Request, Trace, make_requests, simulate
from ..presets import REAL_MODELS
from ..sizing import DTYPE_BYTES, count_params, kv_cache_bytes, mla_kv_cache_bytes, weight_bytes
from .outcome import Outcome, run_lab

LAYOUTS = ("mha", "gqa", "mqa", "mla")
PRESETS = ("SmolLM2-135M", "LLaMA-7B", "Llama-2-7B", "Llama-2-70B", "Llama-3-8B", "Llama-3-70B")
CUSTOM = "custom"
MODELS = PRESETS + (CUSTOM,)
KV_DTYPES = tuple(DTYPE_BYTES)
# DeepSeek-V2 (Section 2.1.2; V3 keeps them): latent d_c = 4·d_h and decoupled RoPE key d_h^R = d_h/2, with d_h = 128
# there (kv_lora_rank 512, qk_rope_head_dim 64). A preset's MLA row applies these ratios to its own d_h.
MLA_LATENT_PER_HEAD_DIM = 4
MLA_ROPE_PER_HEAD_DIM = 0.5
MAX_CONTEXT = 1 << 20
MAX_BATCH = 1024
CURVE_POINTS = 65  # the lines are straight; points only for the hover


@dataclass(frozen=True)
class KVCacheSettings:
    """The model whose cache is counted (a preset, or ``custom``: the shape fields below), the number format of the
    cache, the longest context drawn and how many sequences are cached at once."""

    preset: str = "SmolLM2-135M"
    n_layer: int = 32  # the shape of a custom model (a preset brings its own)
    n_head: int = 32
    n_kv_head: int = 8
    d_head: int = 128
    kv_lora_rank: int = 512  # a custom model's MLA latent (DeepSeek-V3's values)
    rope_dim: int = 64
    kv_dtype: str = "bf16"
    context: int = 8192
    batch: int = 1

    def validate(self) -> None:
        choice(Msg("inference_kvcache.name.preset"), self.preset, MODELS)
        whole_number("n_layer", self.n_layer, 1, 256)
        whole_number("n_head", self.n_head, 1, 256)
        whole_number("n_kv_head", self.n_kv_head, 1, self.n_head)
        if self.n_head % self.n_kv_head:
            raise ValueError(Msg("config.kv_divides_heads", n_head=self.n_head, n_kv_head=self.n_kv_head))
        whole_number("d_head", self.d_head, 1, 1024)
        whole_number("kv_lora_rank", self.kv_lora_rank, 1, 8192)
        whole_number("rope_dim", self.rope_dim, 0, 1024)
        choice(Msg("inference_kvcache.name.kv_dtype"), self.kv_dtype, KV_DTYPES)
        whole_number(Msg("inference_kvcache.name.context"), self.context, 1, MAX_CONTEXT)
        whole_number(Msg("inference_kvcache.name.batch"), self.batch, 1, MAX_BATCH)


@dataclass(frozen=True)
class LayoutRow:
    """One attention layout of the model: what its cache keeps per token and how much that is."""

    layout: str  # one of LAYOUTS
    kv_heads: int  # key/value heads cached (MLA: 0, it caches a latent instead)
    values_per_token_layer: int  # numbers cached per token in one layer
    bytes_per_token: float  # all layers
    bytes_total: float  # at the settings' context and batch
    vs_mha: float  # bytes as a share of MHA's
    own: bool  # the model's own layout


@dataclass(frozen=True)
class KVCacheResult:
    name: str  # the preset, or CUSTOM
    cfg: ModelConfig
    kv_lora_rank: int
    rope_dim: int
    rows: tuple[LayoutRow, ...]
    contexts: np.ndarray  # the x axis: tokens in the cache
    curves: dict[str, np.ndarray]  # layout -> bytes at each of ``contexts`` (times the batch)
    weights: float | None  # bytes of the preset's weights in the same format (None for a custom shape)
    n_params: int | None

    def row(self, layout: str) -> LayoutRow | None:
        return next((r for r in self.rows if r.layout == layout), None)

    @property
    def own(self) -> LayoutRow:
        return next(r for r in self.rows if r.own)

    def context_where_cache_passes_weights(self, layout: str, batch: int) -> int | None:
        """Tokens of context from which the cache of ``batch`` sequences weighs more than the weights."""
        row = self.row(layout)
        if self.weights is None or row is None:
            return None
        return int(self.weights // (row.bytes_per_token * batch)) + 1


def model_config(settings: KVCacheSettings) -> ModelConfig:
    """The preset's config (its config.json, explorer.presets), or a decoder of the custom shape."""
    if settings.preset != CUSTOM:
        return REAL_MODELS[settings.preset].cfg
    return ModelConfig(n_layer=settings.n_layer, n_head=settings.n_head, n_kv_head=settings.n_kv_head,
                       d_head=settings.d_head, d_model=settings.n_head * settings.d_head, positional="rope")


def gqa_heads(n_head: int, own_kv: int) -> int | None:
    """The key/value heads of the GQA row: the model's own when it is GQA, else the largest divisor of n_head at
    most n_head/4 (Llama-2-70B's 64 -> 8); None when n_head has no such divisor above 1."""
    if 1 < own_kv < n_head:
        return own_kv
    divisors = [d for d in range(2, n_head // 4 + 1) if n_head % d == 0]
    return max(divisors) if divisors else None


def mla_dims(settings: KVCacheSettings, cfg: ModelConfig) -> tuple[int, int]:
    """(d_c, d_h^R): the custom model's own, or DeepSeek's ratios to the preset's d_h."""
    if settings.preset == CUSTOM:
        return settings.kv_lora_rank, settings.rope_dim
    return MLA_LATENT_PER_HEAD_DIM * cfg.d_head, int(MLA_ROPE_PER_HEAD_DIM * cfg.d_head)


def kv_memory(settings: KVCacheSettings) -> KVCacheResult:
    cfg = model_config(settings)
    d_c, d_r = mla_dims(settings, cfg)
    dtype, batch = settings.kv_dtype, settings.batch
    own_kind = cfg.attention_kind.lower()
    heads = {"mha": cfg.n_head, "gqa": gqa_heads(cfg.n_head, cfg.n_kv_head), "mqa": 1}
    contexts = np.unique(np.linspace(1, settings.context, CURVE_POINTS).round().astype(np.int64))

    def bytes_at(layout: str, tokens: int, n: int = 1) -> float:
        if layout == "mla":
            return mla_kv_cache_bytes(cfg.n_layer, d_c, d_r, n, tokens, dtype)
        return kv_cache_bytes(cfg.replace(n_kv_head=heads[layout]), n, tokens, dtype)

    mha_total = bytes_at("mha", settings.context, batch)
    rows, curves = [], {}
    for layout in LAYOUTS:
        if layout != "mla" and heads[layout] is None:
            continue
        if layout == "mqa" and cfg.n_head == 1:
            continue  # one head: MHA and MQA are the same cache
        per_layer = d_c + d_r if layout == "mla" else 2 * heads[layout] * cfg.d_head
        total = bytes_at(layout, settings.context, batch)
        rows.append(LayoutRow(layout, 0 if layout == "mla" else heads[layout], per_layer, bytes_at(layout, 1),
                              total, total / mha_total, layout == own_kind))
        curves[layout] = np.array([bytes_at(layout, int(n), batch) for n in contexts])
    weights = n_params = None
    if settings.preset != CUSTOM:
        n_params = count_params(cfg).total
        weights = weight_bytes(n_params, dtype)
    return KVCacheResult(settings.preset, cfg, d_c, d_r, tuple(rows), contexts, curves, weights, n_params)


def _usable_alone(settings, skip: str | None = None, **context):
    """``settings`` with each field that fails on its own (set alone on the defaults, with ``context``) back at its
    default; ``skip`` is left as it is."""
    default = type(settings)()
    fixed = settings
    for f in dataclasses.fields(settings):
        if f.name == skip:
            continue
        trial = dataclasses.replace(default, **context, **{f.name: getattr(settings, f.name)})
        try:
            trial.validate()
        except (ValueError, TypeError):
            fixed = dataclasses.replace(fixed, **{f.name: getattr(default, f.name)})
    return fixed


def _nearest(settings: KVCacheSettings) -> KVCacheSettings:
    """Each control that cannot be used at its default; an n_kv_head that does not divide n_head at n_head (MHA)."""
    fixed = _usable_alone(settings, skip="n_kv_head", n_kv_head=1)
    try:
        fixed.validate()
    except (ValueError, TypeError):
        fixed = dataclasses.replace(fixed, n_kv_head=fixed.n_head)
    return fixed


def run_kvcache(settings: KVCacheSettings) -> Outcome[KVCacheSettings, KVCacheResult]:
    return run_lab(settings, kv_memory, _nearest)


# ---- paging ------------------------------------------------------------------------------------------------------

BLOCK_SIZES = (4, 8, 16, 32)  # vLLM's default is 16
MAX_LENS = (128, 256, 512, 1024)
MAX_POOL_BLOCKS = 512
MAX_REQUESTS = 64
SEED_MAX = 10_000
ARRIVAL_GAP_PER_MAX_LEN = 1 / 16  # a request arrives every max_len/16 steps on average: more than fit at once


@dataclass(frozen=True)
class PagingSettings:
    """The server simulated: its memory (``pool_blocks`` blocks of ``block_size`` token slots), the longest request
    it accepts (what contiguous pre-allocation reserves), how many requests arrive, and the seed drawing them."""

    block_size: int = 16
    pool_blocks: int = 128
    max_len: int = 512
    n_requests: int = 24
    seed: int = 0

    def validate(self) -> None:
        choice(Msg("inference_kvcache.name.block_size"), self.block_size, BLOCK_SIZES)
        choice(Msg("inference_kvcache.name.max_len"), self.max_len, MAX_LENS)
        whole_number(Msg("inference_kvcache.name.pool_blocks"), self.pool_blocks, 1, MAX_POOL_BLOCKS)
        if self.pool_blocks * self.block_size < self.max_len:
            raise ValueError(Msg("inference_kvcache.error.pool_too_small", pool=self.pool_blocks * self.block_size,
                                 max_len=self.max_len))
        whole_number(Msg("inference_kvcache.name.n_requests"), self.n_requests, 1, MAX_REQUESTS)
        whole_number(Msg("inference_kvcache.name.seed"), self.seed, 0, SEED_MAX)

    @property
    def capacity(self) -> int:
        return self.pool_blocks * self.block_size

    @property
    def mean_gap(self) -> float:
        return self.max_len * ARRIVAL_GAP_PER_MAX_LEN


@dataclass(frozen=True)
class PagingResult:
    requests: tuple[Request, ...]
    paged: Trace
    contiguous: Trace
    max_len: int

    @property
    def regions(self) -> int:
        """Requests contiguous pre-allocation can hold at once: whole regions of max_len slots in the pool."""
        return self.contiguous.capacity // self.max_len


def serve(settings: PagingSettings, snapshot_steps: tuple[int, ...] = ()) -> PagingResult:
    requests = make_requests(settings.n_requests, settings.max_len, settings.seed, settings.mean_gap)
    kw = dict(pool_blocks=settings.pool_blocks, block_size=settings.block_size, max_len=settings.max_len,
              snapshot_steps=snapshot_steps)
    return PagingResult(requests, simulate(requests, "paged", **kw), simulate(requests, "contiguous", **kw),
                        settings.max_len)


def _nearest_paging(settings: PagingSettings) -> PagingSettings:
    fixed = _usable_alone(settings)
    try:
        fixed.validate()
    except ValueError:  # a pool smaller than one request: the smallest pool that holds one
        fixed = dataclasses.replace(fixed, pool_blocks=-(-fixed.max_len // fixed.block_size))
    return fixed


def run_paging(settings: PagingSettings, snapshot_steps: tuple[int, ...] = ()) -> Outcome[PagingSettings,
                                                                                            PagingResult]:
    return run_lab(settings, lambda s: serve(s, snapshot_steps), _nearest_paging)

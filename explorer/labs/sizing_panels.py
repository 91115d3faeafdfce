"""The panels below the sizing lab's headline, each with settings of its own (checked by their ``validate``) and a
result of its own: inference memory (the weights and the KV cache), training memory (model states under each ZeRO
stage, and activations), training compute (6·N·D FLOPs and the time on a cluster) and the scaling curves of size
against width."""
from __future__ import annotations

from dataclasses import dataclass

from ..checks import choice, whole_number
from ..config import ModelConfig
from ..i18n import Msg
from ..presets import RealModel
from ..sizing import (GPUS, RECOMPUTE, ZERO_STAGES, ModelStates, TrainingMemory,
                      activation_bytes_per_layer, approx_params, check_training_tokens, check_utilisation,
                      chinchilla_tokens, count_params, gpus_needed, inference_flops_per_token, kv_cache_bytes,
                      logits_bytes, model_states_bytes, training_flops, training_memory, training_seconds,
                      weight_bytes)
from .outcome import Outcome, run_lab

DEFAULT_GPU = list(GPUS)[1]  # an A100: the card most course readers will meet
WEIGHT_DTYPES = ("fp32", "bf16", "int8", "int4")
KV_DTYPES = ("bf16", "fp32", "int8")
SCALING_D_OPTIONS = (128, 256, 512, 768, 1024, 2048, 4096, 8192, 12288, 16384)  # the stops of the range slider
# where the curves are counted: finer than the slider, so a narrow range still draws a curve
SCALING_D_POINTS = (128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384)
SCALING_LAYER_OPTIONS = (6, 12, 24, 32, 48, 80, 96)
SCALING_HEAD_WIDTH = 64
# 10^18 tokens, 10^5 times Llama-3's 15T: keeps 6·N·D a finite float for the largest model the fields allow
MAX_CUSTOM_BILLIONS = 1e9
TOKEN_CHOICES = ("chinchilla", "paper", "custom")  # the page's labels: the catalog's sizing.tokens.<value>
CHINCHILLA, PAPER, CUSTOM = TOKEN_CHOICES


@dataclass(frozen=True)
class ScalingSettings:
    """The curves of size against width: a range of d_model and the depths drawn."""

    d_range: tuple[int, int] = (256, 8192)
    layers: tuple[int, ...] = (12, 32, 96)

    def validate(self) -> None:
        if not (isinstance(self.d_range, tuple) and len(self.d_range) == 2):
            raise ValueError(Msg("sizing.err.d_range", got=repr(self.d_range)))
        for d in self.d_range:
            whole_number("d_model", d, 1)
        for n_layer in self.layers:
            whole_number(Msg("sizing.name.layers"), n_layer, 1)
        if not self.layers or not self.d_models:
            raise ValueError(Msg("sizing.err.scaling_empty"))

    @property
    def d_models(self) -> tuple[int, ...]:
        low, high = self.d_range
        return tuple(d for d in SCALING_D_POINTS if low <= d <= high)


@dataclass(frozen=True)
class ScalingCurve:
    """Exact totals and the 12·L·d² + V·d shortcut at each width the model could be resized to, for one depth."""

    n_layer: int
    d_models: tuple[int, ...]
    exact: tuple[int, ...]
    approx: tuple[int, ...]


def resized(cfg: ModelConfig, d_model: int, n_layer: int) -> ModelConfig | None:
    """``cfg`` at another width and depth with its layout kept: 64-wide heads, the same d_ff / d_model and the same
    kind of attention (MHA stays MHA, GQA keeps its group size as far as the head count allows); None when that
    config cannot exist."""
    heads = max(1, d_model // SCALING_HEAD_WIDTH) if d_model >= SCALING_HEAD_WIDTH else 1
    kv = heads if cfg.n_kv_head == cfg.n_head else max(1, heads // max(1, cfg.kv_groups))
    while heads % kv:
        kv -= 1
    d_ff = round(cfg.d_ff / cfg.d_model * d_model)
    try:
        return cfg.replace(d_model=d_model, n_layer=n_layer, n_head=heads, n_kv_head=kv, d_head=d_model // heads,
                           d_ff=max(1, d_ff))
    except ValueError:
        return None


def scaling_curves(cfg: ModelConfig, settings: ScalingSettings) -> tuple[ScalingCurve, ...]:
    """One curve per depth (shallowest first) over the widths of ``settings`` (vocabulary and layout of ``cfg``)."""
    curves = []
    for n_layer in sorted(settings.layers):
        sized = [(d, c) for d in settings.d_models if (c := resized(cfg, d, n_layer)) is not None]
        curves.append(ScalingCurve(n_layer, tuple(d for d, _ in sized),
                                   tuple(count_params(c).total for _, c in sized),
                                   tuple(approx_params(c) for _, c in sized)))
    return tuple(curves)


@dataclass(frozen=True)
class InferenceSettings:
    """The KV cache of a generation: how many sequences, how many tokens each, stored in which precision."""

    batch: int = 1
    seq_len: int = 1024
    kv_dtype: str = "bf16"

    def validate(self) -> None:
        whole_number(Msg("sizing.name.batch"), self.batch, 1)
        whole_number(Msg("sizing.name.seq_len"), self.seq_len, 1)
        choice(Msg("sizing.name.kv_dtype"), self.kv_dtype, KV_DTYPES)


@dataclass(frozen=True)
class InferenceMemory:
    """What generating with the model holds: the weights at every precision, and its KV cache."""

    weights: tuple[tuple[str, float], ...]  # (dtype, bytes) for each of WEIGHT_DTYPES
    kv_cache: float | None  # None for an encoder, or with ``error``
    encoder: bool  # an encoder keeps no KV cache (explorer.sizing.ENCODER_KEEPS_NO_KV_CACHE says why)
    error: str | None  # why the inference controls cannot be used
    needed: float  # bf16 weights plus the KV cache
    gpus: int  # cards of the chosen GPU it takes to hold ``needed``


def inference_memory(cfg: ModelConfig, n_params: int, settings: InferenceSettings, gpu_bytes: float
                     ) -> InferenceMemory:
    weights = tuple((dtype, weight_bytes(n_params, dtype)) for dtype in WEIGHT_DTYPES)
    encoder = cfg.arch == "encoder"
    kv = None if encoder else run_lab(settings, lambda s: kv_cache_bytes(cfg, s.batch, s.seq_len, s.kv_dtype))
    kv_cache = kv.result if kv is not None else None
    needed = dict(weights)["bf16"] + (kv_cache or 0)
    return InferenceMemory(weights, kv_cache, encoder, kv.error if kv is not None else None, needed,
                           gpus_needed(needed, gpu_bytes))


@dataclass(frozen=True)
class TrainingSettings:
    """Data-parallel training with mixed-precision AdamW: how many GPUs, how the ZeRO stage splits the model
    states, and the micro-batch each GPU holds the activations of."""

    n_gpus: int = 8
    zero_stage: int = 0
    micro_batch: int = 1
    seq_len: int = 1024
    recompute: str = "none"

    def validate(self) -> None:
        # In the order explorer.sizing.training_memory checks them, so the first mistake is the one named.
        whole_number(Msg("sizing.name.seq_len"), self.seq_len, 1)
        whole_number(Msg("sizing.name.batch"), self.micro_batch, 1)
        choice(Msg("sizing.name.recompute"), self.recompute, RECOMPUTE)
        whole_number(Msg("sizing.name.n_gpus"), self.n_gpus, 1)
        choice(Msg("sizing.name.zero_stage"), self.zero_stage, ZERO_STAGES)


@dataclass(frozen=True)
class TrainingResult:
    memory: TrainingMemory  # per GPU, under the chosen ZeRO stage
    by_stage: tuple[ModelStates, ...]  # the model states per GPU under each of ZERO_STAGES
    activations_per_layer: float
    logits: float  # the fp32 logits the loss keeps, left out of the activations as in Korthikanti et al.
    fits: bool  # on one card of the chosen GPU


def training_needs(cfg: ModelConfig, n_params: int, settings: TrainingSettings, gpu_bytes: float) -> TrainingResult:
    s = settings
    memory = training_memory(cfg, s.n_gpus, s.zero_stage, s.micro_batch, s.seq_len, s.recompute, n_params=n_params)
    return TrainingResult(memory, tuple(model_states_bytes(n_params, s.n_gpus, stage) for stage in ZERO_STAGES),
                          activation_bytes_per_layer(cfg, s.micro_batch, s.seq_len, s.recompute),
                          logits_bytes(cfg, s.micro_batch, s.seq_len), memory.total <= gpu_bytes)


def token_choices(real: RealModel | None) -> tuple[str, ...]:
    """The training-token choices for a model: the paper's count only for a real preset that gives one."""
    return tuple(c for c in TOKEN_CHOICES if c != PAPER or (real is not None and real.train_tokens))


@dataclass(frozen=True)
class ComputeSettings:
    """How many tokens the model is trained on, and on how many GPUs of which kind at which utilisation."""

    tokens: str = CHINCHILLA
    custom_billions: float = 300.0  # read with CUSTOM
    n_gpus: int = 1024
    gpu: str = DEFAULT_GPU
    mfu: float = 0.4

    def validate(self) -> None:
        # In the order explorer.sizing.training_flops and training_seconds check them.
        choice(Msg("sizing.name.tokens"), self.tokens, TOKEN_CHOICES)
        if self.tokens == CUSTOM:
            check_training_tokens(self.custom_billions * 1e9)
            if self.custom_billions > MAX_CUSTOM_BILLIONS:
                raise ValueError(Msg("sizing.err.custom_tokens", most=MAX_CUSTOM_BILLIONS,
                                     got=repr(self.custom_billions)))
        whole_number(Msg("sizing.name.n_gpus"), self.n_gpus, 1)
        choice("GPU", self.gpu, GPUS)
        check_utilisation(self.mfu)


@dataclass(frozen=True)
class TrainingCompute:
    tokens: float
    tokens_per_param: float
    flops: float  # 6·N·D
    seconds: float
    inference_flops_per_token: float  # 2·N
    hardware: str  # '1024 × NVIDIA A100'


def training_compute(n_params: int, real: RealModel | None, settings: ComputeSettings
                     ) -> Outcome[ComputeSettings, TrainingCompute]:
    """Training FLOPs and time for ``settings``; ``real`` is the preset the model is, for its paper's tokens."""
    paper_tokens = real.train_tokens if real is not None else None
    if settings.tokens == PAPER and not paper_tokens:  # a choice the model does not offer (see token_choices)
        return Outcome(settings, None, Msg("sizing.err.no_paper_tokens"))

    def compute(s: ComputeSettings) -> TrainingCompute:
        tokens = chinchilla_tokens(n_params) if s.tokens == CHINCHILLA else paper_tokens if s.tokens == PAPER \
            else s.custom_billions * 1e9
        flops = training_flops(n_params, tokens)
        return TrainingCompute(tokens, tokens / n_params, flops,
                               training_seconds(flops, s.n_gpus, GPUS[s.gpu]["tflops"], s.mfu),
                               inference_flops_per_token(n_params), f"{s.n_gpus} × {s.gpu.split(' (')[0]}")

    return run_lab(settings, compute)

"""Where every parameter of a Transformer lives, how much memory it needs, and how much compute trains it.

Everything here is arithmetic on a ``ModelConfig``: nothing is instantiated, so a 70B model costs microseconds.
``count_params`` follows ``explorer.model.Transformer`` exactly (and, through ``hf_config.config_from_hf``, the
Hugging Face implementations of GPT-2, BERT, LLaMA, Qwen2, ...); the tests check both on the ``meta`` device.

Memory follows Rajbhandari et al. 2019 (ZeRO, Section 3 and Figure 1) for the model states and Korthikanti et al.
2022 ("Reducing Activation Recomputation in Large Transformer Models", Section 4) for the activations. Compute uses
the 6·N·D rule (Kaplan et al. 2020, Section 2.1) and Chinchilla's ~20 tokens per parameter (Hoffmann et al. 2022).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .checks import choice, positive_number, whole_number
from .config import ModelConfig
from .i18n import Msg

GROUPS = ("embeddings", "attention", "ffn", "norms", "head")


@dataclass(frozen=True)
class Part:
    """One kind of weight: ``count`` parameters in each of ``copies`` places (e.g. W_Q once per layer)."""

    name: str
    group: str  # one of GROUPS
    stack: str  # "model", "encoder" or "decoder"
    count: int
    copies: int
    formula: str  # LaTeX for one copy, in the course's symbols
    in_every_layer: bool = False

    @property
    def total(self) -> int:
        return self.count * self.copies


@dataclass(frozen=True)
class ParamBreakdown:
    """The exact parameter count of a config, part by part. ``total`` counts a shared (tied) tensor once."""

    cfg: ModelConfig
    parts: tuple[Part, ...]

    @property
    def total(self) -> int:
        return sum(p.total for p in self.parts)

    def group_total(self, group: str) -> int:
        if group not in GROUPS:
            raise ValueError(Msg("checks.one_of", name="group", choices=", ".join(GROUPS), got=repr(group)))
        return sum(p.total for p in self.parts if p.group == group)

    def part(self, name: str, stack: str | None = None) -> int:
        """Total parameters of every part called ``name`` (in one stack when given); 0 when the config has none."""
        return sum(p.total for p in self.parts if p.name == name and (stack is None or p.stack == stack))

    @property
    def token_embedding(self) -> int:
        return self.part("token embedding")

    @property
    def position_embedding(self) -> int:
        return self.part("position embedding")

    @property
    def attention(self) -> int:
        return self.group_total("attention")

    @property
    def ffn(self) -> int:
        return self.group_total("ffn")

    @property
    def norms(self) -> int:
        return self.group_total("norms")

    @property
    def lm_head(self) -> int:
        return self.part("LM head (untied)")

    @property
    def pooler(self) -> int:
        return self.part("pooler")

    @property
    def per_layer(self) -> int:
        """Parameters of one block (the decoder block for an encoder-decoder)."""
        stack = "decoder" if self.cfg.arch == "encoder-decoder" else "model"
        return sum(p.count for p in self.parts if p.in_every_layer and p.stack == stack)

    @property
    def embedding(self) -> int:
        """Token, position and segment tables (Kaplan et al. leave these out of their N)."""
        return self.group_total("embeddings") - self.part("embedding norm")

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding

    def rows(self) -> list[dict]:
        """One dict per part, for a table: what it is, where, how many, the formula."""
        return [
            {"stack": p.stack, "group": p.group, "part": p.name, "per copy": p.count, "copies": p.copies,
             "total": p.total, "share %": 100.0 * p.total / self.total, "formula": p.formula}
            for p in self.parts
        ]


def _norm(cfg: ModelConfig) -> tuple[int, str]:
    # LayerNorm learns a gain and a bias per dimension; RMSNorm only the gain.
    if cfg.norm == "rmsnorm":
        return cfg.d_model, "d"
    return 2 * cfg.d_model, "2d"


def _linear(d_in: int, d_out: int, bias: bool, sym_in: str, sym_out: str) -> tuple[int, str]:
    formula = rf"{sym_in}\cdot {sym_out}" + (rf" + {sym_out}" if bias else "")
    return d_in * d_out + (d_out if bias else 0), formula


def _attention_parts(cfg: ModelConfig, stack: str, label: str, copies: int) -> list[Part]:
    d, inner, kv_inner = cfg.d_model, cfg.n_head * cfg.d_head, cfg.n_kv_head * cfg.d_head
    q_sym, kv_sym = r"n_h d_h", r"n_{kv} d_h"
    parts = []
    for name, width, sym, bias in (("W_Q", inner, q_sym, cfg.qkv_bias), ("W_K", kv_inner, kv_sym, cfg.qkv_bias),
                                   ("W_V", kv_inner, kv_sym, cfg.qkv_bias)):
        n, f = _linear(d, width, bias, "d", sym)
        parts.append(Part(f"{label} {name}", "attention", stack, n, copies, f, True))
    n, f = _linear(inner, d, cfg.bias, q_sym, "d")
    parts.append(Part(f"{label} W_O", "attention", stack, n, copies, f, True))
    return parts


def _stack_parts(cfg: ModelConfig, stack: str, cross: bool, own_token_table: bool) -> list[Part]:
    d, L = cfg.d_model, cfg.n_layer
    norm_n, norm_f = _norm(cfg)
    parts: list[Part] = []
    if own_token_table:
        parts.append(Part("token embedding", "embeddings", stack, cfg.vocab_size * d, 1, r"V\cdot d"))
    if cfg.positional == "learned":
        parts.append(Part("position embedding", "embeddings", stack, cfg.max_seq_len * d, 1, r"n_{ctx}\cdot d"))
    if cfg.type_vocab_size:
        parts.append(Part("segment embedding", "embeddings", stack, cfg.type_vocab_size * d, 1,
                          r"n_{type}\cdot d"))
    if cfg.embed_norm:
        parts.append(Part("embedding norm", "norms", stack, norm_n, 1, norm_f))
    parts += _attention_parts(cfg, stack, "self-attn", L)
    parts.append(Part("self-attn norm", "norms", stack, norm_n, L, norm_f, True))
    if cross:
        parts += _attention_parts(cfg, stack, "cross-attn", L)
        parts.append(Part("cross-attn norm", "norms", stack, norm_n, L, norm_f, True))
    ff_sym = r"d_{ff}"
    if cfg.activation == "swiglu":
        n, f = _linear(d, cfg.d_ff, cfg.bias, "d", ff_sym)
        parts.append(Part("FFN W_gate", "ffn", stack, n, L, f, True))
    n, f = _linear(d, cfg.d_ff, cfg.bias, "d", ff_sym)
    parts.append(Part("FFN W_up" if cfg.activation == "swiglu" else "FFN W_1", "ffn", stack, n, L, f, True))
    n, f = _linear(cfg.d_ff, d, cfg.bias, ff_sym, "d")
    parts.append(Part("FFN W_down" if cfg.activation == "swiglu" else "FFN W_2", "ffn", stack, n, L, f, True))
    parts.append(Part("FFN norm", "norms", stack, norm_n, L, norm_f, True))
    if cfg.norm_position == "pre":
        # A pre-norm stack ends with one more norm (GPT-2's ln_f, LLaMA's norm); post-norm already ends on one.
        parts.append(Part("final norm", "norms", stack, norm_n, 1, norm_f))
    return parts


def count_params(cfg: ModelConfig, pooler: bool = False, mlm_head: bool = False) -> ParamBreakdown:
    """Exact parameter count of ``Transformer(cfg)``, part by part.

    ``pooler`` adds BERT's pooler (a d x d layer with bias on the [CLS] vector, part of every released BERT
    checkpoint). ``mlm_head`` adds BERT's masked-LM head: a d x d transform with bias, a LayerNorm and an output
    bias of V; its output matrix is the (tied) token embedding, so it adds no V x d.
    """
    if not isinstance(cfg, ModelConfig):
        raise ValueError(Msg("sizing.err.needs_config"))
    d = cfg.d_model
    if cfg.arch == "encoder-decoder":
        # One token table serves encoder, decoder and (when tied) the output layer, as in Vaswani et al. 3.4.
        parts = (_stack_parts(cfg, "encoder", cross=False, own_token_table=False)
                 + _stack_parts(cfg, "decoder", cross=True, own_token_table=True))
    else:
        parts = _stack_parts(cfg, "model", cross=False, own_token_table=True)
    head_stack = "decoder" if cfg.arch == "encoder-decoder" else "model"
    if not cfg.tie_embeddings:
        parts.append(Part("LM head (untied)", "head", head_stack, d * cfg.vocab_size, 1, r"d\cdot V"))
    if pooler:
        n, f = _linear(d, d, True, "d", "d")
        parts.append(Part("pooler", "head", head_stack, n, 1, f))
    if mlm_head:
        n, f = _linear(d, d, True, "d", "d")
        parts.append(Part("MLM transform", "head", head_stack, n, 1, f))
        parts.append(Part("MLM transform norm", "head", head_stack, 2 * d, 1, "2d"))
        parts.append(Part("MLM output bias", "head", head_stack, cfg.vocab_size, 1, "V"))
    return ParamBreakdown(cfg, tuple(parts))


def approx_params(cfg: ModelConfig) -> int:
    """The textbook shortcut 12·L·d² + V·d (attention 4d², FFN 8d² per layer, one embedding table)."""
    return 12 * cfg.n_layer * cfg.d_model ** 2 + cfg.vocab_size * cfg.d_model


# ---------------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------------

DTYPE_BYTES: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}
GB = 1e9  # the ZeRO paper counts model states in decimal gigabytes (16 bytes x 7.5e9 = 120 GB)
GiB = 2 ** 30  # a GPU's memory: "80 GB" on a data sheet is 80 GiB (memory chips come in powers of two)


def _check_dtype(dtype: str) -> float:
    return DTYPE_BYTES[choice("dtype", dtype, DTYPE_BYTES)]


def _check_params(n_params) -> float:
    return positive_number(Msg("sizing.name.n_params"), n_params)


def weight_bytes(n_params: float, dtype: str = "bf16") -> float:
    """Bytes to hold the weights alone: 4 per parameter in fp32, 2 in fp16/bf16, 1 in int8, 0.5 in int4."""
    return _check_params(n_params) * _check_dtype(dtype)


ENCODER_KEEPS_NO_KV_CACHE = Msg("sizing.err.encoder_no_kv")


def kv_cache_bytes(cfg: ModelConfig, batch: int, seq_len: int, dtype: str = "bf16") -> float:
    """Bytes of the KV cache when generating: 2 (K and V) · layers · n_kv_head · d_head · tokens · batch · bytes.

    A sliding-window model (Mistral) keeps only the last ``window`` tokens. An encoder-decoder also caches the
    cross-attention keys and values of the source (taken here as ``seq_len`` tokens long).
    """
    if cfg.arch == "encoder":
        raise ValueError(ENCODER_KEEPS_NO_KV_CACHE)
    whole_number(Msg("sizing.name.batch"), batch, 1)
    whole_number(Msg("sizing.name.seq_len"), seq_len, 1)
    kept = min(seq_len, cfg.window) if cfg.mask == "sliding_window" and cfg.window else seq_len
    per_token = cfg.kv_values_per_token
    total = per_token * kept * batch
    if cfg.arch == "encoder-decoder":
        total += per_token * seq_len * batch
    return total * _check_dtype(dtype)


def mla_kv_cache_bytes(n_layer: int, kv_lora_rank: int, rope_dim: int, batch: int, seq_len: int,
                       dtype: str = "bf16") -> float:
    """Bytes of a multi-head latent attention cache (DeepSeek-V2, Section 2.1 and Table 1): per token and layer one
    compressed latent c_KV of ``kv_lora_rank`` numbers, from which every head's K and V are re-projected, and one
    RoPE key of ``rope_dim`` shared by all heads: (d_c + d_h^R) · L numbers a token, whatever the number of heads."""
    for name, value in (("n_layer", n_layer), ("kv_lora_rank", kv_lora_rank), ("rope_dim", rope_dim)):
        whole_number(name, value, 0 if name == "rope_dim" else 1)
    whole_number(Msg("sizing.name.batch"), batch, 1)
    whole_number(Msg("sizing.name.seq_len"), seq_len, 1)
    return n_layer * (kv_lora_rank + rope_dim) * seq_len * batch * _check_dtype(dtype)


# Mixed-precision AdamW (ZeRO paper, Section 3.1): fp16/bf16 weights and gradients, and fp32 master weights,
# momentum and variance in the optimizer (K = 12).
MIXED_ADAM_BYTES = {"weights": 2, "gradients": 2, "optimizer": 12}
ZERO_STAGES = (0, 1, 2, 3)


@dataclass(frozen=True)
class ModelStates:
    """Bytes per GPU for the three model states under one ZeRO stage."""

    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer


def model_states_bytes(n_params: float, n_gpus: int = 1, zero_stage: int = 0) -> ModelStates:
    """Rajbhandari et al. 2019, Figure 1: (2 + 2 + K)·Ψ with K = 12, of which ZeRO stage 1 partitions the
    optimizer states over N_d GPUs, stage 2 the gradients as well, stage 3 the weights too."""
    psi = _check_params(n_params)
    n = whole_number(Msg("sizing.name.n_gpus"), n_gpus, 1)
    if zero_stage not in ZERO_STAGES:
        raise ValueError(Msg("checks.one_of", name=Msg("sizing.name.zero_stage"), choices="0, 1, 2, 3", got=repr(zero_stage)))
    b = MIXED_ADAM_BYTES
    return ModelStates(
        weights=b["weights"] * psi / (n if zero_stage >= 3 else 1),
        gradients=b["gradients"] * psi / (n if zero_stage >= 2 else 1),
        optimizer=b["optimizer"] * psi / (n if zero_stage >= 1 else 1),
    )


RECOMPUTE = ("none", "selective", "full")


def activation_bytes_per_layer(cfg: ModelConfig, batch: int, seq_len: int, recompute: str = "none") -> float:
    """Korthikanti et al. 2022, eq. (1): s·b·h·(34 + 5·a·s/h) bytes per layer with 16-bit activations.

    34·s·b·h covers the saved inputs of the matmuls, norms, GeLU and dropout masks; 5·a·s²·b the attention
    scores, softmax output and its dropout mask. Selective recomputation (Section 5) recomputes the attention
    core and keeps 34·s·b·h; full recomputation keeps only each layer's input, 2·s·b·h. The formula is derived
    for the GPT block (FFN 4h, full multi-head attention); for SwiGLU or GQA it is an estimate.
    """
    s, b = whole_number(Msg("sizing.name.seq_len"), seq_len, 1), whole_number(Msg("sizing.name.batch"), batch, 1)
    h, a = cfg.d_model, cfg.n_head
    if recompute not in RECOMPUTE:
        raise ValueError(Msg("checks.one_of", name=Msg("sizing.name.recompute"), choices=", ".join(RECOMPUTE), got=repr(recompute)))
    if recompute == "full":
        return 2.0 * s * b * h
    if recompute == "selective":
        return 34.0 * s * b * h
    return s * b * h * (34 + 5 * a * s / h)


@dataclass(frozen=True)
class TrainingMemory:
    states: ModelStates
    activations: float

    @property
    def total(self) -> float:
        return self.states.total + self.activations


def training_memory(cfg: ModelConfig, n_gpus: int = 1, zero_stage: int = 0, micro_batch: int = 1,
                    seq_len: int | None = None, recompute: str = "none", n_params: float | None = None
                    ) -> TrainingMemory:
    """Per-GPU memory for data-parallel training: model states (ZeRO) plus activations of one micro-batch.

    ZeRO partitions model states only; every GPU still holds the activations of its own micro-batch, for every
    layer (and for both stacks of an encoder-decoder).
    """
    seq_len = cfg.max_seq_len if seq_len is None else seq_len
    n = count_params(cfg).total if n_params is None else n_params
    layers = cfg.n_layer * (2 if cfg.arch == "encoder-decoder" else 1)
    acts = layers * activation_bytes_per_layer(cfg, micro_batch, seq_len, recompute)
    return TrainingMemory(model_states_bytes(n, n_gpus, zero_stage), acts)


def logits_bytes(cfg: ModelConfig, batch: int, seq_len: int) -> float:
    """4·s·b·V: the fp32 logits a training step keeps for the cross-entropy loss. Korthikanti et al. 2022
    (Section 4.3) count them outside the per-layer activations, like the embedding layer's output."""
    return 4.0 * whole_number(Msg("sizing.name.seq_len"), seq_len, 1) * whole_number(Msg("sizing.name.batch"), batch, 1) \
        * cfg.vocab_size


def gpus_needed(nbytes: float, gpu_bytes: float) -> int:
    """How many GPUs of ``gpu_bytes`` each it takes to hold ``nbytes`` at all (at least one)."""
    if not gpu_bytes > 0:
        raise ValueError(Msg("checks.positive", name=Msg("sizing.name.gpu_bytes"), got=repr(gpu_bytes)))
    return max(1, math.ceil(nbytes / gpu_bytes))


# ---------------------------------------------------------------------------------------------------------------
# Compute
# ---------------------------------------------------------------------------------------------------------------

CHINCHILLA_TOKENS_PER_PARAM = 20

# Dense 16-bit tensor-core peaks from the vendors' data sheets (TFLOP/s) and memory. The data sheets write "80GB",
# but the card holds 80 GiB (85.9e9 bytes): HBM and GDDR come in power-of-two chip sizes (an A100 80GB has five
# 16 GiB HBM2e stacks; nvidia-smi reports it as 81920 MiB), so capacities are kept in GiB here.
GPUS: dict[str, dict[str, float]] = {
    "NVIDIA V100 (32 GiB)": {"tflops": 125.0, "memory_gib": 32.0},
    "NVIDIA A100 (80 GiB)": {"tflops": 312.0, "memory_gib": 80.0},
    "NVIDIA H100 SXM (80 GiB)": {"tflops": 989.0, "memory_gib": 80.0},
    "NVIDIA H200 (141 GiB)": {"tflops": 989.0, "memory_gib": 141.0},
    "NVIDIA RTX 4090 (24 GiB)": {"tflops": 165.0, "memory_gib": 24.0},
    "NVIDIA T4 (16 GiB)": {"tflops": 65.0, "memory_gib": 16.0},
}


def gpu_memory_bytes(name: str) -> float:
    """The capacity of a GPU of ``GPUS`` in bytes."""
    return GPUS[name]["memory_gib"] * GiB


def human_gpu_memory(nbytes: float) -> str:
    """'80 GiB (85.9 GB)': a card's capacity in its own unit and in the decimal GB the model sizes use."""
    return f"{nbytes / GiB:g} GiB ({nbytes / GB:.3g} GB)"


def check_training_tokens(n_tokens) -> float:
    return positive_number(Msg("sizing.name.train_tokens"), n_tokens)


def check_utilisation(utilisation) -> float:
    """The fraction of peak FLOP/s a run uses: above 0, at most 1."""
    if isinstance(utilisation, bool) or not isinstance(utilisation, (int, float)) or not 0 < utilisation <= 1:
        raise ValueError(Msg("sizing.err.utilisation", got=repr(utilisation)))
    return utilisation


def training_flops(n_params: float, n_tokens: float) -> float:
    """C ≈ 6·N·D: 2·N multiply-adds per token forward, twice that backward (Kaplan et al. 2020, 2.1)."""
    return 6.0 * _check_params(n_params) * check_training_tokens(n_tokens)


def inference_flops_per_token(n_params: float) -> float:
    """≈ 2·N: one multiply and one add per weight for every generated token (attention over the context aside)."""
    return 2.0 * _check_params(n_params)


def chinchilla_tokens(n_params: float) -> float:
    """Compute-optimal training tokens, ≈ 20 per parameter (Hoffmann et al. 2022, Table 3)."""
    return CHINCHILLA_TOKENS_PER_PARAM * _check_params(n_params)


def training_seconds(flops: float, n_gpus: int, tflops_per_gpu: float, utilisation: float) -> float:
    """Wall-clock time: FLOPs / (GPUs · peak FLOP/s · model FLOPs utilisation)."""
    whole_number(Msg("sizing.name.n_gpus"), n_gpus, 1)
    positive_number("TFLOP/s", tflops_per_gpu)
    check_utilisation(utilisation)
    positive_number("FLOPs", flops)
    return flops / (n_gpus * tflops_per_gpu * 1e12 * utilisation)


# ---------------------------------------------------------------------------------------------------------------
# Formatting, shared by the page and notebooks
# ---------------------------------------------------------------------------------------------------------------

def human_count(n: float) -> str:
    """124439808 -> '124.4M'; 6.74e9 -> '6.74B'."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}" if v < 1000 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """Decimal units, as GPU data sheets and the ZeRO paper use them."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}" if n / scale < 1000 else f"{n / scale:.0f} {unit}"
    return f"{n:.0f} B"


def sci(x: float) -> str:
    """3.14e23 written short: '3.14e23' (no '+', no padding zero)."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def human_seconds(s: float) -> Msg:
    """'3.2 days' (a Msg: the unit is said in the reader's language)."""
    for unit, scale in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= scale:
            return Msg(f"sizing.unit.{unit}", x=f"{s / scale:.3g}")
    return Msg("sizing.unit.seconds", x=f"{s:.3g}")

"""Model configuration: one flat, frozen, validated dataclass (the nanoGPT habit) plus named teaching presets.

Every module of the core takes the whole config. Validation messages are written for a student: they name the
field, the value, and the rule that was broken.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .checks import choice, whole_number
from .i18n import Msg

ARCHS = ("decoder", "encoder", "encoder-decoder")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "swiglu")
NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("post", "pre")
POSITIONALS = ("sinusoidal", "learned", "rope", "alibi", "none")
MASKS = ("causal", "bidirectional", "sliding_window", "prefix")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a Transformer (Vaswani et al. 2017, and its GPT / BERT / LLaMA descendants).

    Fields left as ``None`` are derived in ``__post_init__``: ``n_kv_head`` = ``n_head`` (plain multi-head
    attention; fewer gives grouped-query attention, 1 gives multi-query attention), ``d_head`` = d_model // n_head,
    ``d_ff`` = 4 * d_model, ``qkv_bias`` = ``bias``.
    """

    arch: str = "decoder"
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    n_kv_head: int | None = None
    d_head: int | None = None
    d_ff: int | None = None
    vocab_size: int = 256
    max_seq_len: int = 128
    activation: str = "gelu"
    norm: str = "layernorm"
    norm_position: str = "pre"
    positional: str = "learned"
    rope_theta: float = 10000.0
    mask: str = "causal"
    window: int | None = None
    prefix_len: int = 1
    bias: bool = True
    qkv_bias: bool | None = None
    tie_embeddings: bool = True
    embed_scale: bool = False
    # BERT-style extras: segment (token type) embeddings and a LayerNorm right after the embeddings.
    type_vocab_size: int = 0
    embed_norm: bool = False
    norm_eps: float = 1e-5
    dropout: float = 0.0

    def __post_init__(self) -> None:
        fill = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        choice("arch", self.arch, ARCHS)
        choice("activation", self.activation, ACTIVATIONS)
        choice("norm", self.norm, NORMS)
        choice("norm_position", self.norm_position, NORM_POSITIONS)
        choice("positional", self.positional, POSITIONALS)
        choice("mask", self.mask, MASKS)
        for name in ("n_layer", "d_model", "n_head", "vocab_size", "max_seq_len"):
            whole_number(name, getattr(self, name), 1)
        if self.n_kv_head is None:
            fill("n_kv_head", self.n_head)
        whole_number("n_kv_head", self.n_kv_head, 1)
        if self.n_kv_head > self.n_head:
            raise ValueError(Msg("config.kv_above_heads", n_kv_head=self.n_kv_head, n_head=self.n_head))
        if self.n_head % self.n_kv_head:
            raise ValueError(Msg("config.kv_divides_heads", n_head=self.n_head, n_kv_head=self.n_kv_head))
        if self.d_head is None:
            if self.d_model % self.n_head:
                raise ValueError(Msg("config.heads_divide_d_model", d_model=self.d_model, n_head=self.n_head))
            fill("d_head", self.d_model // self.n_head)
        whole_number("d_head", self.d_head, 1)
        if self.d_ff is None:
            fill("d_ff", 4 * self.d_model)
        whole_number("d_ff", self.d_ff, 1)
        if self.qkv_bias is None:
            fill("qkv_bias", self.bias)
        if self.positional == "rope" and self.d_head % 2:
            raise ValueError(Msg("config.rope_even", d_head=self.d_head))
        if not (isinstance(self.rope_theta, (int, float)) and math.isfinite(self.rope_theta) and self.rope_theta > 1):
            raise ValueError(Msg("config.rope_theta", theta=self.rope_theta))
        if self.mask == "sliding_window":
            if self.window is None:
                raise ValueError(Msg("config.window_needed"))
            whole_number("window", self.window, 1)
        whole_number("prefix_len", self.prefix_len, 0)
        whole_number("type_vocab_size", self.type_vocab_size, 0)
        if not (isinstance(self.norm_eps, (int, float)) and 0 < self.norm_eps < 1):
            raise ValueError(Msg("config.norm_eps", eps=self.norm_eps))
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(Msg("config.dropout", dropout=self.dropout))
        if self.arch == "encoder-decoder" and self.mask != "causal":
            raise ValueError(Msg("config.encoder_decoder_causal"))

    @property
    def kv_groups(self) -> int:
        """How many query heads share one key/value head (1 = MHA, n_head = MQA)."""
        return self.n_head // self.n_kv_head

    @property
    def attention_kind(self) -> str:
        return attention_kind(self.n_head, self.n_kv_head)

    @property
    def kv_values_per_token(self) -> int:
        """Numbers the KV cache keeps per token, all layers: K and V of every key/value head (2 · L · n_kv · d_h)."""
        return 2 * self.n_layer * self.n_kv_head * self.d_head

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed; derived fields are derived again unless given."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for derived, depends in (("d_head", ("d_model", "n_head")), ("n_kv_head", ("n_head",)),
                                 ("d_ff", ("d_model",)), ("qkv_bias", ("bias",))):
            if derived not in changes and any(d in changes for d in depends):
                fields[derived] = None
        fields.update(changes)
        return ModelConfig(**fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def attention_kind(n_head: int, n_kv_head: int) -> str:
    """MHA (a key/value head per query head), MQA (one for all) or GQA (groups of query heads share one)."""
    if n_kv_head == n_head:
        return "MHA"
    return "MQA" if n_kv_head == 1 else "GQA"


def kv_head_choices(n_head: int) -> list[int]:
    """The n_kv_head values n_head allows (its divisors), largest first: n_head (MHA) ... 1 (MQA); [] for an
    n_head that is not a whole number of at least 1."""
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        return []
    small = [d for d in range(1, math.isqrt(n_head) + 1) if n_head % d == 0]  # a typed field may hold 10**12
    return sorted(set(small) | {n_head // d for d in small}, reverse=True)


# Small configurations for teaching: they build in milliseconds on a laptop CPU.
PRESETS: dict[str, ModelConfig] = {
    "tiny-gpt": ModelConfig(arch="decoder", n_layer=2, d_model=64, n_head=4, positional="learned",
                            activation="gelu", norm="layernorm", norm_position="pre", mask="causal"),
    "tiny-bert": ModelConfig(arch="encoder", n_layer=2, d_model=64, n_head=4, positional="learned",
                             activation="gelu", norm="layernorm", norm_position="post", mask="bidirectional",
                             type_vocab_size=2, embed_norm=True),
    "tiny-llama": ModelConfig(arch="decoder", n_layer=2, d_model=64, n_head=4, n_kv_head=2, d_ff=172,
                              positional="rope", activation="swiglu", norm="rmsnorm", norm_position="pre",
                              mask="causal", bias=False),
    # The base model of "Attention Is All You Need" (Table 3), as the course describes it.
    "original-transformer": ModelConfig(arch="encoder-decoder", n_layer=6, d_model=512, n_head=8, d_ff=2048,
                                        vocab_size=37000, max_seq_len=512, positional="sinusoidal",
                                        activation="relu", norm="layernorm", norm_position="post",
                                        mask="causal", embed_scale=True),
}

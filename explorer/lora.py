"""LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), written out for our Transformer.

A chosen projection W (d_out x d_in, frozen) gets a trainable low-rank update:

    h = W x + (α / r) · B A x          A: r x d_in, B: d_out x r, r << min(d_in, d_out)

A starts random and B at zero (Section 4.1), so the adapted model starts as the base model exactly, and only
r · (d_in + d_out) numbers per projection are trained instead of d_in · d_out. After training, B A can be added into
W (``merge``): the adapted model then costs nothing extra at inference. The initialisation and the scaling are
peft's defaults (A: kaiming-uniform with a = √5, as torch's nn.Linear; scaling α / r), so
tests/test_lora.py can copy A and B into peft's LoRA on transformers' LlamaForCausalLM and compare the outputs.

Our model names its projections W_q, W_k, W_v, W_o (attention) and W_gate, W_in (up), W_out (down) (SwiGLU FFN);
``TARGETS`` maps the course's short names onto them and onto transformers' LLaMA names (q_proj, ...).

The base model is usually shared (a cached SmolLM2 read by every session): ``lora_model`` never writes onto it. It
builds a private module tree whose frozen weights share the base's storage (no copy of 135M numbers), and
``merge`` puts W + ΔW in a new tensor rather than adding into the shared one.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .config import ModelConfig
from .model import Transformer
from .sizing import count_params, model_states_bytes, weight_bytes

# short name -> (sub-module of a block, our attribute, transformers' LLaMA module name)
TARGETS: dict[str, tuple[str, str, str]] = {
    "q": ("attn", "W_q", "q_proj"),
    "k": ("attn", "W_k", "k_proj"),
    "v": ("attn", "W_v", "v_proj"),
    "o": ("attn", "W_o", "o_proj"),
    "gate": ("mlp", "W_gate", "gate_proj"),
    "up": ("mlp", "W_in", "up_proj"),
    "down": ("mlp", "W_out", "down_proj"),
}
DEFAULT_TARGETS = ("q", "v")  # the LoRA paper's choice (Section 7.1: W_q and W_v together at a small rank)


class LoraLinear(nn.Module):
    """A frozen nn.Linear plus (α / r) · B A: the forward computes W x + b + (α / r) · B (A · dropout(x))."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        if r < 1:
            raise ValueError(f"rank r must be at least 1 (got {r})")
        self.base = base
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        d_out, d_in = base.weight.shape
        factory = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.lora_A = nn.Parameter(torch.empty(r, d_in, **factory))
        self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))  # zero: training starts from the base model
        # kaiming-uniform with a = √5 is nn.Linear's own init of a (r x d_in) weight: U(-1/√d_in, 1/√d_in)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._unmerged_weight: torch.Tensor | None = None

    @property
    def merged(self) -> bool:
        return self._unmerged_weight is not None

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (α / r) · B A, shaped like W (d_out x d_in)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y  # W already holds W + ΔW
        return y + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling  # peft's order of operations

    @torch.no_grad()
    def merge(self) -> None:
        """W ← W + (α / r) · B A, into a new tensor: the original W may be shared with other sessions."""
        if self.merged:
            return
        original = self.base.weight
        self._unmerged_weight = original
        self.base.weight = nn.Parameter(original + self.delta_weight(), requires_grad=False)

    @torch.no_grad()
    def unmerge(self) -> None:
        """Back to W itself (the very tensor kept at merge: exact, no W + ΔW − ΔW rounding)."""
        if not self.merged:
            return
        self.base.weight = self._unmerged_weight
        self._unmerged_weight = None


def _frozen_view(model: Transformer) -> Transformer:
    """A new module tree over the same weights: each parameter becomes a frozen Parameter on the same storage
    (detach shares it), so freezing and wrapping here never touch ``model`` (whose flags other sessions read),
    and tied weights stay tied (one Parameter, one entry in the memo)."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach(), requires_grad=False)
    for b in model.buffers():
        memo[id(b)] = b
    memo[id(model.cfg)] = model.cfg
    view = copy.deepcopy(model, memo)
    return view.eval()


@dataclass
class LoraModel:
    """Our Transformer with LoRA on some projections: ``model`` runs it, ``layers`` are the adapted projections."""

    model: Transformer
    layers: dict[str, LoraLinear]  # "blocks.3.attn.W_q" -> its LoraLinear
    targets: tuple[str, ...]
    r: int
    alpha: float

    def parameters(self) -> list[nn.Parameter]:
        """The trainable parameters: every A and B, nothing else."""
        return [p for layer in self.layers.values() for p in (layer.lora_A, layer.lora_B)]

    @property
    def trainable(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def total(self) -> int:
        """Every parameter of the adapted model, a tied tensor once (peft's get_nb_trainable_parameters' total)."""
        return sum(p.numel() for p in self.model.parameters())

    def merge(self) -> None:
        for layer in self.layers.values():
            layer.merge()

    def unmerge(self) -> None:
        for layer in self.layers.values():
            layer.unmerge()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter alone (what one saves and ships): "<layer>.lora_A" / ".lora_B" -> tensor."""
        out = {}
        for name, layer in self.layers.items():
            out[f"{name}.lora_A"], out[f"{name}.lora_B"] = layer.lora_A.detach(), layer.lora_B.detach()
        return out


def check_targets(cfg: ModelConfig, targets) -> tuple[str, ...]:
    """The targets in TARGETS order; ValueError for an unknown one or a gate on a model without SwiGLU."""
    targets = tuple(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"LoRA targets must be some of {', '.join(TARGETS)} (got {', '.join(targets) or 'none'})")
    if "gate" in targets and cfg.activation != "swiglu":
        raise ValueError("only a SwiGLU FFN has a gate projection")
    return tuple(t for t in TARGETS if t in targets)


def lora_model(base: Transformer, targets=DEFAULT_TARGETS, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               seed: int = 0) -> LoraModel:
    """``base`` with LoRA on ``targets`` of every block; ``base`` itself is left untouched (see module doc).
    A matrices are drawn from a generator of their own (``seed``), block by block in TARGETS order."""
    targets = check_targets(base.cfg, targets)
    view = _frozen_view(base)
    generator = torch.Generator(device=base.device).manual_seed(seed)
    layers: dict[str, LoraLinear] = {}
    for i, block in enumerate(view.stack.blocks):
        for t in targets:
            part, attr, _ = TARGETS[t]
            owner = getattr(block, part)
            layer = LoraLinear(getattr(owner, attr), r, alpha, dropout, generator)
            setattr(owner, attr, layer)
            layers[f"blocks.{i}.{part}.{attr}"] = layer
    return LoraModel(view, layers, targets, r, alpha)


# ---------------------------------------------------------------------------------------------------------------
# Counting, from the config alone (no model built): the numbers of the sizing lab's kind.
# ---------------------------------------------------------------------------------------------------------------

def projection_shape(cfg: ModelConfig, target: str) -> tuple[int, int]:
    """(d_in, d_out) of one projection of ``target`` in one block."""
    d, inner, kv_inner, d_ff = cfg.d_model, cfg.n_head * cfg.d_head, cfg.n_kv_head * cfg.d_head, cfg.d_ff
    return {"q": (d, inner), "k": (d, kv_inner), "v": (d, kv_inner), "o": (inner, d),
            "gate": (d, d_ff), "up": (d, d_ff), "down": (d_ff, d)}[target]


def lora_param_count(cfg: ModelConfig, targets, r: int) -> int:
    """r · (d_in + d_out) per adapted projection, times the layers: the trainable parameters of LoRA."""
    targets = check_targets(cfg, targets)
    return cfg.n_layer * sum(r * sum(projection_shape(cfg, t)) for t in targets)


@dataclass(frozen=True)
class FineTuneMemory:
    """Bytes of the model states of one fine-tune under mixed-precision AdamW (the sizing lab's ZeRO-stage-0
    numbers, Rajbhandari et al. 2019): 16-bit weights, 16-bit gradients of what is trained, and for each trained
    parameter an fp32 master copy, AdamW's first and second moments (12 bytes)."""

    trainable: int
    frozen: int
    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer


def full_finetune_memory(cfg: ModelConfig) -> FineTuneMemory:
    """Every parameter trained: (2 + 2 + 12)·N bytes."""
    n = count_params(cfg).total
    states = model_states_bytes(n)
    return FineTuneMemory(n, 0, states.weights, states.gradients, states.optimizer)


def lora_memory(cfg: ModelConfig, targets, r: int) -> FineTuneMemory:
    """The base frozen in 16 bits (2·N, no gradient, no optimizer state) and the adapter trained as full
    fine-tuning trains a model: (2 + 2 + 12)·Φ. Activations are left out: LoRA keeps the base's forward and backward
    through it, so they are about the same for both (Hu et al. 2021, Section 4.2, count the states alone too)."""
    n, phi = count_params(cfg).total, lora_param_count(cfg, targets, r)
    adapter = model_states_bytes(phi)
    return FineTuneMemory(phi, n, weight_bytes(n, "bf16") + adapter.weights, adapter.gradients, adapter.optimizer)


ADAMW_FP32_STATE_BYTES = 8  # AdamW in float32, as the lab's CPU run trains: m and v, 4 bytes each, no master copy


def adamw_fp32_state_bytes(n_trainable: int) -> int:
    """What explorer.optim.AdamW holds for ``n_trainable`` float32 parameters: m and v (the fp32 master copy of
    mixed precision is the weight itself here)."""
    return ADAMW_FP32_STATE_BYTES * n_trainable

"""AdamW and the warm-up + cosine learning-rate schedule, written out so that a student can read every line.

AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), for each parameter θ with gradient g at
update t = 1, 2, ...:

    θ ← θ − lr · λ · θ                      weight decay, decoupled: it shrinks θ and never enters m or v
    m ← β1 · m + (1 − β1) · g                first moment: a running mean of the gradient
    v ← β2 · v + (1 − β2) · g²               second moment: a running mean of the squared gradient
    m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)  bias corrections: m and v start at 0
    θ ← θ − lr · m̂ / (√v̂ + ε)

Adam with "L2 regularisation" would add λ·θ to g instead, and Adam's per-parameter scaling would then shrink the
decay of parameters with large gradients: decoupling keeps the decay the same for every weight. The order of the
operations and the placement of ε are torch.optim.AdamW's, so both give the same numbers (tests/test_training_lib.py).

The schedule (Loshchilov & Hutter 2017's cosine annealing after a linear warm-up, as GPT-3 and nanoGPT use it),
for update s of S with W warm-up updates and floor r (a fraction of the peak):

    lr(s) = peak · s / W                                           for s < W
    lr(s) = peak · (r + (1 − r) · ½ · (1 + cos(π · (s − W) / (S − W))))   for W ≤ s ≤ S

which is transformers' get_cosine_schedule_with_warmup (r = 0) and get_cosine_with_min_lr_schedule_with_warmup
(min_lr_rate = r), update by update: update 0 of a warm-up moves nothing (lr = 0) but already fills m and v.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch


class AdamW(torch.optim.Optimizer):
    """AdamW with the formulas above, one parameter at a time (torch's own loop on the CPU works the same way)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 (torch's signature)
        assert closure is None, "AdamW here takes no closure"
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["t"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                p.mul_(1 - lr * decay)                              # θ ← θ − lr·λ·θ
                m.lerp_(g, 1 - beta1)                               # m ← β1·m + (1−β1)·g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)       # v ← β2·v + (1−β2)·g²
                m_hat_scale = 1 - beta1 ** t                        # m̂ = m / (1 − β1^t)
                v_hat_root = math.sqrt(1 - beta2 ** t)              # √v̂ = √v / √(1 − β2^t)
                denom = (v.sqrt() / v_hat_root).add_(eps)           # √v̂ + ε
                p.addcdiv_(m, denom, value=-lr / m_hat_scale)       # θ ← θ − lr·m̂ / (√v̂ + ε)
        return None


def cosine_with_warmup(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """The schedule's factor (lr / peak) at update ``step`` of ``total``, as written in the module docstring."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(0.0, factor * (1 - min_ratio) + min_ratio)


def schedule(peak: float, total: int, warmup: int, min_ratio: float = 0.0) -> list[float]:
    """lr at every update 0 .. total (the last value is where the curve ends; no update uses it)."""
    return [peak * cosine_with_warmup(s, total, warmup, min_ratio) for s in range(total + 1)]


def grouped_grad_norms(groups: dict[str, list[torch.nn.Parameter]],
                       max_norm: float | None) -> tuple[dict[str, float], float]:
    """The gradient's L2 norm per group of parameters (a layer) and over all of them, before clipping; with
    ``max_norm`` the gradients are then scaled by min(1, max_norm / total) as torch.nn.utils.clip_grad_norm_ does.

    One norm per parameter tensor serves both: the total is the root of the sum of the groups' squares, so the
    per-layer picture costs nothing beyond the clipping the training does anyway."""
    names, squares, grads = [], [], []
    for name, params in groups.items():
        gs = [p.grad for p in params if p.grad is not None]
        grads += gs
        norms = torch._foreach_norm(gs) if gs else []
        names.append(name)
        squares.append(torch.stack(norms).square().sum() if gs else torch.zeros(()))
    stacked = torch.stack(squares)
    total = stacked.sum().sqrt()
    if max_norm is not None and grads:
        # clip_grad_norm_'s own formula: scale by max_norm / (total + 1e-6), never above 1.
        torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    per_group = stacked.sqrt().tolist()
    return dict(zip(names, per_group)), float(total)

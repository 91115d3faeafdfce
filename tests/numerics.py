"""How far two float32 computations of the same network may drift apart, and the row-by-row check of it.

float32 keeps 24 significant bits, so one rounding moves a value by at most EPS/2 of its magnitude
(EPS = 2^-23 ≈ 1.19e-7). Every tolerance here is  factor × EPS × magnitude, where the magnitude is the largest
|value| in the same row (one token's vector) of the expected tensor: SmolLM2's residual rows differ a
thousandfold between the first token (an "attention sink" near 25,000) and the others (20 to 700), so one
tolerance for a whole tensor would be useless for the small rows or too tight for the large one.

Two kinds of drift, each with its factor:

- Same arithmetic, written twice (ours in the row-major layout against transformers' eager code): the two codes
  group a few expressions differently (where 1/sqrt(d_k) is applied, LayerNorm's internals), a few roundings per
  layer. Measured: SmolLM2 bit-identical, MiniLM up to 8 EPS after its 6 layers. ``near_exact(depth)`` allows
  4 EPS per layer: a wrong weight, a missing term or a swapped head moves values by 1e-3 of their magnitude or
  far more, ten thousand EPS.
- Same network, sums taken in another order (the decode layout's column-major weights, another CPU's SIMD width,
  another thread count, one row at a time with a KV cache against the whole sequence at once): each output of a
  linear layer is a dot product of K terms, and reordering it changes its rounding by about sqrt(K)·EPS of the
  operands' magnitude (the probabilistic bound of Higham & Mary, SIAM J. Sci. Comput. 2019; the worst case K·EPS
  needs adversarial data). Each block's error rides the residual stream into every later block, so the errors add
  up over depth: ``reordered(depth, k)`` = depth·sqrt(K). Measured on SmolLM2 with K = d_ff = 1536: 3.5 EPS per
  block on an AVX2 EPYC at 2 threads (0 at 1 thread), about 7 on the AVX-512 Xeon where the decode layout first
  failed (resid_post drift 3.9e-3 on rows whose largest value is several hundred); the bound is 39 EPS per block.
"""
from __future__ import annotations

import math

import torch

EPS = torch.finfo(torch.float32).eps
NEAR_EXACT_PER_LAYER = 4


def near_exact(depth: int) -> float:
    """Factor for the same arithmetic written by two codes, after ``depth`` layers."""
    return NEAR_EXACT_PER_LAYER * max(depth, 1)


def reordered(depth: int, k: int) -> float:
    """Factor for the same network with its dot products of length ``k`` summed in another order, after
    ``depth`` layers."""
    return max(depth, 1) * math.sqrt(k)


def widest_sum(cfg) -> int:
    """The longest dot product in a block: d_model for the attention projections, d_ff for the FFN."""
    return max(cfg.d_model, cfg.d_ff, cfg.n_head * cfg.d_head)


def row_scale(expected: torch.Tensor) -> torch.Tensor:
    """The largest |value| of each row (last dimension), kept as a dimension for broadcasting."""
    return expected.detach().abs().amax(-1, keepdim=True).to(torch.float64)


def assert_rows_close(actual: torch.Tensor, expected: torch.Tensor, factor: float, what: str = "",
                      scale: torch.Tensor | None = None, extra: float = 0.0) -> None:
    """|actual - expected| <= factor·EPS·scale + extra elementwise, ``scale`` defaulting to each row's largest
    |expected|; ``extra`` for a rounding of known size on top (a result stored in a narrower type)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = row_scale(expected) if scale is None else scale.to(torch.float64)
    diff = (actual.detach().to(torch.float64) - expected.detach().to(torch.float64)).abs()
    atol = factor * EPS * scale + extra
    if not bool((diff <= atol).all()):
        ratio = diff / (EPS * scale).clamp_min(torch.finfo(torch.float64).tiny)
        worst = int(ratio.argmax())
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), diff.shape))
        raise AssertionError(
            f"{what}: differs by {diff.flatten()[worst].item():.3g} at {where}, "
            f"{ratio.flatten()[worst].item():.1f} EPS of its row's magnitude; allowed {factor:.1f} EPS "
            f"(row magnitude {scale.expand_as(diff).flatten()[worst].item():.3g})")


def pattern_scale(scores: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """What an attention pattern's error scales with: softmax moves p_i by at most p_i·(|Δs_i| + Σ_j p_j|Δs_j|)
    <= 2·max|Δs| (p <= 1), and Δs scales with the largest score the query really sees (its masked keys have
    p = 0 and do not count). Returns 2·max|s| per query row."""
    seen = torch.where(pattern > 0, scores.detach().abs(), torch.zeros_like(scores))
    return 2 * seen.amax(-1, keepdim=True)


def logit_drift(logits: torch.Tensor, cfg, *, near_exact_code: bool = False) -> torch.Tensor:
    """Per row: how far two computations of these logits may be apart (the input of the near-tie check).
    ``near_exact_code`` for the same arithmetic written twice; otherwise sums taken in another order through
    all n_layer blocks and the unembedding."""
    factor = near_exact(cfg.n_layer + 1) if near_exact_code else reordered(cfg.n_layer + 1, widest_sum(cfg))
    return factor * EPS * row_scale(logits).squeeze(-1)


def probs_close(actual: torch.Tensor | float, expected: torch.Tensor | float, logit_tol: float,
                temperature: float = 1.0) -> bool:
    """Probabilities from logits that may differ by ``logit_tol``: p_i = e^{z_i/T} / Σ_j e^{z_j/T}, so moving
    every z by at most δ scales each p by a factor between e^{-2δ/T} and e^{2δ/T}; plus a few roundings of the
    softmax itself."""
    a, e = torch.as_tensor(actual, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    allowed = e.abs() * (math.expm1(2 * logit_tol / temperature) + 8 * EPS)
    return bool(((a - e).abs() <= allowed).all())

"""Positional encodings: sinusoidal (Vaswani et al. 2017, Sec. 3.5), learned (GPT / BERT), RoPE (Su et al. 2021,
in the rotate-half layout of LLaMA) and ALiBi (Press et al. 2022)."""
from __future__ import annotations

import math

import torch


def sinusoidal(n_pos: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(n_pos, d_model) table of the course formula:
    PE(pos, 2i) = sin(pos / base^(2i/d_model)), PE(pos, 2i+1) = cos(pos / base^(2i/d_model))."""
    pos = torch.arange(n_pos, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),)
    angle = pos / base ** (two_i / d_model)  # (P, ceil(d/2))
    pe = torch.zeros(n_pos, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.float()


def rope_inv_freq(d_head: int, theta: float = 10000.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """theta^(-2i/d) for i = 0 .. d/2 - 1: the angular speed of each rotated pair of dimensions."""
    return 1.0 / theta ** (torch.arange(0, d_head, 2, dtype=dtype) / d_head)


def rope_cos_sin(positions: torch.Tensor, d_head: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (T, d_head) for the rotate-half layout: pair i is (x[i], x[i + d/2]).

    The angles are computed in float32, as transformers' LLaMA does: real checkpoints (SmolLM2) then give the
    same logits bit for bit; float64 angles drift from them by ~1e-4 over a few hundred positions."""
    inv_freq = rope_inv_freq(d_head, theta, dtype=torch.float32).to(positions.device)
    angles = positions.to(torch.float32).unsqueeze(1) * inv_freq  # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair of dimensions of x (..., T, d) by its position's angle, so q_m . k_n depends on m - n."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Head slopes of ALiBi (Press et al. 2022, their reference get_slopes). For n a power of two, m_h = 2^(-8h/n),
    a geometric sequence; otherwise the slopes of the largest power of two p below n, followed by every other
    slope of 2p heads, so the formula 2^(-8h/n) no longer holds (explorer.positional_facts.alibi_rule says it)."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        return torch.tensor(power_of_two(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    extra = power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(power_of_two(closest) + extra)


def alibi_bias(
    n_head: int, q_len: int, k_len: int | None = None, *, q_offset: int | None = None, symmetric: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(n_head, q, k) additive bias -slope_h * distance(i, j). Causal models only see j <= i, where the distance is
    i - j; an encoder (symmetric=True) uses |i - j|."""
    k_len = q_len if k_len is None else k_len
    q_offset = k_len - q_len if q_offset is None else q_offset
    i = torch.arange(q_offset, q_offset + q_len, device=device).unsqueeze(1)
    j = torch.arange(k_len, device=device).unsqueeze(0)
    dist = (i - j).abs() if symmetric else (i - j).clamp(min=0)
    return -alibi_slopes(n_head).to(device)[:, None, None] * dist.float()

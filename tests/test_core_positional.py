"""Positional encodings against the course's formulas and their defining properties."""
import math

import torch

from explorer.positional import alibi_bias, alibi_slopes, apply_rope, rope_cos_sin, sinusoidal


def test_sinusoidal_equals_the_course_formula():
    P, d = 50, 20
    pe = sinusoidal(P, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)


def test_sinusoidal_odd_width():
    pe = sinusoidal(4, 7)
    assert pe.shape == (4, 7)
    assert math.isclose(pe[3, 6].item(), math.sin(3 / 10000 ** (6 / 7)), abs_tol=1e-6)


def test_rope_scores_depend_only_on_relative_distance():
    d, theta = 16, 10000.0
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(d, generator=g), torch.randn(d, generator=g)
    cos, sin = rope_cos_sin(torch.arange(40), d, theta)
    qs, ks = apply_rope(q.expand(40, d), cos, sin), apply_rope(k.expand(40, d), cos, sin)
    for delta in (0, 1, 5, 17):
        dots = torch.stack([qs[m] @ ks[m - delta] for m in range(delta, 40)])
        torch.testing.assert_close(dots, dots[0].expand_as(dots), atol=1e-4, rtol=1e-4)
    assert not torch.isclose(qs[10] @ ks[9], qs[10] @ ks[3])  # but it does depend on the distance


def test_rope_preserves_norm_and_matches_complex_rotation():
    d = 8
    x = torch.randn(5, d, generator=torch.Generator().manual_seed(1))  # the same data whatever ran before
    cos, sin = rope_cos_sin(torch.arange(5), d, 500.0)
    y = apply_rope(x, cos, sin)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    # Rotate-half layout: pair i is (x[i], x[i + d/2]), rotated by angle pos * theta^(-2i/d).
    z = torch.complex(x[:, : d // 2], x[:, d // 2:])
    freqs = 500.0 ** (-torch.arange(0, d, 2) / d)
    rotated = z * torch.polar(torch.ones(5, d // 2), torch.arange(5)[:, None] * freqs)
    torch.testing.assert_close(y, torch.cat([rotated.real, rotated.imag], -1), atol=1e-5, rtol=1e-5)


def test_alibi_slopes_from_the_paper():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    # Non-power-of-two: the 8 slopes of n=8, then every other slope of n=16.
    twelve = alibi_slopes(12)
    torch.testing.assert_close(twelve[:8], alibi_slopes(8))
    torch.testing.assert_close(twelve[8:], alibi_slopes(16)[0::2][:4])
    b = alibi_bias(2, 4)
    assert b[0, 3, 0].item() == -0.0625 * 3 and b[0, 0, 3].item() == 0

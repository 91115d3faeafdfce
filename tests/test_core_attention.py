"""explorer.attention against torch's fused references."""
import math

import pytest
import torch
import torch.nn.functional as F

from explorer.attention import additive_mask, attention, build_mask, repeat_kv

MASKS = [
    ("causal", {}),
    ("bidirectional", {}),
    ("sliding_window", {"window": 3}),
    ("sliding_window", {"window": 1}),
    ("prefix", {"prefix_len": 4}),
]


def _qkv(B=2, H=4, T=9, d=16, seed=0, kv_heads=None):
    g = torch.Generator().manual_seed(seed)
    kv = kv_heads or H
    return (torch.randn(B, H, T, d, generator=g), torch.randn(B, kv, T, d, generator=g),
            torch.randn(B, kv, T, d, generator=g))


@pytest.mark.parametrize("kind,kw", MASKS, ids=lambda v: str(v))
def test_matches_scaled_dot_product_attention(kind, kw):
    q, k, v = _qkv()
    allowed = build_mask(kind, q.shape[2], **kw)
    ours = attention(q, k, v, allowed)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    torch.testing.assert_close(ours.z, ref, atol=1e-5, rtol=1e-5)
    # The weights themselves, from SDPA's own formula on an identity V.
    eye = torch.eye(q.shape[2]).expand(2, 4, -1, -1)
    ref_weights = F.scaled_dot_product_attention(q, k, eye, attn_mask=allowed)
    torch.testing.assert_close(ours.pattern, ref_weights, atol=1e-5, rtol=1e-5)


def test_mask_shapes_follow_the_definitions():
    c = build_mask("causal", 5)
    assert torch.equal(c, torch.ones(5, 5).tril().bool())
    w = build_mask("sliding_window", 6, window=2)
    assert w.sum(1).tolist() == [1, 2, 2, 2, 2, 2]
    p = build_mask("prefix", 5, prefix_len=3)
    assert p[0].tolist() == [True, True, True, False, False]  # the prefix sees itself both ways
    assert p[4].tolist() == [True] * 5
    assert torch.equal(build_mask("bidirectional", 4), torch.ones(4, 4, dtype=torch.bool))
    m = additive_mask(c)
    assert m[0, 1] == float("-inf") and m[1, 0] == 0


def test_mask_with_kv_cache_offset_is_the_last_rows_of_the_full_mask():
    full = build_mask("sliding_window", 7, window=3)
    assert torch.equal(build_mask("sliding_window", 2, 7, window=3), full[-2:])
    assert torch.equal(build_mask("causal", 1, 7), build_mask("causal", 7)[-1:])


def test_causal_weights_are_exactly_zero_in_the_future_and_rows_sum_to_one():
    q, k, v = _qkv(T=12, seed=3)
    res = attention(q * 10, k * 10, v, build_mask("causal", 12))  # large scores: softmax close to saturating
    future = torch.ones(12, 12).triu(1).bool()
    assert (res.pattern[..., future] == 0).all()
    torch.testing.assert_close(res.pattern.sum(-1), torch.ones(2, 4, 12))


def test_gqa_equals_repeating_kv_heads():
    q, k, v = _qkv(H=8, kv_heads=2, seed=5)
    allowed = build_mask("causal", q.shape[2])
    grouped = attention(q, k, v, allowed)
    repeated = attention(q, repeat_kv(k, 4), repeat_kv(v, 4), allowed)
    torch.testing.assert_close(grouped.z, repeated.z)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)
    torch.testing.assert_close(grouped.z, ref, atol=1e-5, rtol=1e-5)
    # Query heads 0-3 share key head 0: their scores use the same keys.
    torch.testing.assert_close(grouped.scores[:, 1], q[:, 1] @ k[:, 0].transpose(-1, -2) / math.sqrt(16))


def test_scale_and_fully_masked_rows():
    q, k, v = _qkv(T=4)
    unscaled = attention(q, k, v, scale=1.0)
    torch.testing.assert_close(unscaled.scores, q @ k.transpose(-1, -2))
    allowed = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    allowed[0, :, 2, :] = False  # a query that may see nothing
    res = attention(q, k, v, allowed)
    assert torch.isfinite(res.z).all() and (res.pattern[0, :, 2] == 0).all()


def test_a_wrong_mask_kind_or_window_is_named_in_the_message():
    with pytest.raises(ValueError, match=r"mask must be one of causal, bidirectional, sliding_window, prefix "
                                         r"\(got 'diagonal'\)"):
        build_mask("diagonal", 3)
    with pytest.raises(ValueError, match=r"window must be a whole number of at least 1 \(got 0\)"):
        build_mask("sliding_window", 3, window=0)

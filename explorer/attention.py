"""Masks and scaled dot-product attention computed explicitly, returning every intermediate step.

Implements Section 3.2.1 of "Attention Is All You Need": softmax(Q K^T / sqrt(d_k) + M) V, with the mask matrix M
of the course notes (0 where attention is allowed, -inf where it is not). Never fused: the weights are the product.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import choice, whole_number
from .config import MASKS


def build_mask(
    kind: str,
    q_len: int,
    k_len: int | None = None,
    *,
    window: int | None = None,
    prefix_len: int = 0,
    q_offset: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean (q_len, k_len) matrix, True where query i may attend to key j.

    Query i sits at absolute position ``q_offset + i`` (by default the queries are the last q_len of the k_len
    keys, which is what a KV cache needs); key j sits at position j.
    - causal: j <= i
    - bidirectional: every j
    - sliding_window: i - window < j <= i (Longformer / Mistral: the last ``window`` tokens, itself included)
    - prefix: bidirectional inside the first ``prefix_len`` tokens, causal after (prefix-LM, as in UniLM / T5)
    """
    choice("mask", kind, MASKS)
    k_len = q_len if k_len is None else k_len
    if q_offset is None:
        q_offset = k_len - q_len
    if kind == "bidirectional":
        return torch.ones(q_len, k_len, dtype=torch.bool, device=device)
    i = torch.arange(q_offset, q_offset + q_len, device=device).unsqueeze(1)  # (q, 1)
    j = torch.arange(k_len, device=device).unsqueeze(0)  # (1, k)
    if kind == "causal":
        return j <= i
    if kind == "sliding_window":
        return (j <= i) & (j > i - whole_number("window", window, 1))
    return (j <= i) | (j < prefix_len)  # prefix


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The course's M: 0 where allowed, -inf where masked."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))


def padding_allowed(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, k) with 1 for real tokens and 0 for padding -> (B, 1, 1, k) boolean, broadcastable over heads and queries."""
    return attention_mask.bool()[:, None, None, :]


@dataclass
class AttentionResult:
    """Every step of one attention call. Shapes: (B, n_head, q, k) for the matrices, (B, n_head, q, d_v) for z."""

    scores: torch.Tensor  # Q K^T * scale (+ positional bias), before the mask
    masked_scores: torch.Tensor  # scores + M, with -inf where masked
    pattern: torch.Tensor  # softmax over keys; rows with no allowed key are all zero
    z: torch.Tensor  # pattern @ V, one output per head


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, n_kv, T, d) -> (B, n_kv * groups, T, d): each key/value head serves ``groups`` query heads (GQA / MQA)."""
    if groups == 1:
        return x
    return x.repeat_interleave(groups, dim=1)


def attention_scores(
    q: torch.Tensor, k: torch.Tensor, *, bias: torch.Tensor | None = None, scale: float | None = None
) -> torch.Tensor:
    """Q K^T * scale (+ bias), before the mask: (B, n_head, q, k).

    q: (B, n_head, q, d_k); k: (B, n_kv_head, k, d_k) with n_head a multiple of n_kv_head. scale defaults to
    1 / sqrt(d_k). bias is additive (e.g. ALiBi), broadcastable to the result, and added in the scores' dtype.
    """
    B, nh, n_q, d_k = q.shape
    n_kv = k.shape[1]
    if scale is None:
        scale = 1.0 / math.sqrt(d_k)
    # GQA / MQA without copying K once per query head (what repeat_kv does): the query heads that share key head g
    # are stacked as extra query rows of g. Same numbers, one matmul per key head.
    q_grouped = q.reshape(B, n_kv, (nh // n_kv) * n_q, d_k)  # (B, nkv, groups * q, d)
    scores = (torch.matmul(q_grouped, k.transpose(-2, -1)) * scale).view(B, nh, n_q, -1)  # (B, nh, q, k)
    return scores if bias is None else scores + bias.to(scores.dtype)


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores + M, softmax over keys): M is -inf where ``allowed`` (broadcastable to scores) is False.

    A query with no visible key (e.g. every key is padding) would get NaN from softmax; it attends to nothing.
    """
    if allowed is None:
        return scores, torch.softmax(scores, dim=-1)
    masked = scores.masked_fill(~allowed, float("-inf"))
    return masked, torch.softmax(masked, dim=-1).nan_to_num(0.0)


def weighted_values(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """pattern @ V per head: (B, n_head, q, k) and (B, n_kv_head, k, d_v) -> (B, n_head, q, d_v), GQA grouped as
    in attention_scores."""
    B, nh, n_q, n_k = pattern.shape
    n_kv = v.shape[1]
    return torch.matmul(pattern.reshape(B, n_kv, (nh // n_kv) * n_q, n_k), v).view(B, nh, n_q, -1)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor | None = None,
    *,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> AttentionResult:
    """softmax(Q K^T * scale + bias + M) V, explicitly: attention_scores, masked_softmax, weighted_values.

    q: (B, n_head, q, d_k); k, v: (B, n_kv_head, k, d_k / d_v) with n_head a multiple of n_kv_head.
    allowed: boolean, broadcastable to (B, n_head, q, k). bias: additive, e.g. ALiBi, broadcastable likewise.
    scale defaults to 1 / sqrt(d_k); pass 1.0 to see attention without the scaling.
    """
    scores = attention_scores(q, k, bias=bias, scale=scale)
    masked, pattern = masked_softmax(scores, allowed)
    return AttentionResult(scores=scores, masked_scores=masked, pattern=pattern, z=weighted_values(pattern, v))

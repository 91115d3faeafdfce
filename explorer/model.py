"""A Transformer built from a ModelConfig, with named hook points around every interesting tensor.

Decoder-only (GPT, LLaMA), encoder-only (BERT) and the original encoder-decoder (cross-attention as the third
sub-layer of each decoder block, Figure 1 of Vaswani et al. 2017). Attention is always computed explicitly.

Hook points are not modules holding state: every forward gets its own ``RunContext``, so one model can be shared
by many sessions at once (a cached model in the app) without one student's cache landing in another's.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import attention_scores, build_mask, masked_softmax, padding_allowed, weighted_values
from .config import ModelConfig
from .positional import alibi_bias, alibi_slopes, apply_rope, rope_cos_sin, sinusoidal

# Every name run_with_cache can return, with its shape. B = batch, T = sequence (queries), S = keys / source,
# nh = n_head, nkv = n_kv_head, dh = d_head. "{i}" is a block index. An encoder-decoder has its encoder under the
# prefix "encoder." (encoder.embed.*, encoder.blocks.{i}.*, encoder.final); its decoder uses the plain names and
# adds the cross_attn entries and resid_cross.
# Every name can be replaced by a hook (run_with_hooks), and the rest of the forward uses the replacement. With a
# KV cache the cache keeps the model's own keys and values; the k / v hooks see the whole context at every step, so
# a hook acts the same with or without the cache and is never applied twice to a cached position.
HOOK_NAMES: dict[str, str] = {
    "embed.tok": "(B, T, d_model) token embeddings (times sqrt(d_model) when embed_scale)",
    "embed.pos": "(T, d_model) positional vectors added to the embeddings (zeros for rope / alibi / none); "
                 "(B, T, d_model) with a SlotKVCache, whose rows sit at their own positions",
    "embed.type": "(B, T, d_model) segment embeddings (only when type_vocab_size > 0)",
    "embed.out": "(B, T, d_model) what enters block 0 (sum of the above, normalised when embed_norm)",
    "blocks.{i}.resid_pre": "(B, T, d_model) residual stream entering block i",
    "blocks.{i}.attn.q": "(B, nh, T, dh) queries (after RoPE when positional='rope')",
    "blocks.{i}.attn.k": "(B, nkv, S, dh) keys (after RoPE), the whole context when a KV cache is used",
    "blocks.{i}.attn.v": "(B, nkv, S, dh) values, the whole context when a KV cache is used",
    "blocks.{i}.attn.scores": "(B, nh, T, S) Q K^T / sqrt(dh) (+ ALiBi bias), before the mask (applied after)",
    "blocks.{i}.attn.pattern": "(B, nh, T, S) attention weights after the mask and softmax",
    "blocks.{i}.attn.z": "(B, nh, T, dh) per-head outputs, pattern @ V",
    "blocks.{i}.attn.out": "(B, T, d_model) concat(heads) @ W_O",
    "blocks.{i}.resid_mid": "(B, T, d_model) residual stream after the self-attention sub-layer",
    "blocks.{i}.cross_attn.q": "(B, nh, T, dh) decoder queries (encoder-decoder only)",
    "blocks.{i}.cross_attn.k": "(B, nkv, S, dh) keys from the encoder output",
    "blocks.{i}.cross_attn.v": "(B, nkv, S, dh) values from the encoder output",
    "blocks.{i}.cross_attn.scores": "(B, nh, T, S) scaled scores over the source",
    "blocks.{i}.cross_attn.pattern": "(B, nh, T, S) cross-attention weights",
    "blocks.{i}.cross_attn.z": "(B, nh, T, dh) per-head cross-attention outputs",
    "blocks.{i}.cross_attn.out": "(B, T, d_model) cross-attention output after W_O",
    "blocks.{i}.resid_cross": "(B, T, d_model) residual stream after the cross-attention sub-layer",
    "blocks.{i}.mlp.pre": "(B, T, d_ff) FFN hidden before the activation (the gate's input for SwiGLU)",
    "blocks.{i}.mlp.post": "(B, T, d_ff) FFN hidden after the activation (act(gate) * up for SwiGLU)",
    "blocks.{i}.mlp.out": "(B, T, d_model) FFN output",
    "blocks.{i}.resid_post": "(B, T, d_model) residual stream leaving block i",
    "final": "(B, T, d_model) the last hidden state (after the final norm of a pre-norm model)",
    "logits": "(B, T, vocab_size) scores for the next / masked token",
}

HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]


@dataclass
class RunContext:
    """Per-call state: which tensors to keep and which hooks to run. Never stored on the model."""

    keep: Callable[[str], bool] | None = None
    hooks: dict[str, HookFn] = field(default_factory=dict)
    cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        fn = self.hooks.get(name)
        if fn is not None:
            replaced = fn(x, name)
            if replaced is not None:
                x = _checked_replacement(name, x, replaced)
        if self.keep is not None and self.keep(name):
            self.cache[name] = x.detach()
        return x


def _checked_replacement(name: str, x: torch.Tensor, replaced) -> torch.Tensor:
    # A wrong shape would often broadcast silently (a (T, d) tensor for a (B, T, d) one) and give wrong numbers.
    if not isinstance(replaced, torch.Tensor):
        raise TypeError(f"The hook on {name} returned {type(replaced).__name__}; return a tensor or None.")
    if replaced.shape != x.shape:
        raise ValueError(f"The hook on {name} returned shape {tuple(replaced.shape)}; it must keep the shape "
                         f"{tuple(x.shape)} (see explorer.model.HOOK_NAMES).")
    return replaced


class KVCache:
    """Keys and values of the tokens seen so far, one pair per decoder block, for token-by-token generation."""

    def __init__(self, n_layer: int):
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v if t is not None)


class SlotKVCache:
    """Preallocated keys and values of several sequences at once, one row ("slot") each, every row with its own
    length: the cache of the batched generation engine (explorer.engine).

    One (slots, n_kv_head, capacity, d_head) tensor per layer and per K / V, written in place: a decoding step
    writes one column per row instead of concatenating every layer's whole cache (KVCache.update copies the
    cache it grows, a cost that grows with the text). Beyond a row's length its columns hold zeros or a previous
    occupant's keys; every forward masks them (finite numbers, so a masked weight of 0 times them stays 0).
    """

    def __init__(self, cfg: ModelConfig, slots: int, capacity: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        shape = (slots, cfg.n_kv_head, capacity, cfg.d_head)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layer)]
        self.lengths = [0] * slots  # tokens held by each row

    @property
    def slots(self) -> int:
        return self.k[0].shape[0]

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    def resized(self, slots: int, capacity: int) -> "SlotKVCache":
        """A cache of another size holding the same rows (those that fit)."""
        _, nkv, _, dh = self.k[0].shape
        out = SlotKVCache.__new__(SlotKVCache)
        out.k, out.v = [], []
        keep_rows, keep_cols = min(slots, self.slots), min(capacity, self.capacity)
        for src, dst in ((self.k, out.k), (self.v, out.v)):
            for t in src:
                new = t.new_zeros((slots, nkv, capacity, dh))
                new[:keep_rows, :, :keep_cols] = t[:keep_rows, :, :keep_cols]
                dst.append(new)
        out.lengths = (self.lengths + [0] * slots)[:slots]
        return out

    def move(self, src: int, dst: int) -> None:
        """Row ``src`` becomes row ``dst`` (the engine keeps its running rows packed at the top)."""
        n = self.lengths[src]
        for t in self.k + self.v:
            t[dst, :, :n] = t[src, :, :n]
        self.lengths[dst], self.lengths[src] = n, 0

    def snapshot(self, row: int, n: int) -> torch.Tensor:
        """A copy of row ``row``'s first ``n`` keys and values: (2, n_layer, n_kv_head, n, d_head)."""
        return torch.stack([torch.stack([t[row, :, :n] for t in self.k]),
                            torch.stack([t[row, :, :n] for t in self.v])])

    def copy_in(self, row: int, kv: torch.Tensor, n: int) -> None:
        """Row ``row`` holds the first ``n`` keys and values of ``kv`` (a snapshot), and nothing after them."""
        if n > self.capacity or n > kv.shape[3]:
            raise ValueError(f"{n} tokens do not fit a row of {self.capacity} or a snapshot of {kv.shape[3]}.")
        for layer, (k, v) in enumerate(zip(self.k, self.v)):
            k[row, :, :n] = kv[0, layer, :, :n]
            v[row, :, :n] = kv[1, layer, :, :n]
        self.lengths[row] = n

    def rows(self, first: int, stop: int) -> "SlotView":
        """What one forward reads and writes: rows first .. stop - 1, each continuing from its own length."""
        return SlotView(self, first, stop)

    def pack(self, rows: Sequence[int], sizes: Sequence[int]) -> "SlotPack":
        """What one forward of several rows' new tokens laid end to end reads and writes: ``sizes[b]`` tokens
        continuing row ``rows[b]`` (the prompts of several joining requests, read in one forward)."""
        return SlotPack(self, rows, sizes)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


class SlotView:
    """Rows [first, stop) of a SlotKVCache for one forward: row b's new tokens sit at positions starts[b] ...,
    and its keys are the first starts[b] + T columns; the columns after those are masked (Pass.build)."""

    def __init__(self, cache: SlotKVCache, first: int, stop: int):
        self.cache, self.first, self.stop = cache, first, stop
        self.start_list = cache.lengths[first:stop]
        self.starts = torch.tensor(self.start_list, dtype=torch.long, device=cache.k[0].device)  # (B,)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = k.shape[0], k.shape[2]
        keys = max(self.start_list) + T
        if keys > self.cache.capacity:
            raise ValueError(f"The slot cache holds {self.cache.capacity} tokens per row; {keys} needed.")
        K, V = self.cache.k[layer][self.first:self.stop], self.cache.v[layer][self.first:self.stop]
        if B == 1:
            s = self.start_list[0]
            K[0, :, s:s + T] = k[0]
            V[0, :, s:s + T] = v[0]
        elif T == 1:  # a decoding step: one column per row, at the row's own position
            rows = torch.arange(B, device=k.device)
            K[rows, :, self.starts] = k[:, :, 0]
            V[rows, :, self.starts] = v[:, :, 0]
        else:
            for b, s in enumerate(self.start_list):
                K[b, :, s:s + T] = k[b]
                V[b, :, s:s + T] = v[b]
        return K[:, :, :keys], V[:, :, :keys]  # the caller moves cache.lengths on once the forward succeeded


class SlotPack:
    """Several rows' new tokens in one sequence (B = 1), as vLLM packs its prefills: segment b is ``sizes[b]``
    tokens that continue cache row ``rows[b]`` from its length. A segment's queries see only its own row's keys
    (Pass._build_packed), so packing adds no padding: the linear layers run on exactly the tokens read, and the
    attention of a segment sums over the other segments' columns as exact zeros."""

    def __init__(self, cache: SlotKVCache, rows: Sequence[int], sizes: Sequence[int]):
        if len(rows) != len(sizes) or not rows or min(sizes) < 1 or len(set(rows)) != len(rows):
            raise ValueError("A pack needs distinct rows with at least one new token each.")
        self.cache, self.rows, self.sizes = cache, [int(r) for r in rows], [int(n) for n in sizes]
        self.start_list = [cache.lengths[r] for r in self.rows]
        self.ends = [s + n for s, n in zip(self.start_list, self.sizes)]  # keys of each segment after the write
        device = cache.k[0].device
        self.query_positions = torch.cat([torch.arange(s, e, device=device)
                                          for s, e in zip(self.start_list, self.ends)])  # (T,)
        self.query_segment = torch.repeat_interleave(torch.arange(len(rows), device=device),
                                                     torch.tensor(self.sizes, device=device))  # (T,)
        self.key_positions = torch.cat([torch.arange(e, device=device) for e in self.ends])  # (S,)
        self.key_segment = torch.repeat_interleave(torch.arange(len(rows), device=device),
                                                   torch.tensor(self.ends, device=device))  # (S,)
        self.last_queries = list(itertools.accumulate(self.sizes))  # one past each segment's last query
        self.first_keys = [0, *itertools.accumulate(self.ends)][:-1]  # where each segment's keys start

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if max(self.ends) > self.cache.capacity:
            raise ValueError(f"The slot cache holds {self.cache.capacity} tokens per row; {max(self.ends)} needed.")
        K, V = self.cache.k[layer], self.cache.v[layer]
        q = 0
        for r, s, n in zip(self.rows, self.start_list, self.sizes):
            K[r, :, s:s + n] = k[0, :, q:q + n]
            V[r, :, s:s + n] = v[0, :, q:q + n]
            q += n
        if len(self.rows) == 1:  # one segment: the row itself, no copy (the single-row view's numbers)
            r, e = self.rows[0], self.ends[0]
            return K[r:r + 1, :, :e], V[r:r + 1, :, :e]
        keys = torch.cat([K[r, :, :e] for r, e in zip(self.rows, self.ends)], dim=1)[None]  # (1, nkv, S, dh)
        values = torch.cat([V[r, :, :e] for r, e in zip(self.rows, self.ends)], dim=1)[None]
        return keys, values  # the caller moves cache.lengths on once the forward succeeded


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019), computed in float32 as LLaMA does."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


@dataclass
class Pass:
    """One forward through a stack: what every block needs besides its input, worked out once per call."""

    ctx: RunContext | None  # this call's hooks and kept tensors; None runs no hook at all
    start: int  # absolute position of the first token (the KV cache length)
    allowed: torch.Tensor | None  # (T, S) or (B, 1, T, S): True where self-attention may look; None: everywhere
    bias: torch.Tensor | None = None  # (nh, T, S) ALiBi
    rope: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin (T, dh) of the query positions
    kv_cache: KVCache | SlotView | SlotPack | None = None
    memory: torch.Tensor | None = None  # (B, S_src, d_model) the encoder's output, for cross-attention
    memory_allowed: torch.Tensor | None = None  # (B, 1, 1, S_src): False on source padding
    token_type_ids: torch.Tensor | None = None  # (B, T) segments
    positions: torch.Tensor | None = None  # (B, T) per-row positions (a SlotView); None: start .. start + T - 1

    @classmethod
    def build(cls, cfg: ModelConfig, tokens: torch.Tensor, ctx: RunContext | None, *, mask: str,
              kv_cache: KVCache | None = None, attention_mask: torch.Tensor | None = None,
              memory: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> Pass:
        """The pass of ``tokens`` (B, T) under ``mask``; attention_mask / memory_mask are 1 for real tokens and 0
        for padding, over the keys (cached ones included) / the source."""
        if isinstance(kv_cache, SlotView):
            if attention_mask is not None or memory is not None or token_type_ids is not None:
                raise ValueError("A slot cache serves a decoder's generation: no padding mask, source or segments.")
            return cls._build_rows(cfg, tokens, ctx, mask, kv_cache)
        if isinstance(kv_cache, SlotPack):
            if attention_mask is not None or memory is not None or token_type_ids is not None:
                raise ValueError("A slot cache serves a decoder's generation: no padding mask, source or segments.")
            return cls._build_packed(cfg, tokens, ctx, mask, kv_cache)
        T, device = tokens.shape[1], tokens.device
        start = 0 if kv_cache is None else kv_cache.length
        S = start + T  # the keys: cached tokens, then these
        if S > cfg.max_seq_len:
            raise ValueError(f"The sequence ({S} tokens) is longer than this model's context (max_seq_len = "
                             f"{cfg.max_seq_len}); shorten the text.")
        # A decoding step of a causal model: the newest token may see every key, so there is nothing to mask.
        allowed = None if T == 1 and mask == "causal" else build_mask(
            mask, T, S, window=cfg.window, prefix_len=cfg.prefix_len, q_offset=start, device=device)  # (T, S)
        if attention_mask is not None:
            padding = padding_allowed(attention_mask)  # (B, 1, 1, S)
            allowed = padding if allowed is None else allowed & padding  # (B, 1, T, S)
        bias = rope = None
        if cfg.positional == "alibi":
            bias = alibi_bias(cfg.n_head, T, S, q_offset=start, symmetric=mask == "bidirectional", device=device)
        elif cfg.positional == "rope":
            rope = rope_cos_sin(torch.arange(start, S, device=device), cfg.d_head, cfg.rope_theta)
        return cls(ctx, start, allowed, bias, rope, kv_cache, memory,
                   None if memory_mask is None else padding_allowed(memory_mask), token_type_ids)

    @classmethod
    def _build_rows(cls, cfg: ModelConfig, tokens: torch.Tensor, ctx: RunContext | None, mask: str,
                    view: SlotView) -> Pass:
        """The pass of rows that each continue their own sequence: row b's queries sit at positions
        starts[b] .. starts[b] + T - 1 and see its own first starts[b] + T keys, under ``mask``; the columns
        beyond are another row's length (padding) and are masked. Positions, masks and biases are the ones a
        row would get alone, element by element."""
        T, device = tokens.shape[1], tokens.device
        S = max(view.start_list) + T
        if S > cfg.max_seq_len:
            raise ValueError(f"The sequence ({S} tokens) is longer than this model's context (max_seq_len = "
                             f"{cfg.max_seq_len}); shorten the text.")
        positions = view.starts[:, None] + torch.arange(T, device=device)  # (B, T)
        i = positions[:, :, None]  # (B, T, 1) the query's absolute position
        j = torch.arange(S, device=device)[None, None, :]  # (1, 1, S) the key's
        own = j < (view.starts[:, None, None] + T)  # the row's own keys, not padding
        if mask == "causal" and T == 1 and len(set(view.start_list)) == 1:
            allowed = None  # rows of one length, one new token each: every key is the row's own and visible
        elif mask == "causal":
            allowed = j <= i
        elif mask == "sliding_window":
            allowed = (j <= i) & (j > i - cfg.window)
        elif mask == "prefix":
            allowed = ((j <= i) | (j < cfg.prefix_len)) & own
        else:  # bidirectional
            allowed = own
        bias = rope = None
        if cfg.positional == "alibi":
            dist = (i - j).abs() if mask == "bidirectional" else (i - j).clamp(min=0)  # (B, T, S)
            slopes = alibi_slopes(cfg.n_head).to(device)[None, :, None, None]
            bias = -slopes * dist[:, None].float()  # (B, nh, T, S)
        elif cfg.positional == "rope":
            cos, sin = rope_cos_sin(positions.reshape(-1), cfg.d_head, cfg.rope_theta)  # (B*T, dh)
            rope = cos.view(-1, 1, T, cfg.d_head), sin.view(-1, 1, T, cfg.d_head)  # (B, 1, T, dh) over heads
        return cls(ctx, 0, None if allowed is None else allowed[:, None], bias, rope, view, positions=positions)

    @classmethod
    def _build_packed(cls, cfg: ModelConfig, tokens: torch.Tensor, ctx: RunContext | None, mask: str,
                      pack: SlotPack) -> Pass:
        """The pass of several rows' segments laid end to end (one batch row): a query sees the keys of its own
        segment's row only, at that row's positions, under ``mask``: element by element what the row would get
        read alone, with the other segments' keys masked."""
        T, device = tokens.shape[1], tokens.device
        if tokens.shape[0] != 1 or T != len(pack.query_positions):
            raise ValueError(f"A pack of {sum(pack.sizes)} tokens reads one row of them, got {tuple(tokens.shape)}.")
        if max(pack.ends) > cfg.max_seq_len:
            raise ValueError(f"The sequence ({max(pack.ends)} tokens) is longer than this model's context "
                             f"(max_seq_len = {cfg.max_seq_len}); shorten the text.")
        i = pack.query_positions[:, None]  # (T, 1) the query's position in its own row
        j = pack.key_positions[None, :]  # (1, S) the key's
        own = pack.query_segment[:, None] == pack.key_segment[None, :]  # (T, S) the same row
        if mask == "causal":
            allowed = own & (j <= i)
        elif mask == "sliding_window":
            allowed = own & (j <= i) & (j > i - cfg.window)
        elif mask == "prefix":
            allowed = own & ((j <= i) | (j < cfg.prefix_len))
        else:  # bidirectional
            allowed = own
        bias = rope = None
        if cfg.positional == "alibi":
            dist = (i - j).abs() if mask == "bidirectional" else (i - j).clamp(min=0)  # (T, S)
            bias = -alibi_slopes(cfg.n_head).to(device)[None, :, None, None] * dist[None, None].float()
        elif cfg.positional == "rope":
            cos, sin = rope_cos_sin(pack.query_positions, cfg.d_head, cfg.rope_theta)  # (T, dh)
            rope = cos.view(1, 1, T, cfg.d_head), sin.view(1, 1, T, cfg.d_head)
        return cls(ctx, 0, allowed[None, None], bias, rope, pack, positions=pack.query_positions[None])

    def hook(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return x if self.ctx is None else self.ctx(name, x)


class Attention(nn.Module):
    """Multi-head attention with W_Q, W_K, W_V, W_O (Section 3.2.2); n_kv_head < n_head gives GQA / MQA.

    ``name`` is its hook prefix (``blocks.0.attn``); ``layer`` its slot in the KV cache."""

    def __init__(self, cfg: ModelConfig, name: str, layer: int, cross: bool = False):
        super().__init__()
        self.cfg, self.name, self.layer, self.cross = cfg, name, layer, cross
        inner, kv_inner = cfg.n_head * cfg.d_head, cfg.n_kv_head * cfg.d_head
        self.W_q = nn.Linear(cfg.d_model, inner, bias=cfg.qkv_bias)
        self.W_k = nn.Linear(cfg.d_model, kv_inner, bias=cfg.qkv_bias)
        self.W_v = nn.Linear(cfg.d_model, kv_inner, bias=cfg.qkv_bias)
        self.W_o = nn.Linear(inner, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor, p: Pass) -> torch.Tensor:
        cfg, name, (B, T, _) = self.cfg, self.name, x.shape
        src = p.memory if self.cross else x
        q = self.W_q(x).view(B, T, cfg.n_head, cfg.d_head).transpose(1, 2)  # (B, nh, T, dh)
        k = self.W_k(src).view(B, -1, cfg.n_kv_head, cfg.d_head).transpose(1, 2)  # (B, nkv, S, dh)
        v = self.W_v(src).view(B, -1, cfg.n_kv_head, cfg.d_head).transpose(1, 2)  # (B, nkv, S, dh)
        if self.cross:
            allowed, bias = p.memory_allowed, None
        else:
            if p.rope is not None:
                q, k = apply_rope(q, *p.rope), apply_rope(k, *p.rope)
            if p.kv_cache is not None:
                k, v = p.kv_cache.update(self.layer, k, v)  # (B, nkv, start + T, dh)
            allowed, bias = p.allowed, p.bias
        q, k, v = p.hook(f"{name}.q", q), p.hook(f"{name}.k", k), p.hook(f"{name}.v", v)
        # Each step starts from the hooked result of the one before: a replaced score matrix is masked and
        # softmaxed like the model's own, a replaced pattern weighs the values.
        scores = p.hook(f"{name}.scores", attention_scores(q, k, bias=bias))  # (B, nh, T, S)
        pattern = p.hook(f"{name}.pattern", masked_softmax(scores, allowed)[1])  # (B, nh, T, S)
        z = p.hook(f"{name}.z", weighted_values(pattern, v))  # (B, nh, T, dh)
        return p.hook(f"{name}.out", self.W_o(z.transpose(1, 2).reshape(B, T, -1)))  # (B, T, d_model)


class MLP(nn.Module):
    """The position-wise feed-forward network (Section 3.3): act(x W1 + b1) W2 + b2, or SwiGLU (Shazeer 2020)."""

    def __init__(self, cfg: ModelConfig, name: str):
        super().__init__()
        self.cfg, self.name = cfg, name
        if cfg.activation == "swiglu":
            self.W_gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.W_in = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.W_out = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor, p: Pass) -> torch.Tensor:
        act, name = self.cfg.activation, self.name
        if act == "swiglu":
            pre = p.hook(f"{name}.pre", self.W_gate(x))  # (B, T, d_ff)
            post = F.silu(pre) * self.W_in(x)
        else:
            pre = p.hook(f"{name}.pre", self.W_in(x))  # (B, T, d_ff)
            if act == "relu":
                post = F.relu(pre)
            else:
                post = F.gelu(pre, approximate="tanh" if act == "gelu_tanh" else "none")
        return p.hook(f"{name}.out", self.W_out(p.hook(f"{name}.post", post)))  # (B, T, d_model)


class Block(nn.Module):
    """One layer: self-attention, (cross-attention), FFN, each wrapped in a residual and a norm.

    post-norm (the course / BERT): x = Norm(x + Sublayer(x)); pre-norm (GPT-2, LLaMA): x = x + Sublayer(Norm(x)).
    """

    def __init__(self, cfg: ModelConfig, name: str, layer: int, cross: bool = False):
        super().__init__()
        self.cfg, self.name = cfg, name
        self.ln_attn = make_norm(cfg)
        self.attn = Attention(cfg, f"{name}.attn", layer)
        self.ln_cross = make_norm(cfg) if cross else None
        self.cross_attn = Attention(cfg, f"{name}.cross_attn", layer, cross=True) if cross else None
        self.ln_mlp = make_norm(cfg)
        self.mlp = MLP(cfg, f"{name}.mlp")
        self.drop = nn.Dropout(cfg.dropout)

    def _sublayer(self, x: torch.Tensor, norm: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if self.cfg.norm_position == "pre":
            return x + self.drop(fn(norm(x)))
        return norm(x + self.drop(fn(x)))

    def forward(self, x: torch.Tensor, p: Pass) -> torch.Tensor:
        name = self.name
        x = p.hook(f"{name}.resid_pre", x)  # (B, T, d_model)
        x = p.hook(f"{name}.resid_mid", self._sublayer(x, self.ln_attn, lambda h: self.attn(h, p)))
        if self.cross_attn is not None:
            x = p.hook(f"{name}.resid_cross", self._sublayer(x, self.ln_cross, lambda h: self.cross_attn(h, p)))
        return p.hook(f"{name}.resid_post", self._sublayer(x, self.ln_mlp, lambda h: self.mlp(h, p)))


class Embedding(nn.Module):
    """Token (+ segment) embeddings plus the absolute positional encoding, if the config adds one."""

    def __init__(self, cfg: ModelConfig, name: str):
        super().__init__()
        self.cfg, self.name = cfg, name
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positional == "learned":
            self.pos = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        elif cfg.positional == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal(cfg.max_seq_len, cfg.d_model), persistent=False)
        if cfg.type_vocab_size:
            self.segment = nn.Embedding(cfg.type_vocab_size, cfg.d_model)
        self.norm = make_norm(cfg) if cfg.embed_norm else None
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, tokens: torch.Tensor, p: Pass) -> torch.Tensor:
        cfg, name, T = self.cfg, self.name, tokens.shape[1]
        x = self.tok(tokens)  # (B, T, d)
        if cfg.embed_scale:
            x = x * math.sqrt(cfg.d_model)
        x = p.hook(f"{name}.tok", x)
        positions = torch.arange(p.start, p.start + T, device=tokens.device) if p.positions is None else p.positions
        if cfg.positional == "learned":
            pe = self.pos(positions)  # (T, d)
        elif cfg.positional == "sinusoidal":
            pe = self.pos_table[positions]
        else:
            pe = torch.zeros(T, cfg.d_model, device=tokens.device, dtype=x.dtype)
        x = x + p.hook(f"{name}.pos", pe)
        if cfg.type_vocab_size:
            types = torch.zeros_like(tokens) if p.token_type_ids is None else p.token_type_ids
            x = x + p.hook(f"{name}.type", self.segment(types))
        if self.norm is not None:
            x = self.norm(x)
        return p.hook(f"{name}.out", self.drop(x))


class Stack(nn.Module):
    """Embeddings, blocks and (pre-norm) final norm: the body shared by encoders and decoders. ``prefix`` starts
    its hook names ("encoder." for the encoder of an encoder-decoder)."""

    def __init__(self, cfg: ModelConfig, prefix: str = "", cross: bool = False):
        super().__init__()
        self.cfg = cfg
        self.embed = Embedding(cfg, f"{prefix}embed")
        self.blocks = nn.ModuleList(Block(cfg, f"{prefix}blocks.{i}", i, cross) for i in range(cfg.n_layer))
        # Post-norm stacks already end on a norm; pre-norm ones need one more (GPT-2's ln_f, LLaMA's norm).
        self.ln_final = make_norm(cfg) if cfg.norm_position == "pre" else None

    def forward(self, tokens: torch.Tensor, p: Pass) -> torch.Tensor:
        x = self.embed(tokens, p)  # (B, T, d_model)
        for block in self.blocks:
            x = block(x, p)
        return x if self.ln_final is None else self.ln_final(x)


class Transformer(nn.Module):
    """Transformer(cfg): decoder-only, encoder-only or encoder-decoder, chosen by ``cfg.arch``.

    ``forward(tokens)`` returns logits (B, T, vocab). ``run_with_cache`` returns them with a dict of named
    intermediate tensors (see HOOK_NAMES); ``run_with_hooks`` lets functions replace any of them.
    For an encoder-decoder, ``tokens`` feed the decoder and ``src`` the encoder.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.arch == "encoder-decoder":
            # The encoder sees the whole source; only the decoder's self-attention is causal.
            self.encoder = Stack(cfg, "encoder.")
        self.stack = Stack(cfg, cross=cfg.arch == "encoder-decoder")
        if cfg.arch == "encoder-decoder":
            self.encoder.embed.tok = self.stack.embed.tok  # one table for source and target, as in the paper
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._tie_weights()
        self.apply(self._init_weights)

    @classmethod
    def from_seed(cls, cfg: ModelConfig, seed: int) -> "Transformer":
        """Transformer(cfg) on the CPU with its initial weights drawn from a generator of its own: the same
        weights for the same seed, and torch's global random state is neither read nor changed. Seeding the
        global generator (even inside fork_rng) would swap it under any other thread drawing from it meanwhile.
        """
        with torch.device("meta"):
            model = cls(cfg)  # shapes only: nothing is drawn
        model.to_empty(device="cpu")
        model._tie_weights()  # to_empty gives each module its own copy of a shared parameter
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            model.apply(lambda module: cls._init_weights(module, generator))
        return model

    def _tie_weights(self) -> None:
        if self.cfg.tie_embeddings:
            self.lm_head.weight = self.stack.embed.tok.weight

    @staticmethod
    def _init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
        # GPT-2's initialisation: N(0, 0.02) for every matrix and embedding, zero biases; norms start as the
        # identity. Every parameter and buffer is set here: from_seed starts from uninitialised memory.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02, generator=generator)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, RMSNorm)):
            nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, Embedding) and module.cfg.positional == "sinusoidal":
            with torch.no_grad():
                module.pos_table.copy_(sinusoidal(module.cfg.max_seq_len, module.cfg.d_model))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, src: torch.Tensor, ctx: RunContext | None = None, src_mask: torch.Tensor | None = None):
        """The encoder's output for an encoder-decoder (B, S, d_model)."""
        p = Pass.build(self.cfg, src, ctx, mask="bidirectional", attention_mask=src_mask)
        return p.hook("encoder.final", self.encoder(src, p))

    def forward(
        self,
        tokens: torch.Tensor,
        ctx: RunContext | None = None,
        *,
        src: torch.Tensor | None = None,
        src_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        head: bool = True,
    ) -> torch.Tensor:
        """Logits (B, T, vocab); with ``head=False`` the final hidden states (B, T, d_model) instead, skipping the
        LM head (an encoder used for its embeddings, like all-MiniLM-L6-v2, has no use for vocabulary scores)."""
        tokens = _as_batch(tokens)
        if self.cfg.arch == "encoder-decoder" and memory is None:
            if src is None:
                raise ValueError("An encoder-decoder needs source tokens (src) for its encoder.")
            memory = self.encode(_as_batch(src).to(tokens.device), ctx, src_mask)
        p = Pass.build(self.cfg, tokens, ctx, mask=self.cfg.mask, kv_cache=kv_cache, attention_mask=attention_mask,
                       memory=memory, memory_mask=src_mask, token_type_ids=token_type_ids)
        x = p.hook("final", self.stack(tokens, p))  # (B, T, d_model)
        return p.hook("logits", self.lm_head(x)) if head else x  # (B, T, vocab)

    @torch.no_grad()
    def run_with_cache(
        self, tokens: torch.Tensor, names: Iterable[str] | Callable[[str], bool] | None = None, **kwargs
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, cache): cache maps hook names to detached tensors; ``names`` picks a subset (a list or a
        predicate), None keeps everything."""
        ctx = RunContext(keep=_name_filter(names), hooks=kwargs.pop("hooks", None) or {})
        logits = self(tokens, ctx, **kwargs)
        return logits, ctx.cache

    @torch.no_grad()
    def run_with_hooks(self, tokens: torch.Tensor, hooks: dict[str, HookFn], **kwargs) -> torch.Tensor:
        """Logits with hook functions applied: ``fn(tensor, name)`` may return a replacement (e.g. zero a head)."""
        known = set(hook_names(self.cfg))
        unknown = [n for n in hooks if n not in known]
        if unknown:
            raise ValueError(f"Unknown hook name(s): {', '.join(unknown)}. See explorer.model.HOOK_NAMES.")
        return self(tokens, RunContext(hooks=dict(hooks)), **kwargs)


def decode_layout_(model: torch.nn.Module) -> torch.nn.Module:
    """Store every linear layer's weight column-major, in place: same values, same shape, same results.

    A decoding step multiplies one token's vector by every weight matrix, so it is bound by reading the weights.
    On the CPU, BLAS reads a column-major W in x W^T markedly faster for a single row x (SmolLM2's 30 layers and
    its unembedding: 52 -> 40 ms per token on the dev machine; reading a long prompt is unchanged). Call it once
    on a freshly loaded model, before it is shared; nothing changes on a GPU.
    """
    with torch.no_grad():
        for module in model.modules():
            w = getattr(module, "weight", None)
            if (isinstance(module, torch.nn.Linear) and w is not None and w.device.type == "cpu"
                    and w.is_contiguous() and w.dim() == 2):
                w.data = w.data.t().contiguous().t()
    return model


def _as_batch(tokens) -> torch.Tensor:
    tokens = torch.as_tensor(tokens)
    if tokens.dim() == 1:
        tokens = tokens.unsqueeze(0)
    if tokens.dim() != 2 or tokens.shape[1] == 0:
        raise ValueError("Expected at least one token (a 1-D or (batch, seq) tensor of token ids).")
    return tokens


def _name_filter(names) -> Callable[[str], bool]:
    if names is None:
        return lambda _: True
    if callable(names):
        return names
    wanted = set([names] if isinstance(names, str) else names)
    return wanted.__contains__


def hook_names(cfg: ModelConfig) -> list[str]:
    """Every hook name a forward of this config produces, in the order they fire."""
    def stack_names(prefix: str, cross: bool) -> list[str]:
        out = [f"{prefix}embed.tok", f"{prefix}embed.pos"]
        if cfg.type_vocab_size:
            out.append(f"{prefix}embed.type")
        out.append(f"{prefix}embed.out")
        for i in range(cfg.n_layer):
            b = f"{prefix}blocks.{i}"
            out += [f"{b}.resid_pre"] + [f"{b}.attn.{s}" for s in ("q", "k", "v", "scores", "pattern", "z", "out")]
            out.append(f"{b}.resid_mid")
            if cross:
                out += [f"{b}.cross_attn.{s}" for s in ("q", "k", "v", "scores", "pattern", "z", "out")]
                out.append(f"{b}.resid_cross")
            out += [f"{b}.mlp.pre", f"{b}.mlp.post", f"{b}.mlp.out", f"{b}.resid_post"]
        return out

    names: list[str] = []
    if cfg.arch == "encoder-decoder":
        names += stack_names("encoder.", cross=False) + ["encoder.final"]
    return names + stack_names("", cross=cfg.arch == "encoder-decoder") + ["final", "logits"]

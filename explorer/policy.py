"""A trainable policy on top of a shared frozen model: only its last blocks are the student's own.

DPO and GRPO train a policy π while a frozen reference π_ref (the model before post-training) anchors it. A
classroom server cannot give forty students each a private 135M-parameter copy (540 MB of float32 weights, and
twice that again for AdamW's moments), so the policy here shares everything with the reference except its last
``trainable`` blocks (and the final norm), which are copied and trained. The embeddings and the tied LM head stay
shared and frozen. With two of SmolLM2's 30 blocks that is about 7 M trainable parameters per student.

It also makes training fast: the shared lower blocks are the same for π and π_ref, so their output (the "trunk")
is computed once for a batch (``trunk``) and every step runs only the copied blocks and the head (``tail``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .model import KVCache, Pass, Transformer


@dataclass(frozen=True)
class Trunk:
    """The shared blocks' output for a batch (B, T, d_model) and the pass (mask, RoPE) the rest reuses."""

    hidden: torch.Tensor
    p: Pass


class TailPolicy(nn.Module):
    """π: the shared ``base`` (frozen, never written) with its last ``trainable`` blocks replaced by own copies."""

    def __init__(self, base: Transformer, trainable: int):
        super().__init__()
        cfg = base.cfg
        if cfg.arch != "decoder":
            raise ValueError("A policy is a decoder (it generates its answers).")
        if not 1 <= trainable <= cfg.n_layer:
            raise ValueError(f"trainable blocks must be 1 .. {cfg.n_layer}, got {trainable}.")
        self.cfg = cfg
        self.split = cfg.n_layer - trainable
        object.__setattr__(self, "base", base)  # not a submodule: its parameters are not the policy's
        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in base.stack.blocks[self.split:])
        self.ln_final = copy.deepcopy(base.stack.ln_final) if base.stack.ln_final is not None else None
        self.train(False)
        self.requires_grad_(True)

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def trunk(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None,
              kv_cache: KVCache | None = None) -> Trunk:
        """The shared blocks 0 .. split − 1 on ``tokens`` (B, T): the same for the policy and the reference."""
        base = self.base
        p = Pass.build(self.cfg, tokens, None, mask=self.cfg.mask, attention_mask=attention_mask, kv_cache=kv_cache)
        x = base.stack.embed(tokens, p)
        for block in base.stack.blocks[:self.split]:
            x = block(x, p)
        return Trunk(x, p)

    def hidden(self, trunk: Trunk, *, reference: bool = False) -> torch.Tensor:
        """The final hidden states (B, T, d_model): the own blocks (or the reference's, frozen) after the trunk."""
        stack = self.base.stack
        blocks = stack.blocks[self.split:] if reference else self.blocks
        norm = stack.ln_final if reference else self.ln_final
        x = trunk.hidden
        for block in blocks:
            x = block(x, trunk.p)
        return x if norm is None else norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The shared LM head: hidden (..., d_model) -> logits (..., V); pass only the rows you need."""
        return self.base.lm_head(hidden)

    def logits(self, tokens: torch.Tensor, *, reference: bool = False) -> torch.Tensor:
        """Full logits (B, T, V) of the policy (or the reference) on ``tokens``."""
        return self.head(self.hidden(self.trunk(tokens), reference=reference))

    @torch.no_grad()
    def sample(self, prompt: list[int], n: int, max_new_tokens: int, temperature: float, seed: int,
               stop: tuple[int, ...] = ()) -> list[list[int]]:
        """``n`` answers to one prompt, sampled together (one row each) with a KV cache, from the policy at
        ``temperature``; seeded by ``seed`` (its own generator: the global random state is neither read nor
        changed). An answer ends after its first ``stop`` token (kept) or after ``max_new_tokens``."""
        gen = torch.Generator().manual_seed(seed)
        cache = KVCache(self.cfg.n_layer)
        tokens = torch.tensor([prompt] * n, dtype=torch.long)
        answers: list[list[int]] = [[] for _ in range(n)]
        done = [False] * n
        for _ in range(max_new_tokens):
            trunk = self.trunk(tokens, kv_cache=cache)
            logits = self.head(self.hidden(trunk)[:, -1]).float()  # (n, V)
            probs = torch.softmax(logits / temperature, dim=-1)
            chosen = torch.multinomial(probs, 1, generator=gen)  # (n, 1)
            for row, token in enumerate(chosen[:, 0].tolist()):
                if not done[row]:
                    answers[row].append(token)
                    done[row] = token in stop
            if all(done):
                break
            tokens = chosen
        return answers

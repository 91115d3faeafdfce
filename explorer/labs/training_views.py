"""What the training lab shows besides its curves: one batch's objective made visible, a sample written by the model,
and its attention at a checkpoint. Each reads the model under no_grad and changes nothing in it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..i18n import t
from ..model import KVCache, Transformer
from .training_data import TrainedTokenizer

SAMPLE_TEMPERATURE = 0.8  # a little below 1: lines look like the corpus sooner, still varied
ATTENTION_TOKENS = 32  # a 32 x 32 map is the largest that stays readable on a projector (explorer.limits)
PROMPT_TOKENS = 16


@dataclass(frozen=True)
class BatchView:
    """The objective on one batch: inputs x, targets y (x shifted by one), and what each position costs.

    ``inputs`` / ``targets`` / ``losses`` / ``probs`` are row 0 of the batch, its first ``len(inputs)`` positions;
    ``loss`` is the mean −log p(target) over the whole batch (the number training minimises),
    ``perplexity`` = exp(loss), and ``uniform_loss`` = ln(vocab size), what guessing every token with equal
    probability costs: a freshly initialised model starts near it."""

    inputs: list[str]
    targets: list[str]
    losses: np.ndarray  # (n,) −log p(target) per position
    probs: np.ndarray  # (n,) p(target) per position
    loss: float
    perplexity: float
    vocab_size: int
    uniform_loss: float
    caption: str


@dataclass(frozen=True)
class AttentionMap:
    """The attention weights on a fixed snippet of validation text at one checkpoint: ``weights`` is the chosen
    head's (T, T) map (row = query, column = key; causal, so the upper triangle is 0), ``all_weights`` every
    layer's every head (n_layer, n_head, T, T), for a page that lets the student pick another head."""

    layer: int
    head: int
    labels: list[str]
    weights: np.ndarray
    all_weights: np.ndarray


@torch.no_grad()
def batch_view(model: Transformer, tokenizer: TrainedTokenizer, x: torch.Tensor, y: torch.Tensor, lang: str,
               positions: int = 16) -> BatchView:
    logits = model(x)  # (B, T, V)
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (B, T)
    loss = float(nll.mean())
    n = min(positions, x.shape[1])
    row_nll = nll[0, :n].numpy().astype(np.float64)
    vocab = model.cfg.vocab_size
    uniform = math.log(vocab)
    caption = t(lang, "training.lib.batch_caption", loss=loss, perplexity=math.exp(loss), vocab=vocab,
                uniform=uniform)
    return BatchView(inputs=tokenizer.sequence_labels(x[0, :n].tolist()),
                     targets=tokenizer.sequence_labels(y[0, :n].tolist()), losses=row_nll, probs=np.exp(-row_nll),
                     loss=loss, perplexity=math.exp(loss), vocab_size=vocab, uniform_loss=uniform, caption=caption)


@torch.no_grad()
def sample(model: Transformer, tokenizer: TrainedTokenizer, prompt: list[int], n_new: int, seed: int) -> str:
    """``prompt`` continued by ``n_new`` tokens drawn at SAMPLE_TEMPERATURE with a generator of its own (seeded
    per checkpoint, so a sample does not depend on how many were drawn before).

    Decoded through a KV cache. When the context is full, the cache is refilled with the last half-context of
    tokens and decoding goes on from there, so a sample may be longer than the context and the model always sees
    at least half a context of history (as in training, where a window starts anywhere in the text). Refilling half
    a context every half context costs one short forward per context/2 tokens instead of a full-context forward per
    token (nanoGPT's sliding window): the sample stays a small part of a checkpoint (bench/bench_training.py)."""
    generator = torch.Generator().manual_seed(seed)
    context = model.cfg.max_seq_len
    keep = max(1, context // 2)
    ids = list(prompt[-context:])
    cache = KVCache(model.cfg.n_layer)
    logits = model(torch.tensor([ids]), kv_cache=cache)[0, -1]
    for n in range(n_new):
        probs = torch.softmax(logits.float() / SAMPLE_TEMPERATURE, dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
        if n == n_new - 1:
            break
        if cache.length < context:
            logits = model(torch.tensor([ids[-1:]]), kv_cache=cache)[0, -1]
        else:
            cache = KVCache(model.cfg.n_layer)
            logits = model(torch.tensor([ids[-keep:]]), kv_cache=cache)[0, -1]
    return tokenizer.decode(ids)


@torch.no_grad()
def attention_map(model: Transformer, tokenizer: TrainedTokenizer, ids: list[int], layer: int,
                  head: int) -> AttentionMap:
    names = [f"blocks.{i}.attn.pattern" for i in range(model.cfg.n_layer)]
    _, cache = model.run_with_cache(torch.tensor([ids]), names)
    weights = torch.stack([cache[name][0] for name in names]).float().numpy()  # (n_layer, n_head, T, T)
    return AttentionMap(layer=layer, head=head, labels=tokenizer.sequence_labels(ids), weights=weights[layer, head],
                        all_weights=weights)

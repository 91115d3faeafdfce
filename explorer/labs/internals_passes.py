"""The internals lab's runs of the model, each a function of its own so that the app can cache it on its own:
``analyze`` (one forward pass of a text, keeping every head's pattern and the residual stream), ``logit_lens`` on
that pass, and ``ablate`` (heads zeroed, compared with the intact model); with the (layer, head) names and checks
they share. The model runs through the core's ``run_with_cache`` / ``run_with_hooks``: nothing is ever written onto
the (shared) model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from ..checks import whole_number
from ..i18n import Msg
from ..limits import INTERNALS_MAX_TOKENS as MAX_TOKENS  # every lab's caps live in explorer.limits
from ..models import Encoded, LoadedModel
from ..models.pretrained import sentence_embedding

# What the encoder's sentence embedding is compared with unless told otherwise: by ``ablate`` and the lab.
DEFAULT_COMPARE = (
    "A tired dog would not walk across the road.",
    "The stock market fell sharply today.",
    "Students are learning how attention works.",
)

Head = tuple[int, int]  # (layer, head)
_LENS_CHUNK = 256


# ----------------------------------------------------------------------------------------------------------------
# Layers and heads: their names and checks.


def _check_index(kind: str, value, count: int) -> int:
    whole_number(Msg(f"internals.name.{kind}"), value, 0)
    if value >= count:
        raise ValueError(Msg(f"internals.error.no_such_{kind}", value=value, last=count - 1))
    return value


def check_layer(layer, n_layer: int) -> int:
    return _check_index("layer", layer, n_layer)


def check_head(head, n_head: int) -> int:
    return _check_index("head", head, n_head)


def validate_heads(heads: Iterable[Sequence[int]], n_layer: int, n_head: int) -> list[Head]:
    """The (layer, head) pairs ``heads``, each checked, in order and without repeats."""
    out: set[Head] = set()
    for item in heads:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(Msg("internals.error.not_a_head", item=repr(item)))
        out.add((check_layer(item[0], n_layer), check_head(item[1], n_head)))
    return sorted(out)


def head_name(head: Head) -> str:
    return f"L{head[0]}.H{head[1]}"


def parse_head_name(name: str) -> Head:
    """'L3.H5' -> (3, 5)."""
    try:
        layer, head = name.strip().upper().removeprefix("L").split(".H")
        return int(layer), int(head)
    except ValueError:
        raise ValueError(Msg("internals.error.not_a_head_name", name=repr(name))) from None


def layer_labels(n_layer: int, with_embed: bool = False) -> list[str]:
    """The rows of the logit lens as data ('embed', 'layer 0', ...); figures write them in the reader's language."""
    return (["embed"] if with_embed else []) + [f"layer {i}" for i in range(n_layer)]


def is_decoder(model: LoadedModel) -> bool:
    return model.config.arch == "decoder"


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------
# One forward pass, every head's pattern and the residual stream kept.


@dataclass(frozen=True)
class Internals:
    """One forward pass of one text, reduced to what the lab draws. L = layers, H = heads, T = tokens."""

    ids: list[int]
    labels: list[str]  # one readable label per token
    patterns: np.ndarray  # (L, H, T, T) float32 attention weights of every head
    resid: np.ndarray  # (L + 1, T, d_model): what enters block 0, then what leaves each block
    next_token_probs: np.ndarray | None  # (vocab,) after the last token (decoder only)
    embedding: np.ndarray | None  # (d_model,) the sentence embedding (encoder only)


def _pattern_names(n_layer: int) -> list[str]:
    return [f"blocks.{i}.attn.pattern" for i in range(n_layer)]


def analyze(model: LoadedModel, enc: Encoded) -> Internals:
    """Run ``enc`` through the model once, keeping every head's pattern and the residual stream."""
    if len(enc.ids) > MAX_TOKENS:  # every head's full (T, T) map is kept: the cap bounds what one request holds
        raise ValueError(Msg("internals.error.too_many_tokens", max_tokens=MAX_TOKENS))
    n, decoder = model.config.n_layer, is_decoder(model)
    keep = set(_pattern_names(n)) | {f"blocks.{i}.resid_post" for i in range(n)} | {"embed.out", "final"}
    out, cache = model.model.run_with_cache(enc.ids_tensor(model.device), names=keep, head=decoder)
    patterns = torch.stack([cache[name][0] for name in _pattern_names(n)]).float()  # (L, H, T, T)
    resid = torch.stack([cache["embed.out"][0]] + [cache[f"blocks.{i}.resid_post"][0] for i in range(n)])
    probs = _numpy(torch.softmax(out[0, -1].float(), dim=-1)) if decoder else None
    emb = None if decoder else _numpy(sentence_embedding(cache["final"][0].cpu().unsqueeze(0))[0])
    return Internals(ids=list(enc.ids), labels=list(enc.labels), patterns=_numpy(patterns), resid=_numpy(resid),
                     next_token_probs=probs, embedding=emb)


# ----------------------------------------------------------------------------------------------------------------
# The logit lens (nostalgebraist 2020): read every layer's residual stream with the model's own unembedding.


@dataclass(frozen=True)
class LogitLens:
    """Top token and its probability at every layer (rows: embed, layer 0 .. L-1) and position (columns)."""

    layers: list[str]
    token_ids: np.ndarray  # (L + 1, T) int64
    probs: np.ndarray  # (L + 1, T)
    tokens: list[list[str]]  # (L + 1) x T readable labels of the top tokens


def logit_lens(model: LoadedModel, internals: Internals) -> LogitLens:
    """softmax(W_U · Norm(h_l)) for the residual stream h_l after every layer: what the model would predict if it
    stopped there. The last row is the model's real prediction."""
    if not is_decoder(model):
        raise ValueError(Msg("internals.error.lens_needs_decoder"))
    norm, unembed = model.model.stack.ln_final, model.model.lm_head
    L1, T, d = internals.resid.shape
    rows = torch.from_numpy(internals.resid).reshape(L1 * T, d)
    id_chunks, prob_chunks = [], []
    with torch.no_grad():
        # All layers' rows go through W_U together (one pass over the 49k x 576 matrix per chunk, not per layer);
        # chunks keep the (rows, vocab) logits near 50 MB.
        for chunk in rows.split(_LENS_CHUNK):
            logits = unembed(norm(chunk.to(model.device))).float()  # (rows, vocab)
            top, idx = logits.max(dim=-1)
            prob_chunks.append(torch.exp(top - torch.logsumexp(logits, dim=-1)).cpu())
            id_chunks.append(idx.cpu())
    token_ids = torch.cat(id_chunks).view(L1, T)
    tokens = [model.token_labels(row.tolist()) for row in token_ids]
    return LogitLens(layers=layer_labels(model.config.n_layer, with_embed=True), token_ids=_numpy(token_ids),
                     probs=_numpy(torch.cat(prob_chunks).view(L1, T)), tokens=tokens)


# ----------------------------------------------------------------------------------------------------------------
# Head ablation.


def zero_heads_hooks(heads: Sequence[Head]) -> dict:
    """run_with_hooks functions that zero the chosen heads' outputs z = pattern @ V before W_O, i.e.
    MultiHead = Concat(head_1, ..., 0, ..., head_h) W^O."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)

    def make(hs: list[int]):
        def hook(z: torch.Tensor, name: str) -> torch.Tensor:
            z = z.clone()  # (B, nh, T, dh); the cached original stays untouched
            z[:, hs] = 0
            return z
        return hook

    return {f"blocks.{layer}.attn.z": make(hs) for layer, hs in by_layer.items()}


@dataclass(frozen=True)
class Ablation:
    """Before / after bars of one ablation, plus how every head's attention moved."""

    heads: list[Head]
    bar_labels: list[str]  # next tokens (decoder) or comparison sentences (encoder)
    before: list[float]
    after: list[float]
    value_name: Msg  # what the bars measure
    metric_name: Msg
    metric: float  # KL(before || after) for the decoder, cos(before, after) of the sentence embedding for the encoder
    summary: Msg  # one sentence for the student
    pattern_change: np.ndarray  # (L, H) mean |Δ attention weight| of every head
    token_ids: list[int]  # the decoder's bars' next tokens (empty for the encoder)


def ablate(model: LoadedModel, enc: Encoded, heads: Iterable[Sequence[int]], base: Internals | None = None, *,
           top_k: int = 10, compare: Sequence[str] = DEFAULT_COMPARE) -> Ablation:
    """Zero ``heads`` ((layer, head) pairs) and compare with the intact model: the next-token distribution for
    SmolLM2, the sentence embedding (and its similarity to ``compare`` sentences) for MiniLM."""
    cfg = model.config
    chosen = validate_heads(heads, cfg.n_layer, cfg.n_head)
    base = analyze(model, enc) if base is None else base
    hooks = zero_heads_hooks(chosen)
    names = set(_pattern_names(cfg.n_layer)) | {"final"}
    out, cache = model.model.run_with_cache(enc.ids_tensor(model.device), names=names, hooks=hooks,
                                            head=is_decoder(model))
    after_patterns = torch.stack([cache[n][0] for n in _pattern_names(cfg.n_layer)]).float().cpu()
    change = _numpy((after_patterns - torch.from_numpy(base.patterns)).abs().mean(dim=(-1, -2)))  # (L, H)
    if is_decoder(model):
        return _next_token_ablation(model, chosen, base, out, change, top_k)
    return _embedding_ablation(model, chosen, base, cache["final"][0].cpu(), hooks, change, compare)


def _next_token_ablation(model, chosen, base, out, change, top_k) -> Ablation:
    before = torch.from_numpy(base.next_token_probs)
    after = torch.softmax(out[0, -1].float(), dim=-1).cpu()
    order: list[int] = []
    for i in torch.topk(before, top_k).indices.tolist() + torch.topk(after, top_k).indices.tolist():
        if i not in order:
            order.append(i)
    order.sort(key=lambda i: -float(before[i]))
    kl = float((before * (before.clamp_min(1e-12).log() - after.clamp_min(1e-12).log())).sum())
    labels = model.token_labels(order)
    top_b, top_a = labels[0], model.token_labels([int(after.argmax())])[0]
    if not chosen:
        summary = Msg("internals.ablation.none_decoder")
    elif top_b == top_a:
        summary = Msg("internals.ablation.top_stays", token=top_b, before=float(before.max()),
                      after=float(after[order[0]]))
    else:
        summary = Msg("internals.ablation.top_changes", before=top_b, after=top_a)
    return Ablation(heads=chosen, bar_labels=labels, before=[float(before[i]) for i in order],
                    after=[float(after[i]) for i in order], value_name=Msg("internals.ablation.value_decoder"),
                    metric_name=Msg("internals.ablation.metric_decoder"), metric=kl, summary=summary,
                    pattern_change=change,
                    token_ids=order)


def _padded(model: LoadedModel, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids of several texts, each read as ``model.encode`` reads it, padded to one length, and the mask that
    is 1 on their real tokens. The padding ids are never read: the mask hides them from every real token's
    attention and from the sentence embedding's mean."""
    rows = [model.encode(t, max_tokens=MAX_TOKENS).ids for t in texts]
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids.to(model.device), mask.to(model.device)


def _embedding_ablation(model, chosen, base, final_after, hooks, change, compare) -> Ablation:
    emb_before = torch.from_numpy(base.embedding)
    emb_after = sentence_embedding(final_after.unsqueeze(0))[0]
    cos = float(emb_before @ emb_after)
    before_sims, after_sims = [], []
    if compare:
        ids, mask = _padded(model, compare)
        for hk, sims, emb in (({}, before_sims, emb_before), (hooks, after_sims, emb_after)):
            _, cache = model.model.run_with_cache(ids, names=["final"], hooks=hk, attention_mask=mask, head=False)
            others = sentence_embedding(cache["final"], mask).cpu()  # (n, d)
            sims.extend((others @ emb).tolist())
    if not chosen:
        summary = Msg("internals.ablation.none_encoder")
    else:
        degrees = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
        summary = Msg("internals.ablation.turns", degrees=degrees, cos=cos)
    return Ablation(heads=chosen, bar_labels=list(compare), before=before_sims, after=after_sims,
                    value_name=Msg("internals.ablation.value_encoder"),
                    metric_name=Msg("internals.ablation.metric_encoder"), metric=cos,
                    summary=summary, pattern_change=change, token_ids=[])


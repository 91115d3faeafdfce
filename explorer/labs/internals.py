"""Looking inside a real model: every head's attention, head ablation, the logit lens, residual norms, entropy.

Works on a :class:`explorer.models.pretrained.PretrainedModel` (all-MiniLM-L6-v2 or SmolLM2-135M) through the core's
``run_with_cache`` / ``run_with_hooks``; nothing is ever written onto the (shared) model. Every result is a plain
dataclass of CPU tensors and lists, ready for ``explorer.viz.internals``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from ..limits import INTERNALS_MAX_TOKENS as MAX_TOKENS  # every lab's caps live in explorer.limits
from ..models.pretrained import Encoded, PretrainedModel, sentence_embedding

DEFAULT_COMPARE = (
    "A tired dog would not walk across the road.",
    "The stock market fell sharply today.",
    "Students are learning how attention works.",
)

Head = tuple[int, int]  # (layer, head)
_LENS_CHUNK = 256


@dataclass(frozen=True)
class Internals:
    """One forward pass of one text, reduced to what the lab draws. L = layers, H = heads, T = tokens."""

    model_name: str
    ids: list[int]
    labels: list[str]  # one readable label per token
    patterns: torch.Tensor  # (L, H, T, T) attention weights of every head
    resid: torch.Tensor  # (L + 1, T, d_model): what enters block 0, then what leaves each block
    final: torch.Tensor  # (T, d_model) the last hidden state
    next_token_probs: torch.Tensor | None  # (vocab,) after the last token (decoder only)
    embedding: torch.Tensor | None  # (d_model,) the sentence embedding (encoder only)

    @property
    def n_layer(self) -> int:
        return self.patterns.shape[0]

    @property
    def n_head(self) -> int:
        return self.patterns.shape[1]


def _pattern_names(n_layer: int) -> list[str]:
    return [f"blocks.{i}.attn.pattern" for i in range(n_layer)]


def analyze(pm: PretrainedModel, enc: Encoded) -> Internals:
    """Run ``enc`` through the model once, keeping every head's pattern and the residual stream."""
    if len(enc.ids) > MAX_TOKENS:  # every head's full (T, T) map is kept: the cap bounds what one request holds
        raise ValueError(f"This lab reads at most {MAX_TOKENS} tokens; encode the text with max_tokens={MAX_TOKENS}.")
    n = pm.config.n_layer
    keep = set(_pattern_names(n)) | {f"blocks.{i}.resid_post" for i in range(n)} | {"embed.out", "final"}
    ids = enc.ids_tensor(pm.device)
    out, cache = pm.model.run_with_cache(ids, names=keep, head=pm.is_decoder)
    patterns = torch.stack([cache[name][0] for name in _pattern_names(n)]).float().cpu()  # (L, H, T, T)
    resid = torch.stack([cache["embed.out"][0]] + [cache[f"blocks.{i}.resid_post"][0] for i in range(n)]).cpu()
    final = cache["final"][0].cpu()
    probs = torch.softmax(out[0, -1].float(), dim=-1).cpu() if pm.is_decoder else None
    emb = None if pm.is_decoder else sentence_embedding(final.unsqueeze(0))[0]
    return Internals(model_name=pm.name, ids=list(enc.ids), labels=list(enc.labels), patterns=patterns,
                     resid=resid, final=final, next_token_probs=probs, embedding=emb)


# ----------------------------------------------------------------------------------------------------------------
# Reading the patterns.


def layer_labels(n_layer: int, with_embed: bool = False) -> list[str]:
    return (["embed"] if with_embed else []) + [f"layer {i}" for i in range(n_layer)]


def head_labels(n_head: int) -> list[str]:
    return [f"head {h}" for h in range(n_head)]


@dataclass(frozen=True)
class Entropy:
    """How spread out each head's attention is, averaged over the queries that can see more than one key."""

    nats: torch.Tensor  # (L, H) mean of H_i = -sum_j a_ij log a_ij
    normalized: torch.Tensor  # (L, H) mean of H_i / log(number of keys query i may see): 0 sharp, 1 uniform


def attention_entropy(patterns: torch.Tensor, causal: bool) -> Entropy:
    """Entropy of every attention row of (L, H, T, S) patterns. Query i of a causal model sees i + 1 keys, of an
    encoder all S. A query that sees a single key (the first token of a causal model) has nothing to choose and
    is left out of the average."""
    p = patterns.double()
    T, S = p.shape[-2:]
    ent = torch.special.entr(p).sum(-1)  # (L, H, T) in nats; entr(0) = 0 for masked keys
    visible = torch.arange(S - T + 1, S + 1, dtype=torch.float64) if causal else torch.full((T,), float(S),
                                                                                          dtype=torch.float64)
    rows = visible > 1  # (T,)
    if not rows.any():
        zeros = torch.zeros(p.shape[:2])
        return Entropy(nats=zeros, normalized=zeros)
    nats = ent[..., rows].mean(-1)
    normalized = (ent[..., rows] / visible[rows].log()).mean(-1)
    return Entropy(nats=nats.float(), normalized=normalized.float())


def residual_norms(internals: Internals) -> torch.Tensor:
    """(L + 1, T) L2 norm of the residual stream of every token after the embeddings and after every layer."""
    return internals.resid.float().norm(dim=-1)


@dataclass(frozen=True)
class HeadLine:
    head: int
    query: int
    key: int
    weight: float


def head_view_lines(pattern: torch.Tensor, heads: Iterable[int] | None = None, *, min_weight: float = 0.05,
                    query: int | None = None) -> list[HeadLine]:
    """Lines from each query token to the keys it attends to with at least ``min_weight``, for one layer's
    (H, T, S) pattern; ``query`` keeps only that token's lines."""
    n_head, T, _ = pattern.shape
    heads = list(range(n_head)) if heads is None else list(heads)
    for h in heads:
        if not 0 <= h < n_head:
            raise ValueError(f"Head {h} does not exist: this layer has heads 0 to {n_head - 1}.")
    if query is not None and not 0 <= query < T:
        raise ValueError(f"Token {query} does not exist: the text has tokens 0 to {T - 1}.")
    if not 0 <= min_weight <= 1:
        raise ValueError("The line threshold is an attention weight, between 0 and 1.")
    lines = []
    for h in heads:
        sel = pattern[h] if query is None else pattern[h, query:query + 1]
        qs, ks = torch.nonzero(sel >= max(min_weight, 1e-9), as_tuple=True)
        for q, k in zip(qs.tolist(), ks.tolist()):
            q_abs = q if query is None else query
            lines.append(HeadLine(head=h, query=q_abs, key=k, weight=float(pattern[h, q_abs, k])))
    return lines


# ----------------------------------------------------------------------------------------------------------------
# The logit lens (nostalgebraist 2020): read every layer's residual stream with the model's own unembedding.


@dataclass(frozen=True)
class LogitLens:
    """Top token and its probability at every layer (rows: embed, layer 0 .. L-1) and position (columns)."""

    layers: list[str]
    token_ids: torch.Tensor  # (L + 1, T)
    probs: torch.Tensor  # (L + 1, T)
    tokens: list[list[str]]  # (L + 1) x T readable labels of the top tokens


def logit_lens(pm: PretrainedModel, internals: Internals) -> LogitLens:
    """softmax(W_U · Norm(h_l)) for the residual stream h_l after every layer: what the model would predict if it
    stopped there. The last row is the model's real prediction."""
    if not pm.is_decoder:
        raise ValueError("The logit lens reads next-token predictions, so it needs a decoder (SmolLM2).")
    norm, unembed = pm.model.stack.ln_final, pm.model.lm_head
    L1, T, d = internals.resid.shape
    rows = internals.resid.reshape(L1 * T, d)
    id_chunks, prob_chunks = [], []
    with torch.no_grad():
        # All layers' rows go through W_U together (one pass over the 49k x 576 matrix per chunk, not per layer);
        # chunks keep the (rows, vocab) logits near 50 MB.
        for chunk in rows.split(_LENS_CHUNK):
            logits = unembed(norm(chunk.to(pm.device))).float()  # (rows, vocab)
            top, idx = logits.max(dim=-1)
            prob_chunks.append(torch.exp(top - torch.logsumexp(logits, dim=-1)).cpu())
            id_chunks.append(idx.cpu())
    token_ids = torch.cat(id_chunks).view(L1, T)
    tokens = [pm.tokenizer.token_labels(row.tolist()) for row in token_ids]
    return LogitLens(layers=layer_labels(pm.config.n_layer, with_embed=True), token_ids=token_ids,
                     probs=torch.cat(prob_chunks).view(L1, T), tokens=tokens)


# ----------------------------------------------------------------------------------------------------------------
# Head ablation.


def validate_heads(heads: Iterable[Sequence[int]], n_layer: int, n_head: int) -> list[Head]:
    out: list[Head] = []
    for item in heads:
        layer, head = (int(x) for x in item)
        if not 0 <= layer < n_layer:
            raise ValueError(f"Layer {layer} does not exist: this model has layers 0 to {n_layer - 1}.")
        if not 0 <= head < n_head:
            raise ValueError(f"Head {head} does not exist: every layer has heads 0 to {n_head - 1}.")
        if (layer, head) not in out:
            out.append((layer, head))
    return sorted(out)


def head_name(head: Head) -> str:
    return f"L{head[0]}.H{head[1]}"


def parse_head_name(name: str) -> Head:
    """'L3.H5' -> (3, 5)."""
    try:
        layer, head = name.strip().upper().removeprefix("L").split(".H")
        return int(layer), int(head)
    except ValueError:
        raise ValueError(f"{name!r} is not a head name; write it like L3.H5 (layer 3, head 5).") from None


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
    value_name: str  # what the bars measure
    metric_name: str
    metric: float  # KL(before || after) for the decoder, cos(before, after) of the sentence embedding for the encoder
    summary: str  # one sentence for the student
    pattern_change: torch.Tensor  # (L, H) mean |Δ attention weight| of every head
    extra: dict = field(default_factory=dict)


def ablate(pm: PretrainedModel, enc: Encoded, heads: Iterable[Sequence[int]], base: Internals | None = None, *,
           top_k: int = 10, compare: Sequence[str] = DEFAULT_COMPARE) -> Ablation:
    """Zero ``heads`` ((layer, head) pairs) and compare with the intact model: the next-token distribution for
    SmolLM2, the sentence embedding (and its similarity to ``compare`` sentences) for MiniLM."""
    cfg = pm.config
    chosen = validate_heads(heads, cfg.n_layer, cfg.n_head)
    base = base or analyze(pm, enc)
    hooks = zero_heads_hooks(chosen)
    names = set(_pattern_names(cfg.n_layer)) | {"final"}
    ids = enc.ids_tensor(pm.device)
    out, cache = pm.model.run_with_cache(ids, names=names, hooks=hooks, head=pm.is_decoder)
    after_patterns = torch.stack([cache[n][0] for n in _pattern_names(cfg.n_layer)]).float().cpu()
    change = (after_patterns - base.patterns).abs().mean(dim=(-1, -2))  # (L, H)
    if pm.is_decoder:
        return _next_token_ablation(pm, chosen, base, out, change, top_k)
    return _embedding_ablation(pm, chosen, base, cache["final"][0].cpu(), hooks, change, compare)


def _next_token_ablation(pm, chosen, base, out, change, top_k) -> Ablation:
    before = base.next_token_probs
    after = torch.softmax(out[0, -1].float(), dim=-1).cpu()
    order: list[int] = []
    for i in torch.topk(before, top_k).indices.tolist() + torch.topk(after, top_k).indices.tolist():
        if i not in order:
            order.append(i)
    order.sort(key=lambda i: -float(before[i]))
    kl = float((before * (before.clamp_min(1e-12).log() - after.clamp_min(1e-12).log())).sum())
    labels = pm.tokenizer.token_labels(order)
    top_b, top_a = labels[0], pm.tokenizer.token_labels([int(after.argmax())])[0]
    if not chosen:
        summary = "No head is ablated: the bars are the intact model's prediction."
    elif top_b == top_a:
        summary = (f"The most likely next token stays '{top_b}' ({float(before.max()):.1%} → "
                   f"{float(after[order[0]]):.1%}).")
    else:
        summary = f"The most likely next token changes from '{top_b}' to '{top_a}'."
    return Ablation(heads=chosen, bar_labels=labels, before=[float(before[i]) for i in order],
                    after=[float(after[i]) for i in order], value_name="probability of the next token",
                    metric_name="KL(before ‖ after)", metric=kl, summary=summary, pattern_change=change,
                    extra={"top_before": top_b, "top_after": top_a, "token_ids": order})


def _embedding_ablation(pm, chosen, base, final_after, hooks, change, compare) -> Ablation:
    emb_after = sentence_embedding(final_after.unsqueeze(0))[0]
    cos = float(base.embedding @ emb_after)
    compare = [c for c in compare if c.strip()]
    before_sims, after_sims = [], []
    if compare:
        batch = pm.tokenizer.batch(list(compare), max_length=MAX_TOKENS)
        ids, mask = batch["input_ids"].to(pm.device), batch["attention_mask"].to(pm.device)
        for hk, sims, emb in (({}, before_sims, base.embedding), (hooks, after_sims, emb_after)):
            _, cache = pm.model.run_with_cache(ids, names=["final"], hooks=hk, attention_mask=mask, head=False)
            others = sentence_embedding(cache["final"], mask).cpu()  # (n, d)
            sims.extend((others @ emb).tolist())
    if not chosen:
        summary = "No head is ablated: the sentence embedding is the intact model's."
    else:
        summary = (f"The sentence embedding turns by {math.degrees(math.acos(max(-1.0, min(1.0, cos)))):.1f}° "
                   f"(cosine {cos:.4f} with the intact one).")
    return Ablation(heads=chosen, bar_labels=list(compare), before=before_sims, after=after_sims,
                    value_name="cosine similarity to your sentence", metric_name="cos(before, after)", metric=cos,
                    summary=summary, pattern_change=change, extra={"embedding_after": emb_after})


# ----------------------------------------------------------------------------------------------------------------
# What the lab's captions say, computed from the run they describe.


@dataclass(frozen=True)
class ResidualNormFacts:
    """The token whose residual vector outgrows the others (rows: embed, then after each layer)."""

    token: int
    label: str
    ratios: list[float]  # per row: its norm / the median norm of the other tokens
    jump_row: int  # the row with the largest growth of that ratio over the row before
    before_jump: float  # the largest ratio before that row
    peak: float
    peak_row: int
    final: float
    sink_heads: int  # heads putting more than half their weight on the token (averaged over the queries after it)
    n_heads: int
    text: str


def _row_name(row: int) -> str:
    return "the embeddings" if row == 0 else f"layer {row - 1}"


def residual_norm_facts(norms: torch.Tensor, labels: Sequence[str], patterns: torch.Tensor
                        ) -> ResidualNormFacts | None:
    """Facts of the (L + 1, T) residual norms and (L, H, T, T) patterns of one run; None for a single token.

    The baseline of a row is the median of the other tokens' norms, so one giant vector cannot inflate it."""
    n = norms.double()
    T = n.shape[1]
    if T < 2:
        return None
    ratio = torch.stack([n[:, t] / torch.quantile(torch.cat([n[:, :t], n[:, t + 1:]], 1), 0.5, dim=1)
                         for t in range(T)], 1)  # (L + 1, T)
    token = int(ratio.max(0).values.argmax())
    r = ratio[:, token]
    jump = int((r[1:] / r[:-1]).argmax()) + 1
    before, peak_row = float(r[:jump].max()), int(r.argmax())
    peak, final = float(r[peak_row]), float(r[-1])
    on_token = patterns[:, :, token + 1:, token].double().mean(-1) if token + 1 < patterns.shape[-2] else None
    sink_heads = int((on_token > 0.5).sum()) if on_token is not None else 0
    n_heads = patterns.shape[0] * patterns.shape[1]
    label = labels[token] if token < len(labels) else str(token)
    size = "hundreds of times" if peak >= 100 else f"{peak:.0f} times"
    if peak < 2:  # nothing to point at: every token's vector is within a factor 2 of the median
        text = (f"No token's residual vector stands out here: the longest is {peak:.1f}× the median of the others "
                f"(token {token}, '{label}', after {_row_name(peak_row)}).")
        return ResidualNormFacts(token, label, r.tolist(), jump, before, peak, peak_row, final, sink_heads, n_heads,
                                 text)
    text = (f"Token {token} ('{label}') grows a residual vector up to {size} longer than the others' (their median "
            f"norm): at most {before:.0f}× up to {_row_name(jump - 1)}, {float(r[jump]):.0f}× after "
            f"{_row_name(jump)}, {peak:.0f}× at the peak (after {_row_name(peak_row)}) and {final:.1f}× after the "
            f"last layer. {sink_heads} of {n_heads} heads put more than half of their weight on it (averaged over "
            "the tokens after it): it is an attention sink, and its huge, nearly constant vector makes it easy to "
            "find.")
    return ResidualNormFacts(token, label, r.tolist(), jump, before, peak, peak_row, final, sink_heads, n_heads,
                             text)


@dataclass(frozen=True)
class LensFacts:
    answer: str  # the model's top next token after the last position
    settles_row: int  # first row from which the last position's top token is the answer, to the end
    n_layer: int
    echo_embed: int  # positions whose top token in the embedding row is the input token itself
    echo_layers: int  # the most positions that echo their input in any layer row
    n_tokens: int
    text: str


def logit_lens_facts(lens: LogitLens, ids: Sequence[int]) -> LensFacts:
    """Where the logit lens finds the answer, and how much of it only echoes the input."""
    last = lens.token_ids[:, -1].tolist()
    settle = len(last) - 1
    while settle > 0 and last[settle - 1] == last[-1]:
        settle -= 1
    echo = [sum(int(t) == int(i) for t, i in zip(row.tolist(), ids)) for row in lens.token_ids]
    answer = lens.tokens[-1][-1]
    n_layer, T = len(lens.layers) - 1, len(ids)
    where = ("from the embedding row on" if settle == 0 else
             f"first at {lens.layers[settle]} (layers are numbered 0 to {n_layer - 1}) and stays there: "
             + ("only the last layer reads it out" if settle == n_layer else
                f"only the last {n_layer + 1 - settle} of {n_layer} layers read it out"))
    layers_echo = (f"at most {max(echo[1:])} of {T} positions still do" if max(echo[1:]) else "none does any more")
    text = (f"The embedding row echoes the input token itself at {echo[0]} of {T} positions (the unembedding is the "
            f"tied embedding matrix); in the layer rows {layers_echo}. At the last position the model's answer "
            f"'{answer.strip()}' is the top token {where}.")
    return LensFacts(answer, settle, n_layer, echo[0], max(echo[1:]), T, text)

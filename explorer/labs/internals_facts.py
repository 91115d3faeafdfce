"""What one forward pass of the internals lab shows, read from its arrays without running the model again: how
spread out each head's attention is, how long each token's residual vector grows, the head view's lines, and the
facts the page's captions state (an attention sink, where the logit lens finds the answer), each computed from the
run it describes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from ..i18n import Msg
from .internals_passes import Internals, LogitLens


# ----------------------------------------------------------------------------------------------------------------
# Reading the patterns.


@dataclass(frozen=True)
class Entropy:
    """How spread out each head's attention is, averaged over the queries that can see more than one key."""

    nats: np.ndarray  # (L, H) mean of H_i = -sum_j a_ij log a_ij
    normalized: np.ndarray  # (L, H) mean of H_i / log(number of keys query i may see): 0 sharp, 1 uniform


def attention_entropy(patterns: np.ndarray, causal: bool) -> Entropy:
    """Entropy of every attention row of (L, H, T, S) patterns. Query i of a causal model sees i + 1 keys, of an
    encoder all S. A query that sees a single key (the first token of a causal model) has nothing to choose and
    is left out of the average."""
    p = torch.from_numpy(patterns).double()
    T, S = p.shape[-2:]
    ent = torch.special.entr(p).sum(-1)  # (L, H, T) in nats; entr(0) = 0 for masked keys
    visible = torch.arange(S - T + 1, S + 1, dtype=torch.float64) if causal else torch.full((T,), float(S),
                                                                                          dtype=torch.float64)
    rows = visible > 1  # (T,)
    if not rows.any():
        zeros = np.zeros(p.shape[:2], dtype=np.float32)
        return Entropy(nats=zeros, normalized=zeros)
    nats = ent[..., rows].mean(-1)
    normalized = (ent[..., rows] / visible[rows].log()).mean(-1)
    return Entropy(nats=nats.float().numpy(), normalized=normalized.float().numpy())


# What the every-head summary can colour each head by: each a (L, H) array of numbers from 0 to 1.
HEAD_STATISTICS = ("entropy", "first", "previous", "self")


def head_statistics(patterns: np.ndarray, entropy: Entropy) -> dict[str, np.ndarray]:
    """One number per head of (L, H, T, T) patterns, for each of HEAD_STATISTICS: the normalised entropy, and the
    mean weight a query puts on the first token, on the token just before it and on itself. The first token is
    left out of 'first' and 'previous' (it has no earlier token, and reading itself is not reading the start), so
    a head that only looks back at the start (an attention sink) and one that reads its neighbour stand apart."""
    p = torch.from_numpy(patterns).double()
    T = p.shape[-2]
    diag = torch.diagonal(p, dim1=-2, dim2=-1)  # (L, H, T): a_ii
    if T > 1:
        first = p[..., 1:, 0].mean(-1)
        previous = torch.diagonal(p, offset=-1, dim1=-2, dim2=-1).mean(-1)  # a_{i, i-1} for i >= 1
    else:
        first = previous = torch.zeros(p.shape[:2], dtype=torch.float64)
    return {"entropy": np.asarray(entropy.normalized, dtype=np.float32), "first": first.float().numpy(),
            "previous": previous.float().numpy(), "self": diag.mean(-1).float().numpy()}


def residual_norms(internals: Internals) -> np.ndarray:
    """(L + 1, T) L2 norm of the residual stream of every token after the embeddings and after every layer."""
    return torch.from_numpy(internals.resid).float().norm(dim=-1).numpy()


@dataclass(frozen=True)
class HeadLine:
    head: int
    query: int
    key: int
    weight: float


def head_view_lines(pattern: np.ndarray, heads: Iterable[int], min_weight: float) -> list[HeadLine]:
    """Lines from each query token to the keys it attends to with at least ``min_weight``, for one layer's
    (H, T, S) pattern, head by head, query by query."""
    lines = []
    for h in heads:
        qs, ks = np.nonzero(pattern[h] >= max(min_weight, 1e-9))
        lines += [HeadLine(head=h, query=int(q), key=int(k), weight=float(pattern[h, q, k])) for q, k in zip(qs, ks)]
    return lines


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
    text: Msg


def _row_name(row: int) -> Msg:
    return Msg("internals.facts.the_embeddings") if row == 0 else Msg("internals.facts.layer", n=row - 1)


def residual_norm_facts(norms: np.ndarray, labels: Sequence[str], patterns: np.ndarray) -> ResidualNormFacts | None:
    """Facts of the (L + 1, T) residual norms and (L, H, T, T) patterns of one run; None for a single token.

    The baseline of a row is the median of the other tokens' norms, so one giant vector cannot inflate it."""
    n = torch.from_numpy(norms).double()
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
    on_token = torch.from_numpy(patterns[:, :, token + 1:, token]).double().mean(-1) \
        if token + 1 < patterns.shape[-2] else None
    sink_heads = int((on_token > 0.5).sum()) if on_token is not None else 0
    n_heads = patterns.shape[0] * patterns.shape[1]
    label = labels[token] if token < len(labels) else str(token)
    size = Msg("internals.facts.hundreds") if peak >= 100 else Msg("internals.facts.times", n=peak)
    if peak < 2:  # nothing to point at: every token's vector is within a factor 2 of the median
        text = Msg("internals.facts.no_outlier", peak=peak, token=token, label=label, row=_row_name(peak_row))
        return ResidualNormFacts(token, label, r.tolist(), jump, before, peak, peak_row, final, sink_heads, n_heads,
                                 text)
    text = Msg("internals.facts.sink", token=token, label=label, size=size, before=before,
               before_row=_row_name(jump - 1), at_jump=float(r[jump]), jump_row=_row_name(jump), peak=peak,
               peak_row=_row_name(peak_row), final=final, sink_heads=sink_heads, n_heads=n_heads)
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
    text: Msg


def logit_lens_facts(lens: LogitLens, ids: Sequence[int]) -> LensFacts:
    """Where the logit lens finds the answer, and how much of it only echoes the input."""
    last = lens.token_ids[:, -1].tolist()
    settle = len(last) - 1
    while settle > 0 and last[settle - 1] == last[-1]:
        settle -= 1
    echo = [sum(int(t) == int(i) for t, i in zip(row.tolist(), ids)) for row in lens.token_ids]
    answer = lens.tokens[-1][-1]
    n_layer, T = len(lens.layers) - 1, len(ids)
    # Row r of the lens is the stream after layer r - 1 (row 0: the embeddings), as _row_name says it.
    where = (Msg("internals.lens_facts.from_embed") if settle == 0 else
             Msg("internals.lens_facts.first_at", row=_row_name(settle), last=n_layer - 1,
                 reads=Msg("internals.lens_facts.last_layer_only") if settle == n_layer else
                 Msg("internals.lens_facts.last_layers", n=n_layer + 1 - settle, n_layer=n_layer)))
    layers_echo = (Msg("internals.lens_facts.echo_some", n=max(echo[1:]), T=T) if max(echo[1:])
                   else Msg("internals.lens_facts.echo_none"))
    text = Msg("internals.lens_facts.text", echo=echo[0], T=T, layers_echo=layers_echo, answer=answer.strip(),
               where=where)
    return LensFacts(answer, settle, n_layer, echo[0], max(echo[1:]), T, text)


# ----------------------------------------------------------------------------------------------------------------
# What SmolLM2's numbers come from, said wherever they are shown: the 4-bit release, dequantized to float32.


def smollm2_weights_note() -> Msg:
    """explorer.models.quantization's note on SmolLM2's weights as a sentence in either language, from the same
    numbers (read from the GGUF file's header)."""
    from ..models.quantization import smollm2_weights

    w = smollm2_weights()
    matrices = [k for k in w.types if k not in ("F32", "F16", w.embedding_type)]
    stored = Msg.join([Msg("internals.weights.matrices", n=w.types[k], kind=k, bits=f"{w.bits[k]:g}")
                       for k in matrices], sep="; ")
    return Msg("internals.weights.note", file=w.file, stored=stored, embedding=w.embedding_type,
               embedding_bits=f"{w.bits[w.embedding_type]:g}", norms=w.types.get("F32", 0))


def smollm2_weights_short() -> Msg:
    """The same in one line, for the caption under the model picker."""
    from ..models.quantization import smollm2_weights

    w = smollm2_weights()
    kinds = ", ".join(k for k in w.types if k not in ("F32", "F16", w.embedding_type))
    return Msg("internals.weights.short", kinds=kinds, file=w.file)

"""Figures and tables of the inference lab's metrics tab, drawn from explorer.labs.inference_metrics' results only.

Token labels and n-grams come from the student's text, so every one shown by plotly goes through ``_plain`` (plotly
reads a subset of HTML in its strings); tables are plain DataFrames (Streamlit shows their cells as text).
"""
from __future__ import annotations

import html
import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..i18n import t
from ..labs.inference_metrics import ComparedText, CorpusScores, TextPerplexity
from ..metrics import MAX_ORDER, Bleu, Rouge

PER_ROW = 12  # tokens per row of the loss strip: a 9-character label fits its cell on a laptop screen
PER_ROW_PRESENTING = 9  # with the projector's larger font
FLUENT = "#4c78a8"
SHUFFLED = "#e4572e"


def _plain(text: str) -> str:
    return html.escape(text, quote=False)


def _short(label: str) -> str:
    return label if len(label) <= 9 else label[:8] + "…"


def example_name(lang: str, name: str) -> str:
    return t(lang, f"inference_metrics.example.{name}")


def pair_name(lang: str, name: str) -> str:
    return t(lang, f"inference_metrics.pair_name.{name}")


def loss_strip(text: TextPerplexity, lang: str, per_row: int = PER_ROW) -> go.Figure:
    """The text as a row of token cells coloured by their cross-entropy (green: the model expected the token; red:
    it was surprised); the first token, which nothing predicts, is left grey. Hover: the loss, its probability
    exp(-CE) and the tokens of context the model had."""
    scored, labels = text.scored, text.labels
    n = len(labels)
    rows = max(1, math.ceil(n / per_row))
    z = np.full((rows, per_row), np.nan)
    cell = np.full((rows, per_row), "", dtype=object)
    hover = np.full((rows, per_row), "", dtype=object)
    for i, label in enumerate(labels):
        r, c = divmod(i, per_row)
        loss = scored.losses[i]
        cell[r, c] = _plain(_short(label))
        if np.isfinite(loss):
            z[r, c] = loss
            hover[r, c] = t(lang, "inference_metrics.fig.hover_token", n=i + 1, token=_plain(label), loss=loss,
                            p=math.exp(-loss), context=int(scored.context[i]))
        else:
            hover[r, c] = t(lang, "inference_metrics.fig.hover_unscored", n=i + 1, token=_plain(label))
    y = [t(lang, "inference_metrics.fig.row", first=r * per_row + 1, last=min(n, (r + 1) * per_row))
         for r in range(rows)]
    finite = scored.losses[np.isfinite(scored.losses)]
    top = max(float(np.percentile(finite, 95)) if finite.size else 1.0, 1.0)  # one outlier must not grey the rest
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(per_row)), y=y, text=cell, texttemplate="%{text}", textfont=dict(size=13),
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", colorscale="RdYlGn_r", zmin=0, zmax=top,
        xgap=3, ygap=3, hoverongaps=False, colorbar=dict(title=t(lang, "inference_metrics.fig.loss_nats")),
    ))
    fig.update_layout(title=t(lang, "inference_metrics.fig.strip_title", ppl=scored.perplexity,
                              loss=scored.mean_loss, n=scored.n_scored),
                      height=120 + 46 * rows, margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def comparison_figure(rows: Sequence[ComparedText], lang: str) -> go.Figure:
    """Perplexity of every text, fluent beside shuffled, on a log axis (a shuffled text is often ten times worse,
    another language a hundred)."""
    names = list(dict.fromkeys(r.example for r in rows))
    x = [t(lang, f"inference_metrics.example_short.{name}") for name in names]
    fig = go.Figure()
    for shuffled, colour, key in ((False, FLUENT, "fluent"), (True, SHUFFLED, "shuffled")):
        by_name = {r.example: r for r in rows if r.shuffled == shuffled}
        values = [by_name[n].perplexity for n in names]
        fig.add_bar(x=x, y=values, name=t(lang, f"inference_metrics.fig.{key}"), marker_color=colour,
                    text=[f"{v:,.1f}" for v in values], textposition="outside", constraintext="none")
    fig.update_layout(title=t(lang, "inference_metrics.fig.compare_title"), barmode="group", height=380,
                      yaxis_title=t(lang, "inference_metrics.fig.perplexity_log"), margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_yaxes(type="log")
    return fig


def comparison_table(rows: Sequence[ComparedText], lang: str) -> pd.DataFrame:
    col = lambda key: t(lang, f"inference_metrics.col.{key}")  # noqa: E731
    return pd.DataFrame({
        col("text"): [example_name(lang, r.example) for r in rows],
        col("order"): [t(lang, "inference_metrics.fig.shuffled" if r.shuffled else "inference_metrics.fig.fluent")
                       for r in rows],
        col("tokens"): [r.n_tokens for r in rows], col("scored"): [r.n_scored for r in rows],
        col("mean_ce"): [round(r.mean_loss, 3) for r in rows],
        col("perplexity"): [round(r.perplexity, 2) for r in rows],
        col("chars"): [r.n_chars for r in rows], col("ce_per_char"): [round(r.loss_per_char, 3) for r in rows],
    })


def precision_figure(bleu: Bleu, lang: str) -> go.Figure:
    """p_1..p_4 as bars, each labelled with its clipped matches over the hypothesis's n-grams."""
    orders = [f"{n}-gram" for n in range(1, MAX_ORDER + 1)]
    text = [f"{m}/{tot}" for m, tot in zip(bleu.counts.matches, bleu.counts.totals)]
    fig = go.Figure(go.Bar(x=orders, y=list(bleu.precisions), text=text, textposition="outside",
                           constraintext="none", marker_color=FLUENT))
    fig.update_layout(title=t(lang, "inference_metrics.fig.precision_title", bleu=bleu.score,
                              bp=bleu.brevity_penalty),
                      yaxis_title=t(lang, "inference_metrics.fig.precision"), height=330,
                      margin=dict(l=10, r=10, t=50, b=10))
    fig.update_yaxes(range=[0, 1.15])
    return fig


def bleu_table(bleu: Bleu, lang: str) -> pd.DataFrame:
    """One row per order: clipped matches, n-grams of the hypothesis, precision (after smoothing), used or not."""
    col = lambda key: t(lang, f"inference_metrics.col.{key}")  # noqa: E731
    yes, no = t(lang, "inference_metrics.yes"), t(lang, "inference_metrics.no")
    return pd.DataFrame({
        "n": list(range(1, MAX_ORDER + 1)),
        col("clipped"): list(bleu.counts.matches), col("total"): list(bleu.counts.totals),
        col("precision"): [round(p, 4) for p in bleu.precisions],
        col("in_mean"): [yes if n < bleu.order else no for n in range(MAX_ORDER)],
    })


def ngram_table(bleu: Bleu, n: int, lang: str) -> pd.DataFrame:
    """The hypothesis's n-grams of order ``n``: count in the hypothesis, most in a reference, clipped count."""
    col = lambda key: t(lang, f"inference_metrics.col.{key}")  # noqa: E731
    grams = bleu.ngrams[n - 1] if bleu.ngrams else ()
    return pd.DataFrame({
        col("ngram"): [" ".join(g.ngram) for g in grams], col("in_hyp"): [g.in_hypothesis for g in grams],
        col("in_ref"): [g.in_reference for g in grams], col("clipped"): [g.clipped for g in grams],
    })


def rouge_table(scores: Rouge, lang: str) -> pd.DataFrame:
    col = lambda key: t(lang, f"inference_metrics.col.{key}")  # noqa: E731
    rows = scores.scores
    return pd.DataFrame({
        col("metric"): [t(lang, f"inference_metrics.rouge.{s.name}") for s in rows],
        col("overlap"): [s.overlap for s in rows], col("hyp_total"): [s.hyp_total for s in rows],
        col("ref_total"): [s.ref_total for s in rows], col("precision"): [round(s.precision, 4) for s in rows],
        col("recall"): [round(s.recall, 4) for s in rows], col("f1"): [round(s.f1, 4) for s in rows],
    })


def corpus_table(corpus: CorpusScores, lang: str) -> pd.DataFrame:
    col = lambda key: t(lang, f"inference_metrics.col.{key}")  # noqa: E731
    return pd.DataFrame({col("pair"): [pair_name(lang, p) for p in corpus.pairs],
                         col("sentence_bleu"): [round(s, 2) for s in corpus.sentence_scores]})

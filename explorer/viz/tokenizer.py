"""Figures of the tokenizer lab: pure functions, results in, go.Figure out, every word in ``lang``."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import t
from ..labs.tokenizer import StepView
from ..labs.tokenizer_compare import CostComparison, TradeOff

CHOSEN, OTHER = "#d62728", "#1f77b4"
CHINESE, ENGLISH = "#d62728", "#1f77b4"


def _words(lang: str, name: str, **params) -> str:
    return t(lang, f"tokenizer.viz.{name}", **params)


def pair_label(left: str, right: str) -> str:
    return f"{left} + {right}"


def top_pairs_figure(view: StepView, lang: str) -> go.Figure:
    """The most frequent adjacent pairs just before merge ``view.step``; the one merged in red."""
    pairs = list(reversed(view.pairs))  # the most frequent on top
    fig = go.Figure(go.Bar(
        x=[p.count for p in pairs], y=[f"{k}. {pair_label(p.left, p.right)}" for k, p in
                                       zip(range(len(pairs), 0, -1), pairs)],
        orientation="h", marker_color=[CHOSEN if p.chosen else OTHER for p in pairs],
        text=[f"{p.count:,}" for p in pairs], textposition="auto",
        hovertemplate=_words(lang, "pair_hover", pair="%{y}", count="%{x:,}") + "<extra></extra>"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=_words(lang, "pairs_title", step=view.step)),
                      xaxis=dict(title=dict(text=_words(lang, "pair_count"))), yaxis=dict(automargin=True))
    return fig


def length_curve_figure(view: StepView, lang: str) -> go.Figure:
    """Corpus length in tokens and vocabulary size after each merge; the step shown is marked."""
    merges = list(range(len(view.lengths)))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=merges, y=view.lengths, mode="lines", name=_words(lang, "corpus_tokens"),
                             line=dict(color=OTHER),
                             hovertemplate=_words(lang, "length_hover", merges="%{x}", tokens="%{y:,}")
                             + "<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=merges, y=view.vocab, mode="lines", name=_words(lang, "vocab_size"),
                             line=dict(color="#2ca02c", dash="dot"),
                             hovertemplate=_words(lang, "vocab_hover", merges="%{x}", vocab="%{y:,}")
                             + "<extra></extra>"), secondary_y=True)
    fig.add_trace(go.Scatter(x=[view.step], y=[view.lengths[view.step]], mode="markers",
                             marker=dict(color=CHOSEN, size=11), name=_words(lang, "this_step"),
                             hovertemplate=_words(lang, "length_hover", merges="%{x}", tokens="%{y:,}")
                             + "<extra></extra>"), secondary_y=False)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=_words(lang, "curve_title")),
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text=_words(lang, "merges"))
    fig.update_yaxes(title_text=_words(lang, "corpus_tokens"), secondary_y=False)
    fig.update_yaxes(title_text=_words(lang, "vocab_size"), secondary_y=True)
    return fig


def cost_figure(cost: CostComparison, lang: str) -> go.Figure:
    """Tokens for the same meaning in Chinese and in English, per tokenizer."""
    fig = go.Figure([
        go.Bar(x=list(cost.titles), y=cost.chinese, name=_words(lang, "chinese"), marker_color=CHINESE,
               text=[str(n) for n in cost.chinese], textposition="outside",
               hovertemplate=_words(lang, "cost_hover", tokenizer="%{x}", tokens="%{y}") + "<extra></extra>"),
        go.Bar(x=list(cost.titles), y=cost.english, name=_words(lang, "english"), marker_color=ENGLISH,
               text=[str(n) for n in cost.english], textposition="outside",
               hovertemplate=_words(lang, "cost_hover", tokenizer="%{x}", tokens="%{y}") + "<extra></extra>"),
    ])
    fig.update_layout(barmode="group", height=340, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=_words(lang, "cost_title")),
                      yaxis=dict(title=dict(text=_words(lang, "tokens")),
                                 range=[0, 1.15 * max(int(cost.chinese.max()), int(cost.english.max()), 1)]),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def trade_off_figure(trade: TradeOff, lang: str) -> go.Figure:
    """Our BPE: corpus length against vocabulary size, with the embedding table V × d_model beside it."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=trade.vocab, y=trade.lengths, mode="lines", name=_words(lang, "corpus_tokens"),
                             line=dict(color=OTHER),
                             hovertemplate=_words(lang, "trade_hover", vocab="%{x:,}", tokens="%{y:,}")
                             + "<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=trade.vocab, y=trade.embedding, mode="lines", line=dict(color="#ff7f0e", dash="dot"),
                             name=_words(lang, "embedding_params", d_model=trade.d_model),
                             hovertemplate=_words(lang, "embedding_hover", vocab="%{x:,}", params="%{y:,}")
                             + "<extra></extra>"), secondary_y=True)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=_words(lang, "trade_ours")),
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text=_words(lang, "vocab_size"))
    fig.update_yaxes(title_text=_words(lang, "corpus_tokens"), secondary_y=False)
    fig.update_yaxes(title_text=_words(lang, "embedding_axis"), secondary_y=True)
    return fig


def real_vocab_figure(trade: TradeOff, lang: str) -> go.Figure:
    """The real vocabularies: tokens for the two texts against vocabulary size."""
    fig = go.Figure(go.Scatter(
        x=[p.vocab_size for p in trade.points], y=[p.tokens for p in trade.points], mode="markers+text",
        text=[p.title for p in trade.points], textposition="top center", marker=dict(size=11, color="#9467bd"),
        name=_words(lang, "real_tokenizers"),
        hovertemplate=_words(lang, "real_hover", tokenizer="%{text}", vocab="%{x:,}", tokens="%{y}")
        + "<extra></extra>"))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=_words(lang, "trade_real")),
                      xaxis=dict(title=dict(text=_words(lang, "vocab_size"))),
                      yaxis=dict(title=dict(text=_words(lang, "tokens_both"))))
    return fig

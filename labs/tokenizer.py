"""Tokenizer lab: build a BPE by hand, compare it with WordPiece and Unigram and with real tokenizers, and see what
a vocabulary costs."""
import pandas as pd
import streamlit as st

from explorer.labs.tokenizer import TokenizerSettings
from explorer.labs.tokenizer_compare import CONTEXT_WINDOW
from explorer.limits import TOKENIZER_MAX_TEXT_CHARS
from explorer.safe_text import escape_markdown
from explorer.ui.common import chart, page_header, show_outcome
from explorer.ui.i18n import lang, tr
from explorer.ui.token_chips import token_chips
from explorer.ui.tokenizer import D_MODEL_MAX, VIEW, outcome, sidebar_settings, step_control
from explorer.ui.url_state import link_and_reset, show_problems
from explorer.viz.tokenizer import (
    cost_figure, length_curve_figure, real_vocab_figure, top_pairs_figure, trade_off_figure,
)

page_header(tr("tokenizer.title"), tr("tokenizer.intro"), tr("nav.tokenizer.section"))
show_problems(VIEW.open())
chosen = sidebar_settings()
lg = lang()
build, algorithms, real_tab, trade_tab = st.tabs([tr("tokenizer.tab.build"), tr("tokenizer.tab.compare"),
                                                   tr("tokenizer.tab.real"), tr("tokenizer.tab.trade")])
with build:
    step = step_control(chosen["merges"])
with real_tab:
    left, right = st.columns(2)
    chinese = left.text_area(tr("tokenizer.real.chinese"), key=VIEW.key("chinese"), height=90,
                             max_chars=TOKENIZER_MAX_TEXT_CHARS)
    english = right.text_area(tr("tokenizer.real.english"), key=VIEW.key("english"), height=90,
                              max_chars=TOKENIZER_MAX_TEXT_CHARS)
with trade_tab:
    d_model = int(st.number_input("d_model", 1, D_MODEL_MAX, step=64, key=VIEW.key("d_model"),
                                  help=tr("tokenizer.trade.d_model_help")))
with st.sidebar:
    link_and_reset(VIEW)

with st.spinner(tr("tokenizer.training")):
    shown = outcome(TokenizerSettings(step=step, chinese=chinese, english=english, d_model=d_model, **chosen))
show_outcome(shown)
used, result = shown.settings, shown.result
view = result.steps


def chips(labels) -> str:
    return token_chips(labels) if labels else "—"


# ---- Build BPE by hand --------------------------------------------------------------------------------------------
with build:
    pairs_col, merge_col = st.columns([3, 2])
    with pairs_col:
        if view.step:
            chart(top_pairs_figure(view, lg), "tokenizer_pairs")
        else:
            st.info(tr("tokenizer.bpe.step_zero", base=view.n_base))
    with merge_col:
        if view.step:
            chosen_pair = next(p for p in view.pairs if p.chosen)
            st.markdown(tr("tokenizer.bpe.merge", step=view.step, pair=token_chips([chosen_pair.left, chosen_pair.right]),
                           new=token_chips([view.new_piece]), new_id=view.new_id, count=chosen_pair.count,
                           n_bytes=view.new_bytes))
            if view.tie:
                st.caption(tr("tokenizer.bpe.tie"))
        before, after = int(view.lengths[max(view.step - 1, 0)]), int(view.lengths[view.step])
        st.markdown(tr("tokenizer.bpe.numbers", vocab=int(view.vocab[view.step]), tokens=after,
                       saved=before - after, chars=view.corpus_chars,
                       per_char=after / max(view.corpus_chars, 1)))
        if view.n_merges < view.asked:
            st.caption(tr("tokenizer.bpe.stopped", made=view.n_merges, asked=view.asked))
    st.markdown(f"**{tr('tokenizer.bpe.sentence')}** " + chips(view.sentence_after))
    st.markdown(f"**{tr('tokenizer.bpe.excerpt_before')}** " + chips(view.excerpt_before))
    st.markdown(f"**{tr('tokenizer.bpe.excerpt_after')}** " + chips(view.excerpt_after))
    st.caption(tr("tokenizer.bpe.parts_note"))
    chart(length_curve_figure(view, lg), "tokenizer_curve")
    with st.expander(tr("tokenizer.bpe.how"), expanded=False):
        st.markdown(tr("tokenizer.bpe.how_text"))
    fb = result.fallback
    st.subheader(tr("tokenizer.fallback.header", char=escape_markdown(fb.char)))
    st.markdown(tr("tokenizer.fallback.byte", chips=chips(fb.byte_level)))
    st.markdown(tr("tokenizer.fallback.char", chips=chips(fb.byte_fallback)))
    st.markdown(tr("tokenizer.fallback.unk", chips=chips(fb.char_unk), decoded=token_chips([fb.char_unk_decoded])))
    st.caption(tr("tokenizer.fallback.explain"))

# ---- Compare algorithms --------------------------------------------------------------------------------------------
with algorithms:
    st.caption(tr("tokenizer.compare.intro", corpus=tr(f"tokenizer.corpus.{used.corpus}"), merges=used.merges))
    for split in result.algorithms.splits:
        marked = [f"⚠{p}" if unknown else p for p, unknown in zip(split.pieces, split.unknown)]
        st.markdown(tr("tokenizer.compare.row", name=tr(f"tokenizer.algorithm.{split.algorithm}"),
                       n=len(split.pieces), vocab=split.vocab_size) + " " + chips(marked))
    st.caption(tr("tokenizer.compare.unknown"))
    st.markdown(tr("tokenizer.compare.why"))

# ---- Real tokenizers -----------------------------------------------------------------------------------------------
with real_tab:
    cost = result.cost
    chart(cost_figure(cost, lg), "tokenizer_cost")
    lo, hi = int(cost.ratio.argmin()), int(cost.ratio.argmax())
    st.markdown(tr("tokenizer.real.cost_caption", best=cost.titles[lo], best_ratio=float(cost.ratio[lo]),
                   worst=cost.titles[hi], worst_ratio=float(cost.ratio[hi]), window=CONTEXT_WINDOW,
                   best_fits=cost.fits(lo), worst_fits=cost.fits(hi), gpt2=cost.per_char("gpt2"),
                   qwen=cost.per_char("qwen")))
    lossy = [cost.titles[k] for k in range(len(cost.titles)) if cost.chinese_unknown[k]]
    if lossy:
        st.caption(tr("tokenizer.real.unknown_caption", names=", ".join(lossy),
                      n=int(max(cost.chinese_unknown))))
    st.subheader(tr("tokenizer.real.table_header"))
    st.caption(tr("tokenizer.real.sentence_note"))
    table = pd.DataFrame({
        tr("tokenizer.real.col.tokenizer"): [r.title for r in result.real],
        tr("tokenizer.real.col.algorithm"): [tr(f"tokenizer.algorithm.{r.algorithm}") for r in result.real],
        tr("tokenizer.real.col.vocab"): [f"{r.vocab_size:,}" for r in result.real],
        tr("tokenizer.real.col.tokens"): [r.n_tokens for r in result.real],
        tr("tokenizer.real.col.per_char"): [round(r.per_char, 2) for r in result.real],
        tr("tokenizer.real.col.per_word"): [round(r.per_word, 2) for r in result.real],
        tr("tokenizer.real.col.unknown"): [r.n_unknown for r in result.real],
    })
    st.dataframe(table, hide_index=True, width="stretch")
    for r in result.real:
        st.markdown(f"**{escape_markdown(r.title)}** · " + tr("tokenizer.real.count", n=r.n_tokens) + " "
                    + chips(r.labels))
        st.caption(tr("tokenizer.real.ids", ids=" ".join(map(str, r.ids))))

# ---- Vocabulary trade-off ------------------------------------------------------------------------------------------
with trade_tab:
    trade = result.trade_off
    ours_col, real_col = st.columns(2)
    with ours_col:
        chart(trade_off_figure(trade, lg), "tokenizer_trade")
    with real_col:
        chart(real_vocab_figure(trade, lg), "tokenizer_vocab")
    first, last = 0, len(trade.vocab) - 1
    st.markdown(tr("tokenizer.trade.caption", v0=int(trade.vocab[first]), t0=int(trade.lengths[first]),
                   v1=int(trade.vocab[last]), t1=int(trade.lengths[last]),
                   shorter=100 * (1 - trade.lengths[last] / max(int(trade.lengths[first]), 1)),
                   e0=int(trade.embedding[first]), e1=int(trade.embedding[last]), d_model=trade.d_model))
    rows = [p for p in trade.points if p.model]
    st.dataframe(pd.DataFrame({
        tr("tokenizer.real.col.tokenizer"): [p.title for p in rows],
        tr("tokenizer.real.col.vocab"): [f"{p.vocab_size:,}" for p in rows],
        tr("tokenizer.trade.col.model"): [p.model for p in rows],
        "d_model": [f"{p.model_d_model:,}" for p in rows],
        tr("tokenizer.trade.col.embedding"): [f"{p.model_embedding:,}" for p in rows],
        tr("tokenizer.trade.col.share"): [f"{100 * p.model_embedding / p.model_total:.1f}%" for p in rows],
    }), hide_index=True, width="stretch")
    st.caption(tr("tokenizer.trade.table_caption"))

VIEW.publish()

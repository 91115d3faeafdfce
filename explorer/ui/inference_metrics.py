"""Streamlit glue of the inference lab's "Perplexity and metrics" tab (``?tab=metrics``): its controls, each in the
link under its settings' name, the caches of what it computes on SmolLM2, and the tab itself (``render``).

SmolLM2 is shared by every session, so what it computes is cached for all (st.cache_data, keyed by the text and the
window). The student's trained model belongs to one session: it is never put in a shared cache, and it is small
enough to read a text at once."""
from __future__ import annotations

import dataclasses

import streamlit as st

from .. import priority
from ..labs.inference_metrics import (
    EXAMPLES, MAX_PAIR_CHARS, MAX_TEXT_CHARS, MAX_TOKENS, OWN, PAIRS, REAL_MODEL, SEED_MAX, TRAINED_MODEL, WINDOWS,
    MetricsSettings, TextPerplexity, compare_texts, min_stride, read_text, run_metrics,
)
from ..metrics import SMOOTHING
from ..models.protocol import LoadedModel
from ..models.quantization import smollm2_weights
from ..safe_text import escape_markdown
from ..viz.inference_metrics import (
    PER_ROW, PER_ROW_PRESENTING, bleu_table, comparison_figure, comparison_table, corpus_table, example_name,
    loss_strip, ngram_table, pair_name,
    precision_figure, rouge_table,
)
from .common import chart, presenting, show_outcome
from .i18n import lang, tr
from .models import get_model, shared_model
from .training import my_trained_model
from .url_state import Control, LabView, one_of, show_problems, text, whole

DEFAULT = MetricsSettings()
VIEW = LabView("inference_metrics", [
    Control("model", DEFAULT.model, one_of((REAL_MODEL, TRAINED_MODEL))),
    Control("example", DEFAULT.example, one_of((*EXAMPLES, OWN))),
    Control("text", DEFAULT.text, text(MAX_TEXT_CHARS)),
    Control("window", DEFAULT.window, one_of(WINDOWS)),
    Control("stride", DEFAULT.stride, whole(1, max(WINDOWS))),
    Control("seed", DEFAULT.seed, whole(0, SEED_MAX)),
    Control("pair", DEFAULT.pair, one_of((*PAIRS, OWN))),
    Control("reference", DEFAULT.reference, text(MAX_PAIR_CHARS)),
    Control("hypothesis", DEFAULT.hypothesis, text(MAX_PAIR_CHARS)),
    Control("smooth", DEFAULT.smooth, one_of(SMOOTHING)),
])


@st.cache_data(max_entries=256, show_spinner=False)
def _read_on_shared(name: str, text_: str, window: int, stride: int) -> TextPerplexity:
    with priority.interactive():  # a student waits for it: the generation engine steps aside
        return read_text(shared_model(name), text_, window, stride)


def _read(model: LoadedModel, text_: str, window: int, stride: int) -> TextPerplexity:
    if model.name == REAL_MODEL:
        if len(model.tokenizer.encode(text_)) <= window:
            # read in one window whatever the window and stride: one cache entry for every setting of them (the
            # same single forward pass, so the same numbers), rather than one per slider position
            one = _read_on_shared(REAL_MODEL, text_, max(WINDOWS), max(WINDOWS))
            return dataclasses.replace(one, scored=dataclasses.replace(one.scored, window=window, stride=stride))
        return _read_on_shared(REAL_MODEL, text_, window, stride)
    with priority.interactive():
        return read_text(model, text_, window, stride)


def _compare(model: LoadedModel, settings: MetricsSettings):
    return compare_texts(model, settings, read=_read)


def _model_choice() -> tuple[str, LoadedModel]:
    """The model the tab reads with: SmolLM2, or this session's trained model once it has one (a link asking for
    a trained model in a session without one gets a sentence and SmolLM2)."""
    mine = my_trained_model()
    choices = (REAL_MODEL,) + ((TRAINED_MODEL,) if mine is not None else ())
    VIEW.keep_valid("model", lambda name: name in choices, REAL_MODEL,
                    why=lambda value, shown: tr("inference_metrics.no_trained"))
    name = st.selectbox(tr("inference_metrics.name.model"), choices, key=VIEW.key("model"),
                        format_func=lambda n: tr(f"inference_metrics.model.{n}"))
    return name, (mine if name == TRAINED_MODEL else get_model(REAL_MODEL))


def render() -> None:
    """The tab: its view opened from the link, the sidebar's controls, the text read, the pair scored."""
    show_problems(VIEW.open())
    lg = lang()
    with st.sidebar:
        st.subheader(tr("inference_metrics.sidebar.title"))
        name, model = _model_choice()
        context = model.config.max_seq_len
        fitting = tuple(w for w in WINDOWS if w <= context) or (min(WINDOWS),)
        VIEW.keep_valid("window", lambda w: w in fitting, min(DEFAULT.window, fitting[-1]))
        window = st.select_slider(tr("inference_metrics.name.window"), fitting, key=VIEW.key("window"),
                                  help=tr("inference_metrics.sidebar.window_help", context=context))
        VIEW.keep_valid("stride", lambda s: min_stride(window) <= s <= window, window // 2)
        stride = st.slider(tr("inference_metrics.name.stride"), min_stride(window), window, key=VIEW.key("stride"),
                           help=tr("inference_metrics.sidebar.stride_help"))
        seed = int(st.number_input(tr("inference_metrics.name.seed"), 0, SEED_MAX, key=VIEW.key("seed"),
                                   help=tr("inference_metrics.sidebar.seed_help")))
        smooth = st.selectbox(tr("inference_metrics.name.smooth"), SMOOTHING, key=VIEW.key("smooth"),
                              format_func=lambda s: tr(f"inference_metrics.smooth.{s}"))

    st.subheader(tr("inference_metrics.ppl.header"))
    st.caption(tr("inference_metrics.ppl.intro"))
    example = st.selectbox(tr("inference_metrics.name.example"), (*EXAMPLES, OWN), key=VIEW.key("example"),
                           format_func=lambda e: example_name(lg, e))
    own_text = DEFAULT.text
    if example == OWN:
        own_text = st.text_area(tr("inference_metrics.name.text"), key=VIEW.key("text"), max_chars=MAX_TEXT_CHARS,
                                height=100, placeholder=tr("inference_metrics.text_placeholder"))
    # the pair's widgets come further down, next to their tables: their values are read from the state here, where
    # the settings are built, and the widgets (keyed the same) show them
    pair = st.session_state[VIEW.key("pair")]
    requested = MetricsSettings(
        model=name, example=example, text=own_text if example == OWN else st.session_state[VIEW.key("text")],
        window=window, stride=stride, seed=seed, pair=pair, reference=st.session_state[VIEW.key("reference")],
        hypothesis=st.session_state[VIEW.key("hypothesis")], smooth=smooth)
    with st.spinner(tr("inference_metrics.computing")):
        shown = run_metrics(requested, model, read=_read, compare=_compare)
    show_outcome(shown)
    result, used = shown.result, shown.settings
    if result is None:
        VIEW.publish()
        return
    _perplexity_section(result, used, name, lg)
    _overlap_section(result, lg)
    VIEW.publish()


def _perplexity_section(result, used: MetricsSettings, name: str, lg: str) -> None:
    read = result.text
    scored = read.scored
    if scored.n_scored == 0:
        st.info(tr("inference_metrics.ppl.too_short"))
    else:
        chart(loss_strip(read, lg, PER_ROW_PRESENTING if presenting() else PER_ROW), "metrics_loss_strip")
    facts = [tr("inference_metrics.ppl.formula", n=scored.n_scored, loss=scored.mean_loss, ppl=scored.perplexity),
             tr("inference_metrics.ppl.windows", windows=scored.n_windows, window=scored.window,
                stride=scored.stride, context=max(scored.window - scored.stride, 0)) if scored.n_windows > 1
             else tr("inference_metrics.ppl.one_window")]
    if scored.truncated:
        facts.append(tr("inference_metrics.ppl.truncated", kept=len(scored.ids), total=scored.n_original,
                        cap=MAX_TOKENS))
    if read.unknown:
        facts.append(tr("inference_metrics.ppl.unknown", n=len(read.unknown), chars=" ".join(read.unknown[:20])))
    facts.append(_smollm2_note() if name == REAL_MODEL else tr("inference_metrics.ppl.trained_note"))
    st.caption(" ".join(facts))
    st.latex(r"\mathrm{PPL} = \exp\Big(-\frac{1}{N}\sum_{t=1}^{N} \ln p(x_t \mid x_{<t})\Big)")
    chart(comparison_figure(result.compared, lg), "metrics_compare")
    st.caption(tr("inference_metrics.ppl.compare_caption", seed=used.seed)
               + (" " + tr("inference_metrics.ppl.per_token_note") if name == REAL_MODEL else ""))
    with st.expander(tr("inference_metrics.ppl.table")):
        st.dataframe(comparison_table(result.compared, lg), hide_index=True, width="stretch")


def _smollm2_note() -> str:
    """Which release SmolLM2's numbers come from, read from the weights file."""
    weights = smollm2_weights()
    kind = "/".join(k for k in weights.types if k not in ("F32", "F16", weights.embedding_type))
    return tr("inference_metrics.ppl.smollm2_note", file=weights.file, quant=kind)


def _overlap_section(result, lg: str) -> None:
    st.subheader(tr("inference_metrics.overlap.header"))
    st.caption(tr("inference_metrics.overlap.intro"))
    pair = st.selectbox(tr("inference_metrics.name.pair"), (*PAIRS, OWN), key=VIEW.key("pair"),
                        format_func=lambda p: pair_name(lg, p))
    if pair == OWN:
        left, right = st.columns(2)
        left.text_area(tr("inference_metrics.name.reference"), key=VIEW.key("reference"), max_chars=MAX_PAIR_CHARS,
                       height=90)
        right.text_area(tr("inference_metrics.name.hypothesis"), key=VIEW.key("hypothesis"),
                        max_chars=MAX_PAIR_CHARS, height=90)
    scores = result.pair
    bleu = scores.bleu
    if pair != OWN:
        st.markdown(tr("inference_metrics.overlap.shown_pair", reference=escape_markdown(scores.reference),
                       hypothesis=escape_markdown(scores.hypothesis)))
    st.markdown(tr("inference_metrics.overlap.tokens", tokenize=bleu.tokenize,
                   tokenizer=tr(f"inference_metrics.tokenize.{bleu.tokenize}"), hyp=bleu.counts.hyp_len,
                   ref=bleu.counts.ref_len))
    left, right = st.columns(2)
    with left:
        chart(precision_figure(bleu, lg), "metrics_bleu_precisions")
    with right:
        st.dataframe(bleu_table(bleu, lg), hide_index=True, width="stretch")
        st.caption(tr("inference_metrics.overlap.bleu_line", c=bleu.counts.hyp_len, r=bleu.counts.ref_len,
                      bp=bleu.brevity_penalty, order=bleu.order, bleu=bleu.score,
                      smooth=tr(f"inference_metrics.smooth.{bleu.smooth}")))
    st.latex(r"\mathrm{BLEU} = \mathrm{BP}\cdot\exp\Big(\frac{1}{N}\sum_{n=1}^{N}\ln p_n\Big),\quad"
             r"\mathrm{BP} = \min\big(1,\ e^{1 - r/c}\big)")
    with st.expander(tr("inference_metrics.overlap.ngrams")):
        for n, column in zip(range(1, 5), st.columns(4)):
            column.caption(f"{n}-gram")
            column.dataframe(ngram_table(bleu, n, lg), hide_index=True, width="stretch")
    st.markdown(tr("inference_metrics.overlap.rouge_header"))
    st.dataframe(rouge_table(scores.rouge, lg), hide_index=True, width="stretch")
    st.caption(tr("inference_metrics.overlap.lcs", lcs=" ".join(scores.rouge.lcs) or "—",
                  n=len(scores.rouge.lcs)))
    corpus = result.corpus
    mean = sum(corpus.sentence_scores) / len(corpus.sentence_scores)
    with st.expander(tr("inference_metrics.overlap.corpus", corpus=corpus.corpus.score, mean=mean)):
        st.dataframe(corpus_table(corpus, lg), hide_index=True, width="stretch")
        st.caption(tr("inference_metrics.overlap.corpus_why", corpus=corpus.corpus.score, mean=mean))

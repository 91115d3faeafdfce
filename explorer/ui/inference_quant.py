"""The quantization tab of the inference lab: SmolLM2's weights at 8, 4, 3 or 2 bits.

What changes with every control is cheap and cached per format (one matrix before and after: milliseconds; the
memory table: arithmetic; the outliers: once per process), computed under ``priority.interactive()``. The whole
model (210 matrices quantized into a copy, KL and perplexity on a text, greedy outputs) takes seconds, so it runs
when the student presses the button, one student at a time (a place in line is shown), outside the interactive
gate, and yields to other pages between matrices (explorer.priority). At most one quantized copy is kept in the
process (425 MB of float32 matrices; the embedding is the shared model's own tensor)."""
from __future__ import annotations

import streamlit as st

from .. import priority
from ..admission import AdmissionQueue
from ..labs.inference_quant import (
    FORMATS, GROUP_SIZES, MATRICES, MAX_NEW_TOKENS, MAX_PROMPT_CHARS, MAX_TEXT_CHARS, CopyCache, Evaluation,
    MatrixView, Outliers, QuantSettings, evaluate, format_label, matrix_view, mean_kl, outliers, perplexity_change,
    run_quant, weight_of,
)
from ..quant import BITS, GRANULARITIES, QuantFormat
from ..viz.inference_quant import (
    histogram_figure, kl_figure, layer_error_figure, matrix_name, memory_figure, outlier_figure,
)
from .common import chart, show_outcome
from .i18n import lang, say, tr
from .models import get_model, shared_model
from .url_state import Control, LabView, one_of, show_problems, text, whole

MODEL = "smollm2-135m"
N_LAYERS = 30  # SmolLM2-135M's blocks (its config; checked again by QuantSettings.validate against the model)
DEFAULT = QuantSettings()
EVALUATED_KEY = "inference_quant.evaluated"  # session_state: (format, text, prompt, tokens) -> Evaluation, the last

FORMULAS = {
    "symmetric": r"q = \mathrm{clamp}\big(\mathrm{round}(w/s), -Q, Q\big),\quad s = \frac{\max|w|}{Q},\quad "
                 r"Q = 2^{b-1}-1,\quad \hat w = s\,q",
    "zero_point": r"q = \mathrm{clamp}\big(\mathrm{round}(w/s) + z, 0, L\big),\quad "
                  r"s = \frac{\max(w,0) - \min(w,0)}{L},\quad z = \mathrm{round}\big(-\min(w,0)/s\big),\quad "
                  r"\hat w = s\,(q - z)",
    "min": r"q = \mathrm{clamp}\Big(\mathrm{round}\Big(\frac{w - m}{s}\Big), 0, L\Big),\quad m = \min w,\quad "
           r"s = \frac{\max w - m}{L},\quad L = 2^b - 1,\quad \hat w = s\,q + m",
}

VIEW = LabView("inference_quant", [
    Control("format", DEFAULT.format, one_of(FORMATS)),
    Control("bits", DEFAULT.bits, one_of(BITS)),
    Control("granularity", DEFAULT.granularity, one_of(GRANULARITIES)),
    Control("group_size", DEFAULT.group_size, one_of(GROUP_SIZES)),
    Control("layer", DEFAULT.layer, whole(0, N_LAYERS - 1)),
    Control("matrix", DEFAULT.matrix, one_of(MATRICES)),
    Control("text", DEFAULT.text, text(MAX_TEXT_CHARS)),
    Control("prompt", DEFAULT.prompt, text(MAX_PROMPT_CHARS)),
    Control("max_new_tokens", DEFAULT.max_new_tokens, whole(1, MAX_NEW_TOKENS)),
])


@st.cache_resource(show_spinner=False)
def copies() -> CopyCache:
    return CopyCache(capacity=1)


@st.cache_resource(show_spinner=False)
def evaluation_queue() -> AdmissionQueue:
    return AdmissionQueue(capacity=1)  # one whole-model run at a time: each needs its own 425 MB copy


@st.cache_resource(show_spinner=False)
def outliers_once() -> Outliers:
    with priority.interactive():  # a one-off per process (about a second): the first student waits for it
        return outliers(shared_model(MODEL).model)


# one view is 3 arrays of 242 numbers: 64 of them stay well under a megabyte
@st.cache_data(max_entries=64, show_spinner=False)
def matrix_for(fmt: "QuantFormat | str", layer: int, matrix: str) -> MatrixView:
    with priority.interactive():
        return matrix_view(weight_of(shared_model(MODEL).model, layer, matrix), fmt, layer, matrix)


# an evaluation is 210 errors, a few hundred KL values and two short texts: a few KB each
@st.cache_data(max_entries=32, show_spinner=False)
def evaluation_for(fmt: "QuantFormat | str", text_value: str, prompt: str, max_new_tokens: int) -> Evaluation:
    pm = shared_model(MODEL)
    return evaluate(pm, copies().get(pm.model, fmt),
                    QuantSettings(text=text_value, prompt=prompt, max_new_tokens=max_new_tokens))


def evaluation_key(s: QuantSettings) -> tuple:
    return s.quant_format, s.text, s.prompt, s.max_new_tokens


def controls() -> QuantSettings:
    """The format row (its irrelevant controls greyed out, not hidden, so the row keeps its place) and the matrix."""
    cols = st.columns([3, 2, 3, 2, 2, 3])
    fmt = cols[0].selectbox(tr("inference_quant.control.format"), FORMATS, key=VIEW.key("format"),
                            format_func=lambda v: tr(f"inference_quant.format.{v}"))
    q4_1 = fmt == "q4_1"
    bits = cols[1].selectbox(tr("inference_quant.control.bits"), BITS, key=VIEW.key("bits"), disabled=q4_1)
    granularity = cols[2].selectbox(tr("inference_quant.control.granularity"), GRANULARITIES,
                                    key=VIEW.key("granularity"), disabled=q4_1,
                                    format_func=lambda v: tr(f"inference_quant.granularity.{v}"))
    group_size = cols[3].selectbox(tr("inference_quant.control.group_size"), GROUP_SIZES, key=VIEW.key("group_size"),
                                   disabled=q4_1 or granularity != "group")
    layer = cols[4].selectbox(tr("inference_quant.control.layer"), range(N_LAYERS), key=VIEW.key("layer"))
    matrix = cols[5].selectbox(tr("inference_quant.control.matrix"), MATRICES, key=VIEW.key("matrix"),
                               format_func=lambda v: matrix_name(lang(), v))
    return QuantSettings(format=fmt, bits=bits, granularity=granularity, group_size=group_size, layer=layer,
                         matrix=matrix)


def render() -> None:
    lg = lang()
    show_problems(VIEW.open())
    st.caption(tr("inference_quant.intro"))
    chosen = controls()
    # drawn in this order, filled in another: the whole-model inputs are widgets (before VIEW.publish), but they sit
    # below the charts so that the histogram stays on the first screen
    charts, whole_model = st.container(), st.container()
    with whole_model:
        st.subheader(tr("inference_quant.evaluate.header"))
        with st.expander(tr("inference_quant.evaluate.inputs")):
            text_value = st.text_area(tr("inference_quant.control.text"), max_chars=MAX_TEXT_CHARS,
                                      key=VIEW.key("text"), height=100)
            prompt_col, tokens_col = st.columns([3, 1])
            prompt = prompt_col.text_input(tr("inference_quant.control.prompt"), max_chars=MAX_PROMPT_CHARS,
                                           key=VIEW.key("prompt"))
            tokens = tokens_col.slider(tr("inference_quant.control.max_new_tokens"), 1, MAX_NEW_TOKENS,
                                       key=VIEW.key("max_new_tokens"))
    VIEW.publish()
    requested = QuantSettings(chosen.format, chosen.bits, chosen.granularity, chosen.group_size, chosen.layer,
                              chosen.matrix, text_value, prompt, tokens)
    pm = get_model(MODEL)
    shown = run_quant(requested, pm, outliers_of=outliers_once,
                      matrix_of=lambda s: matrix_for(s.quant_format, s.layer, s.matrix))
    with charts:
        show_outcome(shown)
    if shown.result is None:
        return
    with charts:
        cheap_part(shown.settings, shown.result, lg)
    with whole_model:
        evaluation_section(shown.settings, pm, lg)


def cheap_part(used: QuantSettings, result, lg: str) -> None:
    fmt = used.quant_format
    label = format_label(fmt)
    view = result.matrix
    chart(histogram_figure(view, label, lg), "quant_histogram")
    st.caption(tr("inference_quant.matrix_caption", rel=100 * view.rel_rms, max_error=view.max_error,
                  bound=view.max_half_step, distinct=view.distinct_after, bits=view.bits_per_weight))
    if fmt == "q4_1":
        st.info(tr("inference_quant.q4_1_again", rel=view.rel_rms, max_error=view.max_error))
    with st.expander(tr("inference_quant.formulas")):
        for scheme, formula in FORMULAS.items():
            st.markdown(f"**{tr(f'inference_quant.format.{scheme}')}**")
            st.latex(formula)
        st.latex(r"|w - \hat w| \le s/2")
        st.markdown(tr("inference_quant.formulas_text"))
    memory_section(result.memory, lg)
    outlier_section(result.outliers, lg)


def memory_section(rows, lg: str) -> None:
    st.subheader(tr("inference_quant.memory.header"))
    chart(memory_figure(rows, lg), "quant_memory")
    fp32 = rows[0].total
    chosen = next((r for r in rows if r.chosen), None)
    if chosen is not None:
        st.caption(tr("inference_quant.memory.caption", fmt=say(chosen.label), mb=chosen.total / 1e6,
                      fp32=fp32 / 1e6, times=fp32 / chosen.total, emb=chosen.embedding / 1e6))


def outlier_section(found: Outliers, lg: str) -> None:
    st.subheader(tr("inference_quant.outliers.header"))
    chart(outlier_figure(found, lg), "quant_outliers")
    worst, typical = found.worst, found.typical
    header = [tr("inference_quant.outliers.matrix")] + [tr(f"inference_quant.granularity.{g}") for g in GRANULARITIES]
    rows = []
    for m in (worst, typical):
        rows.append([tr("inference_quant.outliers.which", layer=m.layer, matrix=matrix_name(lg, m.matrix),
                        spread=m.spread)] + [f"{100 * m.errors[g]:.1f} %" for g in GRANULARITIES])
    st.table({h: [r[i] for r in rows] for i, h in enumerate(header)})
    st.caption(tr("inference_quant.outliers.caption", n=len(found.spreads), layer=worst.layer,
                  matrix=matrix_name(lg, worst.matrix), spread=worst.spread, tensor=100 * worst.errors["tensor"],
                  channel=100 * worst.errors["channel"], group=100 * worst.errors["group"]))


def evaluation_section(used: QuantSettings, pm, lg: str) -> None:
    key = evaluation_key(used)
    pressed = st.button(tr("inference_quant.evaluate.button", fmt=say(format_label(used.quant_format))),
                        type="primary", icon=":material/compress:", key="inference_quant.go")
    if pressed:
        place = st.empty()
        with evaluation_queue().join() as ticket:
            while not ticket.wait(0.25):
                place.caption(tr("inference_quant.evaluate.waiting", ahead=ticket.ahead()))
            place.empty()
            with st.spinner(tr("inference_quant.evaluate.running")):
                shown = run_quant(used, pm, evaluation=True, outliers_of=outliers_once,
                                  matrix_of=lambda s: matrix_for(s.quant_format, s.layer, s.matrix),
                                  evaluation_of=lambda s: evaluation_for(*evaluation_key(s)))
        if shown.result is not None and shown.result.evaluation is not None:
            st.session_state[EVALUATED_KEY] = (key, shown.result.evaluation)
    kept = st.session_state.get(EVALUATED_KEY)
    if kept is None:
        st.caption(tr("inference_quant.evaluate.press"))
        return
    if kept[0] != key:
        st.caption(tr("inference_quant.evaluate.other_settings"))
        return
    show_evaluation(kept[1], used, lg)


def show_evaluation(e: Evaluation, used: QuantSettings, lg: str) -> None:
    p = e.predictions
    cols = st.columns(4)
    cols[0].metric(tr("inference_quant.evaluate.kl"), f"{mean_kl(e):.4f}", help=tr("inference_quant.evaluate.kl_help"))
    cols[1].metric(tr("inference_quant.evaluate.ppl_ref"), f"{p.perplexity_ref:.2f}")
    cols[2].metric(tr("inference_quant.evaluate.ppl_quant"), f"{p.perplexity_quant:.2f}",
                   delta=f"{100 * perplexity_change(e):+.1f} %", delta_color="inverse")
    cols[3].metric(tr("inference_quant.evaluate.bytes"), f"{e.quantized_bytes / 1e6:,.1f} MB",
                   help=tr("inference_quant.evaluate.bytes_help"))
    if p.truncated:
        st.caption(tr("inference_quant.evaluate.truncated", n=len(p.labels)))
    left, right = st.columns(2)
    g = e.greedy
    left.markdown(f"**{tr('inference_quant.evaluate.greedy_ref')}**")
    left.code(g.ref_text or "∅", language=None, wrap_lines=True)
    right.markdown(f"**{tr('inference_quant.evaluate.greedy_quant', fmt=say(format_label(used.quant_format)))}**")
    right.code(g.quant_text or "∅", language=None, wrap_lines=True)
    first = g.first_difference
    st.caption(tr("inference_quant.evaluate.same", n=len(g.ref_ids)) if first is None
               else tr("inference_quant.evaluate.differ", at=first + 1))
    chart(layer_error_figure(e, lg), "quant_layer_errors")
    chart(kl_figure(p, lg), "quant_kl")

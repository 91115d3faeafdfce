"""Model sizing lab: exact parameter counts, memory and compute for GPT, BERT and LLaMA, and the course's table
checked. Arithmetic only: no model is ever built here.

The controls of a tab come before its numbers, but the numbers come from one ``run`` of every control: each tab
keeps an empty container where its numbers go, filled once the lab has run."""
import pandas as pd
import streamlit as st

from explorer.course_tables import COURSE_TABLES, NOTES_ERRORS
from explorer.labs.sizing import SizingSettings, resolve_model, run
from explorer.labs.sizing_tables import breakdown_rows, course_table_rows, per_layer_latex, symbol_values, total_latex
from explorer.presets import REAL_MODELS, swiglu_ratio_caption
from explorer.safe_text import escape_html, escape_markdown
from explorer.sizing import (CHINCHILLA_TOKENS_PER_PARAM, DTYPE_BYTES, ENCODER_KEEPS_NO_KV_CACHE, GROUPS,
                             gpu_memory_bytes, human_bytes, human_count, human_gpu_memory, human_seconds, sci,
                             training_flops)
from explorer.ui import sizing as controls
from explorer.ui.common import chart, page_header, report_invalid
from explorer.ui.i18n import lang, say, tr
from explorer.ui.url_state import link_and_reset, show_problems
from explorer.viz.sizing import (breakdown_sunburst, compare_bars, group_label, inference_memory_bars,
                                 memory_by_zero_stage, part_label, scaling_curves, tokens_per_parameter)

VIEW = controls.VIEW
page_header(tr("sizing.title"), tr("sizing.intro"), tr("sizing.course_section"))
show_problems(VIEW.open())
with st.sidebar:
    link_and_reset(VIEW)


def _frame(rows: list[dict], prefix: str) -> pd.DataFrame:
    """A table with its column ids named in the student's language (catalog ``<prefix>.<id>``)."""
    frame = pd.DataFrame(rows)
    return frame.rename(columns={c: tr(f"{prefix}.{c}") for c in frame.columns})


# ---- which model ------------------------------------------------------------------------------------------------
model_row = st.container()
with model_row:
    model = resolve_model(controls.model_settings())
if not model.ok:  # no numbers: the preset's totals under the student's fields read as the totals of those fields
    report_invalid(model.error)
    st.caption(tr("sizing.nothing_counted"))
    VIEW.publish()
    st.stop()
resolved, preset = model.result, model.settings.preset
cfg = resolved.cfg
for note in resolved.notes:
    st.caption(escape_markdown(say(note)))
pooler, mlm_head = controls.counted_heads(preset, cfg, st.container(horizontal=True))
headline = st.container()

tabs = st.tabs([tr(f"sizing.tab.{name}") for name in ("breakdown", "compare", "memory", "compute", "course")])

# ---- the controls of every tab, each followed by the place of its numbers ---------------------------------------
with tabs[0]:
    breakdown_chart = st.container()
    chart_kind = controls.chart_kind()
with tabs[1]:
    compare = controls.compare_choice(preset)
    compare_table = st.container()
    share = controls.share_toggle()
    compare_chart = st.container()
    st.markdown(tr("sizing.scaling_intro"))
    scaling = controls.scaling_settings()
    scaling_chart = st.container()
    st.latex(r"N \approx 12\,L\,d^2 + V\,d \qquad (4d^2 \text{ attention} + 8d^2 \text{ FFN per layer})")

with tabs[2]:
    gpu = controls.gpu_choice()
    st.caption(tr("sizing.gpu_caption", gpu=gpu, memory=human_gpu_memory(gpu_memory_bytes(gpu))))
    st.subheader(tr("sizing.inference"))
    inference = controls.inference_settings(cfg)
    inference_panel = st.container()
    st.latex(r"\text{KV cache} = 2 \cdot L \cdot n_{kv} \cdot d_h \cdot s \cdot b \cdot \text{bytes}")
    if cfg.n_kv_head < cfg.n_head:
        st.caption(tr("sizing.gqa_caption", n_kv=cfg.n_kv_head, n_head=cfg.n_head, groups=cfg.kv_groups))
    st.subheader(tr("sizing.training"))
    training = controls.training_settings(cfg)
    training_panel = st.container()
    st.latex(r"\begin{aligned} \text{stage 0:}&\; (2 + 2 + 12)\,\Psi &\quad \text{stage 1:}&\; 2\Psi + 2\Psi + "
             r"\tfrac{12\Psi}{N_d} \\ \text{stage 2:}&\; 2\Psi + \tfrac{(2 + 12)\Psi}{N_d} &\quad "
             r"\text{stage 3:}&\; \tfrac{(2 + 2 + 12)\Psi}{N_d} \end{aligned}")
    st.caption(tr("sizing.zero_caption"))
    st.latex(r"\text{activations per layer} = s\,b\,h\left(34 + 5\,\frac{a\,s}{h}\right) \text{ bytes}")

with tabs[3]:
    compute = controls.compute_settings(resolved.real)
    compute_panel = st.container()
    st.latex(r"C_{\text{train}} \approx 6\,N\,D \qquad C_{\text{infer}} \approx 2\,N \text{ per token} \qquad "
             r"D_{\text{Chinchilla}} \approx 20\,N")
    st.latex(r"t = \frac{6\,N\,D}{n_{\text{GPU}}\cdot \text{peak FLOP/s}\cdot \text{MFU}}")
    gpt3, llama3 = REAL_MODELS["GPT-3 175B"], REAL_MODELS["Llama-3-8B"]
    st.caption(tr("sizing.gpt3_check", n=human_count(gpt3.total), d=human_count(gpt3.train_tokens),
                  flops=sci(training_flops(gpt3.total, gpt3.train_tokens))))
    st.markdown(tr("sizing.tokens_intro", k=CHINCHILLA_TOKENS_PER_PARAM, gpt3=gpt3.train_tokens / gpt3.total,
                   llama3=llama3.train_tokens / llama3.total))

VIEW.publish()  # every control of the lab is drawn by now

outcome = run(SizingSettings(model.settings, pooler, mlm_head, compare, scaling, gpu, inference, training, compute))
if not outcome.ok:
    report_invalid(outcome.error)
    st.stop()
result = outcome.result
b, info = result.breakdown, result.summary
label = say(resolved.label)

# ---- headline ---------------------------------------------------------------------------------------------------
with headline:
    top = st.columns([3, 2, 2])
    top[0].metric(tr("sizing.metric.exact"), info.total_text, help=tr("sizing.metric.exact_help", human=info.human))
    published = info.published
    if published is not None and published.comparable:
        top[1].metric(tr("sizing.metric.published"), published.label,
                      tr("sizing.metric.vs_exact", pct=published.error_percent), delta_color="off", delta_arrow="off",
                      help=published.source)
    else:
        top[1].metric(tr("sizing.metric.published"), "—", help=tr("sizing.metric.published_none"))
    top[2].metric(tr("sizing.metric.shortcut"), human_count(info.approx),
                  tr("sizing.metric.vs_exact", pct=info.approx_error_percent), delta_color="off", delta_arrow="off")

# ---- breakdown --------------------------------------------------------------------------------------------------
with breakdown_chart:
    title = tr("sizing.breakdown_title", model=escape_html(label), n=info.human)
    chart(breakdown_sunburst(b, title, kind=chart_kind, lang=lang()), "breakdown_chart")
with tabs[0]:
    rest = st.columns(2)
    rest[0].metric(tr("sizing.metric.non_embedding"), human_count(info.non_embedding),
                   help=tr("sizing.metric.non_embedding_help"))
    rest[1].metric(tr("sizing.metric.one_layer", n=info.n_layer), human_count(info.per_layer))
    if published is not None:
        with st.expander(tr("sizing.why_differ", source=published.source)):
            st.markdown(escape_markdown(say(published.why)))
    st.markdown(tr("sizing.parts_title"))
    rows = [dict(r, part=part_label(lang(), r["part"], r["stack"]), group=group_label(lang(), r["group"]))
            for r in breakdown_rows(b)]
    for r in rows:
        del r["stack"]
    parts = _frame(rows, "sizing.part_col")
    col = lambda name: tr(f"sizing.part_col.{name}")  # noqa: E731
    st.dataframe(parts, hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3,
                 column_config={col("per_copy"): st.column_config.NumberColumn(format="localized", width="small"),
                                col("copies"): st.column_config.NumberColumn(width="small"),
                                col("total"): st.column_config.NumberColumn(format="localized", width="medium"),
                                col("share"): st.column_config.NumberColumn(format="%.2f", width="small")})
    st.markdown(tr("sizing.one_layer_title"))
    names = {g: group_label(lang(), g) for g in GROUPS}
    sym, num = per_layer_latex(b, names)
    st.latex(sym)
    st.latex(num)
    st.markdown(tr("sizing.whole_model_title"))
    sym, num = total_latex(b)
    st.latex(sym)
    st.latex(num)
    st.markdown(symbol_values(cfg))
    st.caption(say(swiglu_ratio_caption()))
    st.latex(r"\text{FFN}(x) = \max(0, xW_1 + b_1)W_2 + b_2")
    st.latex(r"\text{SwiGLU}(x) = (\text{SiLU}(xW_{gate}) \odot xW_{up})W_{down}")

# ---- compare ----------------------------------------------------------------------------------------------------
with compare_table:
    rows = [dict(r, model=say(r["model"])) for r in result.comparison]
    st.dataframe(_frame(rows, "sizing.compare_col"), hide_index=True, width="stretch",
                 column_config={tr("sizing.compare_col.exact"): st.column_config.NumberColumn(format="localized")})
with compare_chart:
    chart(compare_bars(dict(result.compared), share=share, lang=lang()), "compare_chart")
with scaling_chart:
    if result.scaling.ok:
        chart(scaling_curves(result.scaling.result, lang=lang()), "scaling_chart")
    else:
        st.warning(escape_markdown(say(result.scaling.error)))

# ---- memory -----------------------------------------------------------------------------------------------------
with inference_panel:
    memory = result.inference
    if memory.encoder:
        st.caption(escape_markdown(say(ENCODER_KEEPS_NO_KV_CACHE)))
    elif memory.error:
        report_invalid(memory.error)
    w_cols = st.columns(5)
    for col_, (dtype, nbytes) in zip(w_cols, memory.weights):
        col_.metric(tr("sizing.metric.weights", dtype=dtype), human_bytes(nbytes),
                    tr("sizing.metric.bytes_per_param", n=DTYPE_BYTES[dtype]), delta_color="off", delta_arrow="off")
    w_cols[4].metric(tr("sizing.metric.kv_cache"), human_bytes(memory.kv_cache) if memory.kv_cache is not None
                     else "—", help=tr("sizing.metric.kv_cache_help"))
    st.caption(tr("sizing.inference_needs", needed=human_bytes(memory.needed), gpus=memory.gpus, gpu=gpu))
    chart(inference_memory_bars(dict(memory.weights), memory.kv_cache, result.gpu_bytes, lang=lang()),
          "inference_memory_chart")

with training_panel:
    if result.training.ok:
        needs = result.training.result
        cols = st.columns(5)
        cols[0].metric(tr("sizing.metric.train_weights"), human_bytes(needs.memory.states.weights))
        cols[1].metric(tr("sizing.metric.gradients"), human_bytes(needs.memory.states.gradients))
        cols[2].metric(tr("sizing.metric.optimizer"), human_bytes(needs.memory.states.optimizer))
        cols[3].metric(tr("sizing.metric.activations"), human_bytes(needs.memory.activations))
        cols[4].metric(tr("sizing.metric.per_gpu"), human_bytes(needs.memory.total),
                       tr("sizing.metric.fits") if needs.fits
                       else tr("sizing.metric.over", memory=human_gpu_memory(result.gpu_bytes)),
                       delta_color="normal" if needs.fits else "inverse")
        chart(memory_by_zero_stage(needs.by_stage, needs.memory.activations, result.gpu_bytes, lang=lang()),
              "training_memory_chart")
    else:
        report_invalid(result.training.error)
with tabs[2]:
    needs = result.training.result
    per_layer_acts, logits = (human_bytes(needs.activations_per_layer), human_bytes(needs.logits)) if needs \
        else ("—", "—")
    st.caption(tr("sizing.activations_caption", per_layer=per_layer_acts, logits=logits, vocab=cfg.vocab_size))

# ---- compute ----------------------------------------------------------------------------------------------------
with compute_panel:
    if result.compute.ok:
        spent = result.compute.result
        r = st.columns(4)
        r[0].metric(tr("sizing.metric.train_tokens"), human_count(spent.tokens),
                    tr("sizing.metric.per_param", n=spent.tokens_per_param), delta_color="off", delta_arrow="off")
        r[1].metric(tr("sizing.metric.train_flops"), sci(spent.flops))
        r[2].metric(tr("sizing.metric.time"), say(human_seconds(spent.seconds)), spent.hardware, delta_color="off",
                    delta_arrow="off")
        r[3].metric(tr("sizing.metric.infer_flops"), sci(spent.inference_flops_per_token))
    else:
        report_invalid(result.compute.error)
with tabs[3]:
    chart(tokens_per_parameter(dict(result.token_points), highlight=result.highlight, lang=lang()), "tokens_chart")

# ---- the course's table -----------------------------------------------------------------------------------------
with tabs[4]:
    st.markdown(tr("sizing.course.intro"))
    for i, table in enumerate(COURSE_TABLES):
        st.subheader(tr("sizing.course.table_title", title=say(table.title), section=table.section))
        printed, marked, explained = course_table_rows(table)
        st.markdown(tr("sizing.course.as_printed"))
        st.dataframe(pd.DataFrame(printed), hide_index=True, width="stretch")
        st.markdown(tr("sizing.course.checked"))
        marked = [{k: say(v) for k, v in row.items()} for row in marked]
        st.dataframe(pd.DataFrame(marked).rename(columns={"exact_count": tr("sizing.course.exact_count"),
                                                          "preset": tr("sizing.course.preset")}),
                     hide_index=True, width="stretch")
        st.markdown(tr("sizing.course.what_is_wrong"))
        for remark in table.remarks:
            st.warning(say(remark))
        with st.expander(tr("sizing.course.every_cell"), expanded=i == 0):
            for e in explained:
                exact = tr("sizing.course.exact_arrow", exact=e["exact"]) if e["exact"] else ""
                st.markdown(tr("sizing.course.cell_line", model=e["model"], column=e["column"],
                               verdict=tr(f"sizing.verdict.{e['verdict']}"), notes=e["notes"], exact=exact,
                               why=say(e["why"])))

    st.subheader(tr("sizing.course.other_title"))
    for e in NOTES_ERRORS:
        st.markdown(tr("sizing.course.notes_line", section=e.section, quote=e.quote, correction=say(e.correction),
                       source=e.source))

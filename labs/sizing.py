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
from explorer.sizing import (CHINCHILLA_TOKENS_PER_PARAM, DTYPE_BYTES, ENCODER_KEEPS_NO_KV_CACHE, gpu_memory_bytes,
                             human_bytes, human_count, human_gpu_memory, human_seconds, sci,
                             training_flops)
from explorer.ui import sizing as controls
from explorer.ui.common import chart, page_header, report_invalid
from explorer.viz.sizing import (breakdown_sunburst, compare_bars, inference_memory_bars, memory_by_zero_stage,
                                 scaling_curves, tokens_per_parameter)


page_header(
    "Model sizing lab",
    "How many parameters does GPT-2, BERT or LLaMA really have, **where do they live**, how much GPU memory "
    "does it take to run or train them, and how long would training take? Pick a real model, change any field "
    "or paste a `config.json`: every number below is exact arithmetic (checked against transformers), nothing "
    "is loaded.",
    "GPT 系列模型的发展 · 预训练 (模型规模)",
)

# ---- which model ------------------------------------------------------------------------------------------------
model = resolve_model(controls.model_settings())
if not model.ok:  # no numbers: the preset's totals under the student's fields read as the totals of those fields
    report_invalid(model.error)
    st.info("Nothing is counted until the model above is valid: fix the field or the config.json, or pick a preset.")
    st.stop()
resolved, preset = model.result, model.settings.preset
cfg = resolved.cfg
for note in resolved.notes:
    st.info(escape_markdown(note))
pooler, mlm_head, chart_kind = controls.counted_heads(preset, cfg)
headline = st.container()

tabs = st.tabs(["Where the parameters live", "Compare models", "Memory", "Compute", "The course's table, checked"])

# ---- the controls of every tab, each followed by the place of its numbers ---------------------------------------
with tabs[1]:
    compare = controls.compare_choice(preset)
    compare_table = st.container()
    share = st.toggle("Show each part as a share of the model (%)", value=True, key="compare_share",
                      help="Off: absolute counts, where a 70B model dwarfs BERT.")
    compare_chart = st.container()
    st.markdown("**How the size scales with width and depth** (this model's vocabulary, FFN ratio and layout; "
                "64-wide heads). Doubling d_model multiplies the layers' share by 4; doubling L by 2.")
    scaling = controls.scaling_settings()
    scaling_chart = st.container()
    st.latex(r"N \approx 12\,L\,d^2 + V\,d \qquad (4d^2 \text{ attention} + 8d^2 \text{ FFN per layer})")

with tabs[2]:
    gpu = controls.gpu_choice()
    st.caption(f"{gpu}: {human_gpu_memory(gpu_memory_bytes(gpu))}. A card's memory is counted in binary GiB "
               "(2³⁰ bytes); model sizes below are in decimal GB (10⁹ bytes), as the ZeRO paper counts them.")
    st.subheader("Inference")
    inference = controls.inference_settings(cfg)
    inference_panel = st.container()
    st.latex(r"\text{KV cache} = 2 \cdot L \cdot n_{kv} \cdot d_h \cdot s \cdot b \cdot \text{bytes}")
    if cfg.n_kv_head < cfg.n_head:
        st.caption(f"Grouped-query attention: {cfg.n_kv_head} K/V heads instead of {cfg.n_head} make the cache "
                   f"{cfg.kv_groups}x smaller.")
    st.subheader("Training (mixed-precision AdamW, data parallel)")
    training = controls.training_settings(cfg)
    training_panel = st.container()
    st.latex(r"\begin{aligned} \text{stage 0:}&\; (2 + 2 + 12)\,\Psi &\quad \text{stage 1:}&\; 2\Psi + 2\Psi + "
             r"\tfrac{12\Psi}{N_d} \\ \text{stage 2:}&\; 2\Psi + \tfrac{(2 + 12)\Psi}{N_d} &\quad "
             r"\text{stage 3:}&\; \tfrac{(2 + 2 + 12)\Psi}{N_d} \end{aligned}")
    st.caption("Ψ parameters, N_d GPUs: bf16 weights (2 bytes) and gradients (2), fp32 master weights, momentum "
               "and variance (4 + 4 + 4) for AdamW (Rajbhandari et al. 2019, Figure 1).")
    st.latex(r"\text{activations per layer} = s\,b\,h\left(34 + 5\,\frac{a\,s}{h}\right) \text{ bytes}")

with tabs[3]:
    compute = controls.compute_settings(resolved.real)
    compute_panel = st.container()
    st.latex(r"C_{\text{train}} \approx 6\,N\,D \qquad C_{\text{infer}} \approx 2\,N \text{ per token} \qquad "
             r"D_{\text{Chinchilla}} \approx 20\,N")
    st.latex(r"t = \frac{6\,N\,D}{n_{\text{GPU}}\cdot \text{peak FLOP/s}\cdot \text{MFU}}")
    gpt3, llama3 = REAL_MODELS["GPT-3 175B"], REAL_MODELS["Llama-3-8B"]
    st.caption(f"GPT-3 check: 6 × {human_count(gpt3.total)} parameters × {human_count(gpt3.train_tokens)} tokens = "
               f"{sci(training_flops(gpt3.total, gpt3.train_tokens))} FLOPs; Brown et al. 2020 (Table D.1) give "
               "3.14e23. Forward: 2 FLOPs per weight per token; backward: twice that.")
    st.markdown(f"**Training tokens of real models** against Chinchilla's {CHINCHILLA_TOKENS_PER_PARAM} per "
                f"parameter: GPT-3 saw far fewer ({gpt3.train_tokens / gpt3.total:.1f} per parameter), "
                f"Llama-3-8B far more ({llama3.train_tokens / llama3.total:,.0f}), because a small model trained longer is cheaper to "
                "run afterwards.")

outcome = run(SizingSettings(model.settings, pooler, mlm_head, compare, scaling, gpu, inference, training, compute))
if not outcome.ok:
    report_invalid(outcome.error)
    st.stop()
result = outcome.result
b, info, label = result.breakdown, result.summary, resolved.label

# ---- headline ---------------------------------------------------------------------------------------------------
with headline:
    top = st.columns([3, 2])
    top[0].metric("Exact parameters", info.total_text, help=f"≈ {info.human}, counted part by part below")
    published = info.published
    if published is not None and published.comparable:
        top[1].metric("Published figure", published.label, f"{published.error_percent:+.1f}% vs exact",
                      delta_color="off", delta_arrow="off", help=published.source)
    else:
        top[1].metric("Published figure", "—", help="Only the unedited real presets have one.")
    rest = st.columns(3)
    rest[0].metric("Shortcut 12·L·d² + V·d", human_count(info.approx), f"{info.approx_error_percent:+.1f}% vs exact",
                   delta_color="off", delta_arrow="off")
    rest[1].metric("Without embeddings", human_count(info.non_embedding),
                   help="Kaplan et al. count N without the embedding tables.")
    rest[2].metric(f"One layer (× {info.n_layer})", human_count(info.per_layer))
    if published is not None:
        st.caption(f"**Why the figures differ** ({published.source}): {published.why}")

# ---- breakdown --------------------------------------------------------------------------------------------------
with tabs[0]:
    chart(breakdown_sunburst(b, f"{escape_html(label)}: {info.human} parameters", kind=chart_kind),
          "breakdown_chart")
    st.markdown("**Every part, with its formula** (d = d_model, n_h heads of width d_h, n_kv K/V heads, "
                "V = vocabulary, L = layers)")
    rows = breakdown_rows(b)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=35 * (len(rows) + 1) + 3,
                 column_config={"per copy": st.column_config.NumberColumn(format="localized", width="small"),
                                "copies": st.column_config.NumberColumn(width="small"),
                                "total": st.column_config.NumberColumn(format="localized", width="medium"),
                                "share %": st.column_config.NumberColumn(format="%.2f", width="small")})
    st.markdown("**One layer** (a Linear from a to b holds a·b weights, plus b biases when it has them; "
                "a LayerNorm holds 2d, an RMSNorm d):")
    sym, num = per_layer_latex(b)
    st.latex(sym)
    st.latex(num)
    st.markdown("**The whole model:**")
    sym, num = total_latex(b)
    st.latex(sym)
    st.latex(num)
    st.markdown(symbol_values(cfg))
    st.caption(swiglu_ratio_caption())
    st.latex(r"\text{FFN}(x) = \max(0, xW_1 + b_1)W_2 + b_2")
    st.latex(r"\text{SwiGLU}(x) = (\text{SiLU}(xW_{gate}) \odot xW_{up})W_{down}")

# ---- compare ----------------------------------------------------------------------------------------------------
with compare_table:
    st.dataframe(pd.DataFrame(list(result.comparison)), hide_index=True, width="stretch",
                 column_config={"exact": st.column_config.NumberColumn(format="localized")})
with compare_chart:
    chart(compare_bars(dict(result.compared), share=share), "compare_chart")
with scaling_chart:
    if result.scaling.ok:
        chart(scaling_curves(result.scaling.result), "scaling_chart")
    else:
        st.warning(escape_markdown(result.scaling.error))

# ---- memory -----------------------------------------------------------------------------------------------------
with inference_panel:
    memory = result.inference
    if memory.encoder:
        st.info(escape_markdown(ENCODER_KEEPS_NO_KV_CACHE))
    elif memory.error:
        report_invalid(memory.error)
    w_cols = st.columns(5)
    for col, (dtype, nbytes) in zip(w_cols, memory.weights):
        col.metric(f"Weights {dtype}", human_bytes(nbytes), f"{DTYPE_BYTES[dtype]:g} bytes/param", delta_color="off",
                   delta_arrow="off")
    w_cols[4].metric("KV cache", human_bytes(memory.kv_cache) if memory.kv_cache is not None else "—",
                     help="2 · L · n_kv · d_h · tokens · batch · bytes")
    st.caption(f"In bf16 with this KV cache: {human_bytes(memory.needed)}, so at least "
               f"**{memory.gpus} × {gpu}** just to hold it (before activations and framework overhead).")
    chart(inference_memory_bars(dict(memory.weights), memory.kv_cache, result.gpu_bytes), "inference_memory_chart")

with training_panel:
    if result.training.ok:
        needs = result.training.result
        t = st.columns(5)
        t[0].metric("Weights (bf16)", human_bytes(needs.memory.states.weights))
        t[1].metric("Gradients (bf16)", human_bytes(needs.memory.states.gradients))
        t[2].metric("Optimizer (fp32 ×3)", human_bytes(needs.memory.states.optimizer))
        t[3].metric("Activations", human_bytes(needs.memory.activations))
        t[4].metric("Per GPU", human_bytes(needs.memory.total),
                    "fits" if needs.fits else f"over {human_gpu_memory(result.gpu_bytes)}",
                    delta_color="normal" if needs.fits else "inverse")
        chart(memory_by_zero_stage(needs.by_stage, needs.memory.activations, result.gpu_bytes),
              "training_memory_chart")
    else:
        report_invalid(result.training.error)
with tabs[2]:
    needs = result.training.result
    per_layer_acts, logits = (human_bytes(needs.activations_per_layer), human_bytes(needs.logits)) if needs \
        else ("—", "—")
    st.caption("Activations: Korthikanti et al. 2022 (h = d_model, a = heads, s = sequence, b = micro-batch); "
               "selective recomputation keeps 34·s·b·h, full recomputation 2·s·b·h. Derived for the GPT block, "
               f"an estimate for SwiGLU / GQA models. Per layer with these settings: {per_layer_acts}. Left out, "
               "as in the paper (Section 4.3): the embedding layer's output, the final norm and the logits the loss "
               f"keeps in fp32, 4·s·b·V bytes ({logits} with this vocabulary of {cfg.vocab_size:,}).")

# ---- compute ----------------------------------------------------------------------------------------------------
with compute_panel:
    if result.compute.ok:
        spent = result.compute.result
        r = st.columns(4)
        r[0].metric("Training tokens", human_count(spent.tokens), f"{spent.tokens_per_param:.0f} per parameter",
                    delta_color="off", delta_arrow="off")
        r[1].metric("Training FLOPs 6·N·D", sci(spent.flops))
        r[2].metric("Time to train", human_seconds(spent.seconds), spent.hardware, delta_color="off",
                    delta_arrow="off")
        r[3].metric("Inference FLOPs/token 2·N", sci(spent.inference_flops_per_token))
    else:
        report_invalid(result.compute.error)
with tabs[3]:
    chart(tokens_per_parameter(dict(result.token_points), highlight=result.highlight), "tokens_chart")

# ---- the course's table -----------------------------------------------------------------------------------------
with tabs[4]:
    st.markdown("The course notes give two size tables. Here they are as printed, then cell by cell against "
                "the exact configurations: ✓ correct, ≈ loosely rounded, ✗ mistake, ⚑ right number under a wrong "
                "header; the corpus column is not a model size and is only explained.")
    for i, table in enumerate(COURSE_TABLES):
        st.subheader(f"{table.title} (notes: {table.section})")
        printed, marked, explained = course_table_rows(table)
        st.markdown("**As printed in the notes**")
        st.dataframe(pd.DataFrame(printed), hide_index=True, width="stretch")
        st.markdown("**Checked**")
        st.dataframe(pd.DataFrame(marked), hide_index=True, width="stretch")
        st.markdown("**What is wrong, and why**")
        for remark in table.remarks:
            st.warning(remark)
        with st.expander("Every flagged cell explained", expanded=i == 0):
            for e in explained:
                exact = f" → **{e['exact']}**" if e["exact"] else ""
                st.markdown(f"- **{e['model']} · {e['column']}** ({e['verdict']}): {e['notes']}{exact}. {e['why']}")

    st.subheader("Other sentences of the notes, corrected")
    for e in NOTES_ERRORS:
        st.markdown(f"- **{e.section}** · “{e.quote}”  \n  {e.correction} *({e.source})*")

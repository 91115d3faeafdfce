"""Model sizing lab: exact parameter counts, memory and compute for GPT, BERT and LLaMA, and the course's table
checked. Arithmetic only: no model is ever built here."""
import pandas as pd
import streamlit as st

from explorer.course_tables import COURSE_TABLES, NOTES_ERRORS
from explorer.presets import REAL_MODELS, swiglu_ratio_caption
from explorer.sizing import (DTYPE_BYTES, GPUS, RECOMPUTE, ZERO_STAGES, activation_bytes_per_layer,
                             chinchilla_tokens, count_params, gpu_memory_bytes, gpus_needed, human_bytes, human_count,
                             human_gpu_memory, human_seconds, sci, inference_flops_per_token, kv_cache_bytes,
                             logits_bytes, model_states_bytes, training_flops, training_memory, training_seconds,
                             weight_bytes)
from explorer.labs.sizing import (DEFAULT_PRESET, EDITABLE_FIELDS, breakdown_rows, comparison_rows,
                                 config_from_fields, config_from_text, course_table_rows, example_config_json,
                                 kv_head_choices, kv_head_default, kv_head_label, per_layer_latex, preset_config,
                                 preset_counts_pooler, preset_names, summary, symbol_values, total_latex)
from explorer.ui.common import chart, page_header
from explorer.ui.derived import follow_default
from explorer.safe_text import escape_html, escape_markdown
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
names = preset_names()
source = st.radio("Model", ["Real model", "Edit every field", "Paste or upload config.json"], horizontal=True,
                  key="source")
preset = st.selectbox("Preset", names, index=names.index(DEFAULT_PRESET), key="preset",
                      help="Published sizes from the papers; GPT-3 from Table 2.1 of Brown et al. 2020.")
base = preset_config(preset)
resolved_label, error, notes, cfg = preset, None, (), base

if source == "Edit every field":
    st.caption(f"Starting from **{preset}**; change any field. The counts follow every change.")
    values: dict = {}
    cols = st.columns(6)
    for i, spec in enumerate(EDITABLE_FIELDS):
        key = f"field_{preset}_{spec.name}"
        with cols[i % 6]:
            current = getattr(base, spec.name)
            if spec.name == "n_kv_head":  # its choices are the divisors of the n_head typed just before
                n_head = values["n_head"]
                choices = kv_head_choices(n_head)
                values[spec.name] = st.selectbox(
                    spec.label, choices, index=choices.index(kv_head_default(base, n_head)) if choices else None,
                    key=f"{key}_{n_head}", help=spec.help, disabled=not choices,
                    format_func=lambda n, h=n_head: kv_head_label(h, n))
            elif spec.kind in ("int", "int0"):
                values[spec.name] = st.number_input(spec.label, value=int(current), step=1, key=key, help=spec.help)
            elif spec.kind == "choice":
                values[spec.name] = st.selectbox(spec.label, spec.choices, index=spec.choices.index(current),
                                                 key=key, help=spec.help)
            else:
                values[spec.name] = st.checkbox(spec.label, value=bool(current), key=key, help=spec.help)
    derive = st.toggle("Derive d_head = d_model / n_h when d_model or n_h change", value=True, key="derive_head")
    if derive and (values["d_model"] != base.d_model or values["n_head"] != base.n_head) \
            and values["d_head"] == base.d_head:
        values["d_head"] = None
    resolved = config_from_fields(values, base, f"{preset} (edited)")
    cfg, resolved_label, error = resolved.cfg, resolved.label, resolved.error
elif source == "Paste or upload config.json":
    left, right = st.columns([3, 2])
    with left:
        text = st.text_area("config.json", example_config_json(preset), height=260, key=f"config_text_{preset}",
                            help="The config.json of any gpt2, openai-gpt, bert, roberta, distilbert, llama, "
                                 "mistral, qwen, qwen2, phi3, gemma or gpt_neox model.")
    with right:
        upload = st.file_uploader("…or upload a config.json", type=["json"], key="config_file")
        st.caption("Supported model_type: gpt2, openai-gpt, bert, roberta, distilbert, llama, mistral, qwen, "
                   "qwen2, phi3, gemma, gpt_neox. Missing fields take the transformers defaults.")
    resolved = config_from_text(upload.getvalue() if upload is not None else text)
    cfg, resolved_label, error, notes = resolved.cfg, resolved.label, resolved.error, resolved.notes

if error:  # no numbers: the preset's totals under the student's fields read as the totals of those fields
    st.error(escape_markdown(error))
    st.info("Nothing is counted until the model above is valid: fix the field or the config.json, or pick a preset.")
    st.stop()
elif cfg == base:
    resolved_label = preset  # unchanged: keep the preset's name and published figure
for note in notes:
    st.info(escape_markdown(note))

opts = st.columns(3)
is_bert_like = cfg.arch == "encoder"
pooler = opts[0].checkbox("Count BERT's pooler", value=preset_counts_pooler(preset) and is_bert_like,
                          key=f"pooler_{preset}_{is_bert_like}", disabled=not is_bert_like,
                          help="A d x d layer on the [CLS] vector, in every released BERT checkpoint (encoders "
                               "only).")
mlm = opts[1].checkbox("Count the MLM head", value=False, key=f"mlm_head_{is_bert_like}", disabled=not is_bert_like,
                       help="BERT's pre-training head: d x d transform, LayerNorm and an output bias of V "
                            "(its matrix is the tied embedding; encoders only).")
kind = opts[2].radio("Chart", ["sunburst", "treemap"], horizontal=True, key="chart_kind")

b = count_params(cfg, pooler=pooler, mlm_head=mlm)
info = summary(b, resolved_label if not error else preset)

top = st.columns([3, 2])
top[0].metric("Exact parameters", info["total_text"], help=f"≈ {info['human']}, counted part by part below")
if "published" in info and not mlm and pooler == preset_counts_pooler(preset):
    top[1].metric("Published figure", info["published"], f"{info['published_error']} vs exact", delta_color="off",
                  delta_arrow="off", help=info["published_source"])
else:
    top[1].metric("Published figure", "—", help="Only the unedited real presets have one.")
rest = st.columns(3)
rest[0].metric("Shortcut 12·L·d² + V·d", human_count(info["approx"]),
               f"{100 * (info['approx'] - b.total) / b.total:+.1f}% vs exact", delta_color="off", delta_arrow="off")
rest[1].metric("Without embeddings", human_count(info["non_embedding"]),
               help="Kaplan et al. count N without the embedding tables.")
rest[2].metric(f"One layer (× {cfg.n_layer})", human_count(b.per_layer))
if "why" in info and not error:
    st.caption(f"**Why the figures differ** ({info['published_source']}): {info['why']}")

tabs = st.tabs(["Where the parameters live", "Compare models", "Memory", "Compute", "The course's table, checked"])

# ---- breakdown --------------------------------------------------------------------------------------------------
with tabs[0]:
    chart(breakdown_sunburst(b, f"{escape_html(resolved_label)}: {info['human']} parameters", kind=kind),
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
with tabs[1]:
    defaults = [n for n in ("GPT-2 small", "BERT-base", "LLaMA-7B", "Qwen-1.8B") if n != preset]
    follow_default("compare", tuple(defaults))
    chosen = st.multiselect("Models to compare", list(REAL_MODELS), default=defaults, key="compare")
    breakdowns = {resolved_label: b}
    for name in chosen:
        breakdowns[name] = REAL_MODELS[name].breakdown
    st.dataframe(pd.DataFrame(comparison_rows(breakdowns)), hide_index=True, width="stretch",
                 column_config={"exact": st.column_config.NumberColumn(format="localized")})
    share = st.toggle("Show each part as a share of the model (%)", value=True, key="compare_share",
                      help="Off: absolute counts, where a 70B model dwarfs BERT.")
    chart(compare_bars(breakdowns, share=share), "compare_chart")
    st.markdown("**How the size scales with width and depth** (this model's vocabulary, FFN ratio and layout; "
                "64-wide heads). Doubling d_model multiplies the layers' share by 4; doubling L by 2.")
    c1, c2 = st.columns(2)
    d_lo, d_hi = c1.select_slider("d_model range", options=[128, 256, 512, 768, 1024, 2048, 4096, 8192, 12288,
                                                             16384], value=(256, 8192), key="scale_d")
    layers = c2.multiselect("Layers", [6, 12, 24, 32, 48, 80, 96], default=[12, 32, 96], key="scale_layers")
    d_values = [d for d in (128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384)
                if d_lo <= d <= d_hi]
    if layers and d_values:
        chart(scaling_curves(cfg, d_values, sorted(layers)), "scaling_chart")
    else:
        st.warning("Pick at least one layer count and a range of d_model.")
    st.latex(r"N \approx 12\,L\,d^2 + V\,d \qquad (4d^2 \text{ attention} + 8d^2 \text{ FFN per layer})")

# ---- memory -----------------------------------------------------------------------------------------------------
with tabs[2]:
    gpu_name = st.selectbox("GPU", list(GPUS), index=1, key="gpu")
    gpu_bytes = gpu_memory_bytes(gpu_name)
    st.caption(f"{gpu_name}: {human_gpu_memory(gpu_bytes)}. A card's memory is counted in binary GiB (2³⁰ bytes); "
               "model sizes below are in decimal GB (10⁹ bytes), as the ZeRO paper counts them.")
    st.subheader("Inference")
    c = st.columns(3)
    batch = c[0].number_input("Batch", value=1, step=1, key="inf_batch")
    follow_default("inf_seq", min(cfg.max_seq_len, 4096))  # a new model's context, not the last one's
    seq = c[1].number_input("Sequence length (prompt + generated)", value=min(cfg.max_seq_len, 4096), step=256,
                            key="inf_seq")
    kv_dtype = c[2].selectbox("KV cache precision", ["bf16", "fp32", "int8"], key="kv_dtype")
    weights = {dt: weight_bytes(b.total, dt) for dt in ("fp32", "bf16", "int8", "int4")}
    kv, kv_msg = None, None
    try:
        kv = kv_cache_bytes(cfg, int(batch), int(seq), kv_dtype)
    except ValueError as err:
        kv_msg = str(err)
    if kv_msg and "encoder" in kv_msg:
        st.info(escape_markdown(kv_msg))
    elif kv_msg:
        st.error(escape_markdown(kv_msg))
    w_cols = st.columns(5)
    for col, (dt, nbytes) in zip(w_cols, weights.items()):
        col.metric(f"Weights {dt}", human_bytes(nbytes), f"{DTYPE_BYTES[dt]:g} bytes/param", delta_color="off",
                   delta_arrow="off")
    w_cols[4].metric("KV cache", human_bytes(kv) if kv is not None else "—",
                     help="2 · L · n_kv · d_h · tokens · batch · bytes")
    need = weights["bf16"] + (kv or 0)
    st.caption(f"In bf16 with this KV cache: {human_bytes(need)}, so at least "
               f"**{gpus_needed(need, gpu_bytes)} × {gpu_name}** just to hold it (before activations "
               "and framework overhead).")
    chart(inference_memory_bars(weights, kv, gpu_bytes), "inference_memory_chart")
    st.latex(r"\text{KV cache} = 2 \cdot L \cdot n_{kv} \cdot d_h \cdot s \cdot b \cdot \text{bytes}")
    if cfg.n_kv_head < cfg.n_head:
        st.caption(f"Grouped-query attention: {cfg.n_kv_head} K/V heads instead of {cfg.n_head} make the cache "
                   f"{cfg.n_head // cfg.n_kv_head}x smaller.")

    st.subheader("Training (mixed-precision AdamW, data parallel)")
    c = st.columns(5)
    n_gpus = c[0].number_input("GPUs", value=8, step=1, key="n_gpus")
    stage = c[1].selectbox("ZeRO stage", ZERO_STAGES, index=0, key="zero_stage",
                           help="1 splits the optimizer states over the GPUs, 2 also the gradients, 3 also the "
                                "weights (Rajbhandari et al. 2019).")
    micro = c[2].number_input("Micro-batch per GPU", value=1, step=1, key="micro_batch")
    follow_default("train_seq", min(cfg.max_seq_len, 2048))
    train_seq = c[3].number_input("Sequence length", value=min(cfg.max_seq_len, 2048), step=256, key="train_seq")
    recompute = c[4].selectbox("Activation recomputation", RECOMPUTE, key="recompute")
    try:
        mem = training_memory(cfg, int(n_gpus), stage, int(micro), int(train_seq), recompute, n_params=b.total)
        states = [model_states_bytes(b.total, int(n_gpus), s) for s in ZERO_STAGES]
        per_layer_acts = human_bytes(activation_bytes_per_layer(cfg, int(micro), int(train_seq), recompute))
        logits = human_bytes(logits_bytes(cfg, int(micro), int(train_seq)))
    except ValueError as err:
        st.error(escape_markdown(err))
        mem, per_layer_acts, logits = None, "—", "—"
    if mem is not None:
        t = st.columns(5)
        t[0].metric("Weights (bf16)", human_bytes(mem.states.weights))
        t[1].metric("Gradients (bf16)", human_bytes(mem.states.gradients))
        t[2].metric("Optimizer (fp32 ×3)", human_bytes(mem.states.optimizer))
        t[3].metric("Activations", human_bytes(mem.activations))
        fits = mem.total <= gpu_bytes
        t[4].metric("Per GPU", human_bytes(mem.total), "fits" if fits else f"over {human_gpu_memory(gpu_bytes)}",
                    delta_color="normal" if fits else "inverse")
        chart(memory_by_zero_stage(states, mem.activations, gpu_bytes), "training_memory_chart")
    st.latex(r"\begin{aligned} \text{stage 0:}&\; (2 + 2 + 12)\,\Psi &\quad \text{stage 1:}&\; 2\Psi + 2\Psi + "
             r"\tfrac{12\Psi}{N_d} \\ \text{stage 2:}&\; 2\Psi + \tfrac{(2 + 12)\Psi}{N_d} &\quad "
             r"\text{stage 3:}&\; \tfrac{(2 + 2 + 12)\Psi}{N_d} \end{aligned}")
    st.caption("Ψ parameters, N_d GPUs: bf16 weights (2 bytes) and gradients (2), fp32 master weights, momentum "
               "and variance (4 + 4 + 4) for AdamW (Rajbhandari et al. 2019, Figure 1).")
    st.latex(r"\text{activations per layer} = s\,b\,h\left(34 + 5\,\frac{a\,s}{h}\right) \text{ bytes}")
    st.caption("Activations: Korthikanti et al. 2022 (h = d_model, a = heads, s = sequence, b = micro-batch); "
               "selective recomputation keeps 34·s·b·h, full recomputation 2·s·b·h. Derived for the GPT block, "
               f"an estimate for SwiGLU / GQA models. Per layer with these settings: {per_layer_acts}. Left out, "
               "as in the paper (Section 4.3): the embedding layer's output, the final norm and the logits the loss "
               f"keeps in fp32, 4·s·b·V bytes ({logits} with this vocabulary of {cfg.vocab_size:,}).")

# ---- compute ----------------------------------------------------------------------------------------------------
with tabs[3]:
    real = REAL_MODELS.get(resolved_label)
    paper_tokens = real.train_tokens if real is not None else None
    chin = chinchilla_tokens(b.total)
    c = st.columns(4)
    token_options = ["Chinchilla-optimal (20 per parameter)"] + (["As in the paper"] if paper_tokens else []) \
        + ["Custom"]
    follow_default("token_choice", tuple(token_options))
    token_choice = c[0].radio("Training tokens", token_options, key="token_choice")
    custom_b = c[0].number_input("Custom tokens (billions)", value=300.0, step=50.0, key="custom_tokens",
                                 disabled=token_choice != "Custom")
    tokens = chin if token_choice.startswith("Chinchilla") else paper_tokens if token_choice == "As in the paper" \
        else custom_b * 1e9
    gpus_c = c[1].number_input("GPUs", value=1024, step=64, key="compute_gpus")
    gpu_c = c[2].selectbox("GPU type", list(GPUS), index=1, key="compute_gpu")
    mfu = c[3].slider("Utilisation (MFU)", 0.05, 1.0, 0.4, 0.05, key="mfu",
                      help="The fraction of peak FLOP/s really used; 30-50% is typical for large runs.")
    try:
        flops = training_flops(b.total, tokens)
        secs = training_seconds(flops, int(gpus_c), GPUS[gpu_c]["tflops"], mfu)
    except ValueError as err:
        st.error(escape_markdown(err))
        flops = secs = None
    if flops is not None:
        r = st.columns(4)
        r[0].metric("Training tokens", human_count(tokens), f"{tokens / b.total:.0f} per parameter",
                    delta_color="off", delta_arrow="off")
        r[1].metric("Training FLOPs 6·N·D", sci(flops))
        r[2].metric("Time to train", human_seconds(secs), f"{int(gpus_c)} × {gpu_c.split(' (')[0]}",
                    delta_color="off", delta_arrow="off")
        r[3].metric("Inference FLOPs/token 2·N", sci(inference_flops_per_token(b.total)))
    st.latex(r"C_{\text{train}} \approx 6\,N\,D \qquad C_{\text{infer}} \approx 2\,N \text{ per token} \qquad "
             r"D_{\text{Chinchilla}} \approx 20\,N")
    st.latex(r"t = \frac{6\,N\,D}{n_{\text{GPU}}\cdot \text{peak FLOP/s}\cdot \text{MFU}}")
    st.caption("GPT-3 check: 6 × 174.6B parameters × 300B tokens = 3.14e23 FLOPs, the figure of Brown et al. "
               "2020 (Table D.1). Forward: 2 FLOPs per weight per token; backward: twice that.")
    gpt3, llama3 = REAL_MODELS["GPT-3 175B"], REAL_MODELS["Llama-3-8B"]
    st.markdown(f"**Training tokens of real models** against Chinchilla's 20 per parameter: GPT-3 saw far fewer "
                f"({gpt3.train_tokens / gpt3.total:.1f} per parameter), Llama-3-8B far more "
                f"({llama3.train_tokens / llama3.total:,.0f}), because a small model trained longer is cheaper to "
                "run afterwards.")
    points = {k: (m_.total, m_.train_tokens) for k, m_ in REAL_MODELS.items() if m_.train_tokens}
    chart(tokens_per_parameter(points, highlight=resolved_label if resolved_label in points else None),
          "tokens_chart")

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

"""Streamlit glue of the model-sizing lab: the widgets that build its settings, drawn where the page places them.

No cache: ``run`` is arithmetic on a config, about a millisecond of a rerun of about a hundred (the rest is
Streamlit sending tables and figures); with ``st.cache_data`` around it, bench/bench_sizing.py's reruns took the
same time within their noise, so a cache would only add memory per session to bound.
"""
from __future__ import annotations

import streamlit as st

from ..config import ModelConfig, kv_head_choices
from ..labs.sizing import (
    CONFIG_SOURCE, DEFAULT_PRESET, EDITABLE_FIELDS, FIELDS_SOURCE, SOURCES, ModelSettings, compare_defaults,
    example_config_json, kv_head_default, kv_head_label, preset_config, preset_counts_pooler, preset_names,
)
from ..labs.sizing_panels import (
    CUSTOM, DEFAULT_GPU, KV_DTYPES, SCALING_D_OPTIONS, SCALING_LAYER_OPTIONS, ComputeSettings, InferenceSettings,
    ScalingSettings, TrainingSettings, token_choices,
)
from ..presets import REAL_MODELS, RealModel
from ..sizing import GPUS, RECOMPUTE, ZERO_STAGES
from .derived import follow_default

INFERENCE_SEQ_DEFAULT = 4096  # capped by the model's context
TRAINING_SEQ_DEFAULT = 2048


def model_settings() -> ModelSettings:
    """Which model: a preset, its fields edited, or a config.json pasted or uploaded."""
    names = preset_names()
    source = st.radio("Model", SOURCES, horizontal=True, key="source")
    preset = st.selectbox("Preset", names, index=names.index(DEFAULT_PRESET), key="preset",
                          help="Published sizes from the papers; GPT-3 from Table 2.1 of Brown et al. 2020.")
    if source == FIELDS_SOURCE:
        fields, derive_head = _edited_fields(preset)
        return ModelSettings(source, preset, fields, derive_head)
    if source == CONFIG_SOURCE:
        return ModelSettings(source, preset, config_text=_config_text(preset))
    return ModelSettings(source, preset)


def _edited_fields(preset: str) -> tuple[tuple[tuple[str, object], ...], bool]:
    base = preset_config(preset)
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
    derive_head = st.toggle("Derive d_head = d_model / n_h when d_model or n_h change", value=True,
                            key="derive_head")
    return tuple(values.items()), derive_head


def _config_text(preset: str) -> str | bytes:
    left, right = st.columns([3, 2])
    with left:
        text = st.text_area("config.json", example_config_json(preset), height=260, key=f"config_text_{preset}",
                            help="The config.json of any gpt2, openai-gpt, bert, roberta, distilbert, llama, "
                                 "mistral, qwen, qwen2, phi3, gemma or gpt_neox model.")
    with right:
        upload = st.file_uploader("…or upload a config.json", type=["json"], key="config_file")
        st.caption("Supported model_type: gpt2, openai-gpt, bert, roberta, distilbert, llama, mistral, qwen, "
                   "qwen2, phi3, gemma, gpt_neox. Missing fields take the transformers defaults.")
    return upload.getvalue() if upload is not None else text


def counted_heads(preset: str, cfg: ModelConfig) -> tuple[bool, bool, str]:
    """(count BERT's pooler, count the MLM head, the breakdown chart's kind): the heads only an encoder has."""
    opts = st.columns(3)
    is_bert_like = cfg.arch == "encoder"
    pooler = opts[0].checkbox("Count BERT's pooler", value=preset_counts_pooler(preset) and is_bert_like,
                              key=f"pooler_{preset}_{is_bert_like}", disabled=not is_bert_like,
                              help="A d x d layer on the [CLS] vector, in every released BERT checkpoint (encoders "
                                   "only).")
    mlm = opts[1].checkbox("Count the MLM head", value=False, key=f"mlm_head_{is_bert_like}",
                           disabled=not is_bert_like,
                           help="BERT's pre-training head: d x d transform, LayerNorm and an output bias of V "
                                "(its matrix is the tied embedding; encoders only).")
    kind = opts[2].radio("Chart", ["sunburst", "treemap"], horizontal=True, key="chart_kind")
    return pooler, mlm, kind


def compare_choice(preset: str) -> tuple[str, ...]:
    defaults = compare_defaults(preset)
    follow_default("compare", defaults)
    return tuple(st.multiselect("Models to compare", list(REAL_MODELS), default=list(defaults), key="compare"))


def scaling_settings() -> ScalingSettings:
    c1, c2 = st.columns(2)
    d_range = c1.select_slider("d_model range", options=list(SCALING_D_OPTIONS), value=ScalingSettings.d_range,
                               key="scale_d")
    layers = c2.multiselect("Layers", list(SCALING_LAYER_OPTIONS), default=list(ScalingSettings.layers),
                            key="scale_layers")
    return ScalingSettings(tuple(d_range), tuple(layers))


def gpu_choice() -> str:
    return st.selectbox("GPU", list(GPUS), index=list(GPUS).index(DEFAULT_GPU), key="gpu")


def inference_settings(cfg: ModelConfig) -> InferenceSettings:
    c = st.columns(3)
    batch = c[0].number_input("Batch", value=1, step=1, key="inf_batch")
    seq_default = min(cfg.max_seq_len, INFERENCE_SEQ_DEFAULT)
    follow_default("inf_seq", seq_default)  # a new model's context, not the last one's
    seq = c[1].number_input("Sequence length (prompt + generated)", value=seq_default, step=256, key="inf_seq")
    kv_dtype = c[2].selectbox("KV cache precision", KV_DTYPES, key="kv_dtype")
    return InferenceSettings(batch, seq, kv_dtype)


def training_settings(cfg: ModelConfig) -> TrainingSettings:
    c = st.columns(5)
    n_gpus = c[0].number_input("GPUs", value=8, step=1, key="n_gpus")
    stage = c[1].selectbox("ZeRO stage", ZERO_STAGES, index=0, key="zero_stage",
                           help="1 splits the optimizer states over the GPUs, 2 also the gradients, 3 also the "
                                "weights (Rajbhandari et al. 2019).")
    micro = c[2].number_input("Micro-batch per GPU", value=1, step=1, key="micro_batch")
    seq_default = min(cfg.max_seq_len, TRAINING_SEQ_DEFAULT)
    follow_default("train_seq", seq_default)
    seq = c[3].number_input("Sequence length", value=seq_default, step=256, key="train_seq")
    recompute = c[4].selectbox("Activation recomputation", RECOMPUTE, key="recompute")
    return TrainingSettings(n_gpus, stage, micro, seq, recompute)


def compute_settings(real: RealModel | None) -> ComputeSettings:
    """``real``: the published preset the model is, which alone offers its paper's token count."""
    default = ComputeSettings()
    c = st.columns(4)
    options = token_choices(real)
    follow_default("token_choice", options)
    tokens = c[0].radio("Training tokens", options, key="token_choice")
    custom = c[0].number_input("Custom tokens (billions)", value=default.custom_billions, step=50.0,
                               key="custom_tokens", disabled=tokens != CUSTOM)
    n_gpus = c[1].number_input("GPUs", value=default.n_gpus, step=64, key="compute_gpus")
    gpu = c[2].selectbox("GPU type", list(GPUS), index=list(GPUS).index(default.gpu), key="compute_gpu")
    mfu = c[3].slider("Utilisation (MFU)", 0.05, 1.0, default.mfu, 0.05, key="mfu",
                      help="The fraction of peak FLOP/s really used; 30-50% is typical for large runs.")
    return ComputeSettings(tokens, custom, n_gpus, gpu, mfu)

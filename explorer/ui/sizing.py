"""Streamlit glue of the model-sizing lab: the widgets that build its settings, drawn where the page places them, and
the lab's place in the address (``VIEW``: every control under its settings' field name).

No cache: ``run`` is arithmetic on a config, about a millisecond of a rerun of about a hundred (the rest is
Streamlit sending tables and figures); with ``st.cache_data`` around it, bench/bench_sizing.py's reruns took the
same time within their noise, so a cache would only add memory per session to bound.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable

import streamlit as st

from ..config import ModelConfig, kv_head_choices
from ..i18n import Msg
from ..labs.sizing import (
    DEFAULT_PRESET, EDITABLE_FIELDS, SOURCES, TEACHING_PREFIX, ModelSettings, compare_defaults, example_config_json,
    kv_head_default, kv_head_label, preset_config, preset_counts_pooler, preset_names,
)
from ..labs.sizing_panels import (
    CHINCHILLA, CUSTOM, DEFAULT_GPU, KV_DTYPES, MAX_CUSTOM_BILLIONS, SCALING_D_OPTIONS, SCALING_LAYER_OPTIONS,
    TOKEN_CHOICES, ComputeSettings, InferenceSettings, ScalingSettings, TrainingSettings, token_choices,
)
from ..presets import REAL_MODELS, RealModel
from ..sizing import CHINCHILLA_TOKENS_PER_PARAM, GPUS, RECOMPUTE, ZERO_STAGES
from ..i18n import t
from .i18n import lang, tr
from .url_state import VIEWS_KEY, Control, LabView, flag, number, one_of, show_flag, whole

INFERENCE_SEQ_DEFAULT = 4096  # capped by the model's context
TRAINING_SEQ_DEFAULT = 2048
_BIG = 10 ** 12  # a link's sizes: any whole number a field takes (the library explains a model that cannot exist)


def _listed(choices, kind: Callable[[str], Any] = str) -> Callable[[str], list]:
    """'GPT-2 small,BERT-base' -> a list of choices (the order kept), for a multiselect."""
    allowed = set(choices)

    def parse(text: str) -> list:
        values = [kind(part) for part in text.split(",") if part]
        if any(v not in allowed for v in values) or len(set(values)) != len(values):
            raise ValueError(text)
        return values
    return parse


def _show_list(values) -> str:
    return ",".join(map(str, values))


def _d_range(text: str) -> tuple[int, int]:
    low, high = (int(part) for part in text.split(","))
    if low not in SCALING_D_OPTIONS or high not in SCALING_D_OPTIONS or low > high:
        raise ValueError(text)
    return low, high


def _model_value(show: Callable[[Any], str] = str) -> Callable[[Any], str]:
    """A derived control's address text; None (before the model is known) is the model's own value."""
    return lambda v: Msg("sizing.url.model_value") if v is None else show(v)


def _field_control(spec) -> Control:
    if spec.kind == "bool":
        return Control(spec.name, None, flag, _model_value(show_flag))
    if spec.kind == "choice":
        return Control(spec.name, None, one_of(spec.choices), _model_value())
    return Control(spec.name, None, whole(0 if spec.kind == "int0" else 1, _BIG), _model_value())


FIELD_NAMES = tuple(spec.name for spec in EDITABLE_FIELDS)
# Controls whose default comes from the model (a preset's own fields, its context length, the models compared with
# it): None in the address's absence, replaced by the model's value right before the widget (SizingView.derive).
DERIVED = FIELD_NAMES + ("pooler", "compare", "seq_len", "train_seq_len")


class SizingView(LabView):
    """The sizing lab's ``LabView``: some defaults follow the model, and a value at the model's own default is left
    out of the address like any default; the edited fields are in it only while they are the model's source."""

    def derive(self, name: str, default: Any, basis: Hashable = None) -> None:
        """Before the widget of ``name``: the model's ``default`` replaces no value yet (a fresh view, a reset) and
        the student's value once ``basis`` changes (another preset: its own fields; by default the default)."""
        key, marker = self.key(name), f"_derived.{self.key(name)}"
        basis = default if basis is None else basis
        before = st.session_state.get(marker)
        if st.session_state.get(key) is None or (before is not None and before[0] != basis):
            st.session_state[key] = default
        st.session_state[marker] = (basis, default)

    def open(self) -> list[Msg]:
        saved = st.session_state.get(VIEWS_KEY, {}).get(self.lab)
        if saved is not None and self.from_address():  # a link: its values, not the last model's
            for name in DERIVED:
                st.session_state.pop(f"_derived.{self.key(name)}", None)
        return super().open()

    def texts(self) -> dict[str, str]:
        out = super().texts()
        for name in DERIVED:
            derived = st.session_state.get(f"_derived.{self.key(name)}")
            if name in out and derived is not None and st.session_state.get(self.key(name)) == derived[1]:
                del out[name]
        if st.session_state.get(self.key("source")) != "fields":
            for name in FIELD_NAMES + ("derive_head",):
                out.pop(name, None)
        return out


def _count(name: str, default: int) -> Control:
    return Control(name, default, whole(1, _BIG))


VIEW = SizingView("sizing", [
    Control("source", "preset", one_of(SOURCES)),
    Control("preset", DEFAULT_PRESET, one_of(preset_names())),
    *(_field_control(spec) for spec in EDITABLE_FIELDS),
    Control("derive_head", True, flag, show_flag),
    Control("pooler", None, flag, _model_value(show_flag)),
    Control("mlm_head", False, flag, show_flag),
    Control("chart", "sunburst", one_of(("sunburst", "treemap"))),
    Control("compare", None, _listed(REAL_MODELS), _model_value(_show_list)),
    Control("share", True, flag, show_flag),
    Control("d_range", ScalingSettings.d_range, _d_range, _show_list),
    Control("layers", list(ScalingSettings.layers), _listed(SCALING_LAYER_OPTIONS, int), _show_list),
    Control("gpu", DEFAULT_GPU, one_of(GPUS)),
    _count("batch", 1),
    Control("seq_len", None, whole(1, _BIG), _model_value()),
    Control("kv_dtype", "bf16", one_of(KV_DTYPES)),
    _count("n_gpus", 8),
    Control("zero_stage", 0, one_of(ZERO_STAGES)),
    _count("micro_batch", 1),
    Control("train_seq_len", None, whole(1, _BIG), _model_value()),
    Control("recompute", "none", one_of(RECOMPUTE)),
    Control("tokens", CHINCHILLA, one_of(TOKEN_CHOICES)),
    Control("custom_billions", ComputeSettings.custom_billions, number(1e-9, MAX_CUSTOM_BILLIONS), lambda v: f"{v:g}"),
    _count("compute_gpus", ComputeSettings.n_gpus),
    Control("compute_gpu", ComputeSettings.gpu, one_of(GPUS)),
    Control("mfu", ComputeSettings.mfu, number(0.05, 1.0), lambda v: f"{v:g}"),
])
_KEY = VIEW.key


def preset_label(name: str, lg: str = "en") -> str:
    """A preset as the student reads it: real models by name, the app's teaching configs marked as such."""
    if name.startswith(TEACHING_PREFIX):
        return t(lg, "sizing.teaching_preset", name=name.removeprefix(TEACHING_PREFIX))
    return name


def _choose_preset() -> None:
    """A new preset brings its own fields (a link's fields come with their preset, in one address)."""
    for name in FIELD_NAMES:
        st.session_state[_KEY(name)] = None


def model_settings() -> ModelSettings:
    """Which model: a preset, its fields edited, or a config.json pasted or uploaded."""
    left, right = st.columns([3, 2])
    source = left.radio(tr("sizing.source_label"), SOURCES, horizontal=True, key=_KEY("source"),
                        format_func=lambda v, lg=lang(): t(lg, f"sizing.source.{v}"))
    # Labels in the language of the run that drew the widget (a test formats them after the run, outside it).
    preset = right.selectbox(tr("sizing.preset_label"), preset_names(), key=_KEY("preset"),
                             format_func=lambda v, lg=lang(): preset_label(v, lg), help=tr("sizing.preset_help"), on_change=_choose_preset)
    if source == "fields":
        fields, derive_head = _edited_fields(preset)
        return ModelSettings(source, preset, fields, derive_head)
    if source == "config":
        return ModelSettings(source, preset, config_text=_config_text(preset))
    return ModelSettings(source, preset)


def _edited_fields(preset: str) -> tuple[tuple[tuple[str, object], ...], bool]:
    base = preset_config(preset)
    st.caption(tr("sizing.fields_caption", preset=preset_label(preset, lang())))
    values: dict = {}
    cols = st.columns(6)
    for i, spec in enumerate(EDITABLE_FIELDS):
        key = _KEY(spec.name)
        label, help_ = tr(f"sizing.field.{spec.name}.label"), tr(f"sizing.field.{spec.name}.help")
        with cols[i % 6]:
            if spec.name == "n_kv_head":  # its choices are the divisors of the n_head typed just before
                n_head = values["n_head"]
                choices = kv_head_choices(n_head)
                fallback = kv_head_default(base, n_head) if choices else None
                VIEW.derive(spec.name, fallback, basis=(preset, n_head))  # MHA stays MHA as n_head moves
                VIEW.keep_valid(spec.name, lambda v: v in choices, fallback)
                values[spec.name] = st.selectbox(label, choices, key=key, help=help_, disabled=not choices,
                                                 format_func=lambda n, h=n_head: kv_head_label(h, n))
                continue
            VIEW.derive(spec.name, getattr(base, spec.name), basis=preset)
            if spec.kind in ("int", "int0"):
                values[spec.name] = st.number_input(label, step=1, key=key, help=help_)
            elif spec.kind == "choice":
                values[spec.name] = st.selectbox(label, spec.choices, key=key, help=help_,
                                                 format_func=lambda v, n=spec.name, lg=lang():
                                                 t(lg, f"sizing.choice.{n}.{v}"))
            else:
                values[spec.name] = st.checkbox(label, key=key, help=help_)
    derive_head = st.toggle(tr("sizing.derive_head"), key=_KEY("derive_head"))
    return tuple(values.items()), derive_head


def _config_text(preset: str) -> str | bytes:
    left, right = st.columns([3, 2])
    with left:
        text = st.text_area("config.json", example_config_json(preset), height=260, key=f"config_text_{preset}",
                            help=tr("sizing.config_help"))
    with right:
        upload = st.file_uploader(tr("sizing.upload_label"), type=["json"], key="config_file")
        st.caption(tr("sizing.config_caption"))
        st.caption(tr("sizing.config_not_in_link", preset=preset_label(preset, lang())))
    return upload.getvalue() if upload is not None else text


def counted_heads(preset: str, cfg: ModelConfig, place) -> tuple[bool, bool]:
    """(count BERT's pooler, count the MLM head): the heads only an encoder has, drawn in ``place``."""
    is_bert_like = cfg.arch == "encoder"
    VIEW.derive("pooler", preset_counts_pooler(preset) and is_bert_like, basis=(preset, is_bert_like))
    with place:
        pooler = st.checkbox(tr("sizing.pooler"), key=_KEY("pooler"), disabled=not is_bert_like,
                             help=tr("sizing.pooler_help"))
        mlm = st.checkbox(tr("sizing.mlm_head"), key=_KEY("mlm_head"), disabled=not is_bert_like,
                          help=tr("sizing.mlm_head_help"))
    return pooler and is_bert_like, mlm and is_bert_like


def chart_kind() -> str:
    return st.radio(tr("sizing.chart_kind"), ("sunburst", "treemap"), horizontal=True, key=_KEY("chart"),
                    format_func=lambda v, lg=lang(): t(lg, f"sizing.chart.{v}"))


def compare_choice(preset: str) -> tuple[str, ...]:
    VIEW.derive("compare", list(compare_defaults(preset)), basis=preset)
    return tuple(st.multiselect(tr("sizing.compare_label"), list(REAL_MODELS), key=_KEY("compare")))


def share_toggle() -> bool:
    return st.toggle(tr("sizing.share"), key=_KEY("share"), help=tr("sizing.share_help"))


def scaling_settings() -> ScalingSettings:
    c1, c2 = st.columns(2)
    # value= only tells Streamlit it is a range (it reads the browser's two ends as one value without it); the
    # state, set by VIEW, holds the value shown.
    d_range = c1.select_slider(tr("sizing.d_range"), options=list(SCALING_D_OPTIONS), key=_KEY("d_range"),
                               value=ScalingSettings.d_range)
    layers = c2.multiselect(tr("sizing.layers"), list(SCALING_LAYER_OPTIONS), key=_KEY("layers"))
    return ScalingSettings(tuple(d_range), tuple(layers))


def gpu_choice() -> str:
    return st.selectbox("GPU", list(GPUS), key=_KEY("gpu"))


def inference_settings(cfg: ModelConfig) -> InferenceSettings:
    c = st.columns(3)
    batch = c[0].number_input(tr("sizing.batch"), step=1, key=_KEY("batch"))
    VIEW.derive("seq_len", min(cfg.max_seq_len, INFERENCE_SEQ_DEFAULT))  # a new model's context, not the last one's
    seq = c[1].number_input(tr("sizing.inference_seq_len"), step=256, key=_KEY("seq_len"))
    kv_dtype = c[2].selectbox(tr("sizing.kv_dtype"), KV_DTYPES, key=_KEY("kv_dtype"))
    return InferenceSettings(batch, seq, kv_dtype)


def training_settings(cfg: ModelConfig) -> TrainingSettings:
    c = st.columns(5)
    n_gpus = c[0].number_input(tr("sizing.n_gpus"), step=1, key=_KEY("n_gpus"))
    stage = c[1].selectbox(tr("sizing.zero_stage"), ZERO_STAGES, key=_KEY("zero_stage"),
                           help=tr("sizing.zero_stage_help"))
    micro = c[2].number_input(tr("sizing.micro_batch"), step=1, key=_KEY("micro_batch"))
    VIEW.derive("train_seq_len", min(cfg.max_seq_len, TRAINING_SEQ_DEFAULT))
    seq = c[3].number_input(tr("sizing.train_seq_len"), step=256, key=_KEY("train_seq_len"))
    recompute = c[4].selectbox(tr("sizing.recompute"), RECOMPUTE, key=_KEY("recompute"),
                               format_func=lambda v, lg=lang(): t(lg, f"sizing.recompute_choice.{v}"))
    return TrainingSettings(n_gpus, stage, micro, seq, recompute)


def compute_settings(real: RealModel | None) -> ComputeSettings:
    """``real``: the published preset the model is, which alone offers its paper's token count."""
    c = st.columns(4)
    options = token_choices(real)
    VIEW.keep_valid("tokens", lambda v: v in options, CHINCHILLA)
    tokens = c[0].radio(tr("sizing.tokens"), options, key=_KEY("tokens"),
                        format_func=lambda v, lg=lang(): t(lg, f"sizing.tokens_choice.{v}",
                                                           k=CHINCHILLA_TOKENS_PER_PARAM))
    custom = c[0].number_input(tr("sizing.custom_billions"), step=50.0, key=_KEY("custom_billions"),
                               disabled=tokens != CUSTOM)
    n_gpus = c[1].number_input(tr("sizing.n_gpus"), step=64, key=_KEY("compute_gpus"))
    gpu = c[2].selectbox(tr("sizing.gpu_type"), list(GPUS), key=_KEY("compute_gpu"))
    mfu = c[3].slider(tr("sizing.mfu"), 0.05, 1.0, step=0.05, key=_KEY("mfu"), help=tr("sizing.mfu_help"))
    return ComputeSettings(tokens, custom, n_gpus, gpu, mfu)

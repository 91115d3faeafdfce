"""The model-sizing lab: exact parameter counts, memory and compute of a model the student picks, edits or pastes
as a config.json, computed from ``SizingSettings`` by ``run``. Arithmetic only: no model is ever built here. The
model is resolved first (``resolve_model``: the page draws its other controls from the resolved config), and there
is no fallback model (see ``Resolved``). Each panel below the headline (explorer.labs.sizing_panels) has settings of
its own and an outcome of its own: a batch of 0 is explained in its panel and leaves the rest of the lab as it was.
explorer.labs.sizing_tables writes the numbers as the page's formulas and tables.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ..checks import choice, whole_number
from ..config import (ACTIVATIONS, ARCHS, NORM_POSITIONS, NORMS, POSITIONALS, PRESETS, ModelConfig, attention_kind,
                      kv_head_choices)
from ..i18n import Msg, sentence_of
from ..models.hf_config import config_to_hf, import_hf_config, parse_config_json
from ..presets import REAL_MODELS, RealModel
from ..sizing import GPUS, ParamBreakdown, approx_params, count_params, gpu_memory_bytes, human_count
from .outcome import Outcome, run_lab
from .sizing_panels import (DEFAULT_GPU, ComputeSettings, InferenceMemory, InferenceSettings, ScalingCurve,
                            ScalingSettings, TrainingCompute, TrainingResult, TrainingSettings, inference_memory,
                            scaling_curves, training_compute, training_needs)
from .sizing_tables import comparison_rows

DEFAULT_PRESET = "GPT-2 small"
TEACHING_PREFIX = "teaching: "


def preset_names() -> list[str]:
    """Real models first (in the course's order), then the app's small teaching configs."""
    return list(REAL_MODELS) + [TEACHING_PREFIX + k for k in PRESETS]


def preset_config(name: str) -> ModelConfig:
    if name.startswith(TEACHING_PREFIX):
        return PRESETS[name.removeprefix(TEACHING_PREFIX)]
    if name not in REAL_MODELS:
        raise ValueError(Msg("checks.one_of", name=Msg("sizing.name.preset"), choices=", ".join(preset_names()),
                             got=repr(name)))
    return REAL_MODELS[name].cfg


def preset_counts_pooler(name: str) -> bool:
    return name in REAL_MODELS and REAL_MODELS[name].pooler


@dataclass(frozen=True)
class FieldSpec:
    """An editable ModelConfig field; its label and help are the catalog's sizing.field.<name>.label / .help."""

    name: str
    kind: str  # "int", "int0" (0 allowed), "choice", "bool"
    choices: tuple = ()

    @property
    def label(self) -> Msg:
        return Msg(f"sizing.field.{self.name}.label")

    @property
    def help(self) -> Msg:
        return Msg(f"sizing.field.{self.name}.help")


EDITABLE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("arch", "choice", ARCHS),
    FieldSpec("n_layer", "int"),
    FieldSpec("d_model", "int"),
    FieldSpec("n_head", "int"),
    FieldSpec("n_kv_head", "int"),
    FieldSpec("d_head", "int"),
    FieldSpec("d_ff", "int"),
    FieldSpec("vocab_size", "int"),
    FieldSpec("max_seq_len", "int"),
    FieldSpec("type_vocab_size", "int0"),
    FieldSpec("activation", "choice", ACTIVATIONS),
    FieldSpec("norm", "choice", NORMS),
    FieldSpec("norm_position", "choice", NORM_POSITIONS),
    FieldSpec("positional", "choice", POSITIONALS),
    FieldSpec("bias", "bool"),
    FieldSpec("qkv_bias", "bool"),
    FieldSpec("tie_embeddings", "bool"),
    FieldSpec("embed_norm", "bool"),
)


@dataclass(frozen=True)
class Resolved:
    """The config the page sizes and where it came from, or (cfg None) the sentence that says why there is none.

    There is no fallback model on purpose: a preset's totals shown under the student's own fields read as the
    totals of those fields."""

    cfg: ModelConfig | None
    label: str  # a preset's name, a Msg ('GPT-2 small (edited)') or 'config.json (<its _name_or_path>)'
    error: str | None = None  # a Msg
    notes: tuple[str, ...] = ()  # Msgs

    @property
    def real(self) -> RealModel | None:
        """The published model this config is, unchanged (None when edited, pasted or a teaching config)."""
        model = REAL_MODELS.get(self.label)
        return model if model is not None and model.cfg == self.cfg else None


MAX_NAME_CHARS = 80  # a config's _name_or_path goes into chart titles and table rows


def config_from_fields(values: dict[str, Any], base: ModelConfig, label: str = Msg("sizing.your_model")) -> Resolved:
    """A ModelConfig from the edited fields (the others taken from ``base``), or the library's sentence."""
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    fields.update(values)
    if fields.get("arch") == "encoder-decoder":
        fields["mask"] = "causal"
    elif fields.get("arch") == "encoder" and fields.get("mask") == "causal":
        fields["mask"] = "bidirectional"
    elif fields.get("arch") == "decoder" and fields.get("mask") == "bidirectional":
        fields["mask"] = "causal"
    try:
        return Resolved(ModelConfig(**fields), label)
    except (ValueError, TypeError) as err:
        return Resolved(None, label, error=sentence_of(err))


def config_from_text(text: str | bytes) -> Resolved:
    """A ModelConfig from pasted or uploaded config.json text, or the sentence that says what is wrong."""
    try:
        data = parse_config_json(text)
        imported = import_hf_config(data)
    except ValueError as err:
        return Resolved(None, "config.json", error=sentence_of(err))
    name = str(data.get("_name_or_path") or imported.model_type)
    if len(name) > MAX_NAME_CHARS:
        name = name[:MAX_NAME_CHARS - 1] + "…"
    return Resolved(imported.cfg, f"config.json ({name})", notes=imported.notes)


SOURCES = ("preset", "fields", "config")  # the page's labels: the catalog's sizing.source.<value>
PRESET_SOURCE, FIELDS_SOURCE, CONFIG_SOURCE = SOURCES
_EDITABLE_NAMES = frozenset(spec.name for spec in EDITABLE_FIELDS)


@dataclass(frozen=True)
class ModelSettings:
    """Which model is sized: a preset as published, the preset with some fields edited, or a config.json."""

    source: str = PRESET_SOURCE
    preset: str = DEFAULT_PRESET
    fields: tuple[tuple[str, Any], ...] = ()  # (name, value) of EDITABLE_FIELDS, read with FIELDS_SOURCE
    derive_head: bool = True  # a new d_model or n_head derives d_head = d_model / n_h, unless d_head was edited
    config_text: str | bytes = ""  # read with CONFIG_SOURCE: the pasted text, or an uploaded file's bytes

    def validate(self) -> None:
        """Raise ValueError with a sentence for the student when no model can be sized from these settings."""
        choice(Msg("sizing.name.source"), self.source, SOURCES)
        choice(Msg("sizing.name.preset"), self.preset, preset_names())
        unknown = [name for name, _ in self.fields if name not in _EDITABLE_NAMES]
        if unknown:
            raise ValueError(Msg("sizing.err.not_a_field", name=repr(unknown[0])))
        if not isinstance(self.config_text, (str, bytes)):
            raise ValueError(Msg("sizing.err.config_type", got=type(self.config_text).__name__))
        error = self.resolve().error
        if error:
            raise ValueError(error)

    def resolve(self) -> Resolved:
        """The config these settings select, named after the preset when it is the preset unchanged."""
        base = preset_config(self.preset)
        if self.source == FIELDS_SOURCE:
            values = dict(self.fields)
            edited = lambda name: values.get(name, getattr(base, name)) != getattr(base, name)  # noqa: E731
            if self.derive_head and (edited("d_model") or edited("n_head")) and not edited("d_head"):
                values["d_head"] = None  # ModelConfig derives it from the new d_model and n_head
            resolved = config_from_fields(values, base, Msg("sizing.edited_label", preset=self.preset))
        elif self.source == CONFIG_SOURCE:
            resolved = config_from_text(self.config_text)
        else:
            resolved = Resolved(base, self.preset)
        return dataclasses.replace(resolved, label=self.preset) if resolved.cfg == base else resolved


def resolve_model(model: ModelSettings) -> Outcome[ModelSettings, Resolved]:
    """The model to size, or the sentence that says why there is none (no fallback: see ``Resolved``)."""
    return run_lab(model, ModelSettings.resolve)


def kv_head_label(n_head: int, n_kv_head: int) -> str:
    """'8 · GQA': a choice of n_kv_head with the kind of attention it makes."""
    return f"{n_kv_head} · {attention_kind(n_head, n_kv_head)}"


def kv_head_default(base: ModelConfig, n_head: int) -> int:
    """The choice that keeps ``base``'s kind of attention: all heads for MHA, else the largest divisor of the new
    n_head not above the preset's n_kv_head (1 stays MQA, Llama-3's 8 stays 8 while it divides)."""
    choices = kv_head_choices(n_head)
    if not choices:
        whole_number("n_head", n_head, 1)
    if base.n_kv_head == base.n_head:
        return choices[0]
    return next(d for d in choices if d <= base.n_kv_head)


def example_config_json(name: str) -> str:
    """A config.json for a preset, to paste and edit (the preset's own fields, or the nearest HF family)."""
    if name in REAL_MODELS:
        return json.dumps(REAL_MODELS[name].hf, indent=2)
    hf = config_to_hf(preset_config(name))
    return json.dumps(hf or REAL_MODELS[DEFAULT_PRESET].hf, indent=2)


@dataclass(frozen=True)
class Published:
    """The figure the paper or model card gives for an unedited real preset, and why the exact count differs."""

    label: str  # as written there: "117M"
    source: str
    why: str  # a Msg
    error_percent: float  # how far the figure is from the exact count, in percent of it
    comparable: bool  # the exact count holds the same parts (the preset's pooler, no MLM head)


@dataclass(frozen=True)
class Summary:
    """The headline numbers: exact total, the 12·L·d² + V·d shortcut, and the published figure of a real preset."""

    total: int
    approx: int
    non_embedding: int
    per_layer: int
    n_layer: int
    published: Published | None  # None unless the model is a real preset, unedited

    @property
    def total_text(self) -> str:
        return f"{self.total:,}"

    @property
    def human(self) -> str:
        return human_count(self.total)

    @property
    def approx_error_percent(self) -> float:
        return 100 * (self.approx - self.total) / self.total


def summary(b: ParamBreakdown, real: RealModel | None, pooler: bool = False, mlm_head: bool = False) -> Summary:
    """The headline numbers of ``b``, counted with the given heads; ``real`` is the preset it is, unedited."""
    published = None
    if real is not None:
        published = Published(real.published_label, real.source, real.why, real.error_percent,
                              comparable=not mlm_head and pooler == real.pooler)
    return Summary(b.total, approx_params(b.cfg), b.non_embedding, b.per_layer, b.cfg.n_layer, published)


COMPARE_DEFAULTS = ("GPT-2 small", "BERT-base", "LLaMA-7B", "Qwen-1.8B")


def compare_defaults(preset: str) -> tuple[str, ...]:
    """The models compared with ``preset`` until the student picks others (the preset itself is already there)."""
    return tuple(name for name in COMPARE_DEFAULTS if name != preset)


@dataclass(frozen=True)
class SizingSettings:
    """Everything the student controls: the model, the heads it is counted with, and each panel's settings.

    How the charts are drawn (sunburst or treemap, shares or counts) is not here: it changes no number."""

    model: ModelSettings = ModelSettings()
    pooler: bool = False
    mlm_head: bool = False
    compare: tuple[str, ...] = compare_defaults(DEFAULT_PRESET)
    scaling: ScalingSettings = ScalingSettings()
    gpu: str = DEFAULT_GPU
    inference: InferenceSettings = InferenceSettings()
    training: TrainingSettings = TrainingSettings()
    compute: ComputeSettings = ComputeSettings()

    def validate(self) -> None:
        """The model and what every panel shares; each panel's own settings are checked in its panel, so a wrong
        batch is explained there and leaves the rest of the lab as it was."""
        self.model.validate()
        choice(Msg("sizing.name.pooler"), self.pooler, (False, True))
        choice(Msg("sizing.name.mlm_head"), self.mlm_head, (False, True))
        for name in self.compare:
            choice(Msg("sizing.name.compare"), name, REAL_MODELS)
        choice("GPU", self.gpu, GPUS)


@dataclass(frozen=True)
class SizingResult:
    model: Resolved
    breakdown: ParamBreakdown
    summary: Summary
    compared: tuple[tuple[str, ParamBreakdown], ...]  # this model first, then the presets chosen to compare
    comparison: tuple[dict, ...]  # a table row for each of ``compared``
    scaling: Outcome[ScalingSettings, tuple[ScalingCurve, ...]]
    gpu_bytes: float
    inference: InferenceMemory
    training: Outcome[TrainingSettings, TrainingResult]
    compute: Outcome[ComputeSettings, TrainingCompute]
    token_points: tuple[tuple[str, tuple[float, float]], ...]  # (real model, (parameters, training tokens))

    @property
    def highlight(self) -> str | None:
        """The model among ``token_points``, when it is one."""
        return self.model.label if self.model.label in dict(self.token_points) else None


def paper_token_points() -> tuple[tuple[str, tuple[float, float]], ...]:
    """(model, (parameters, training tokens)) for every real preset whose paper gives its training tokens."""
    return tuple((k, (m.total, m.train_tokens)) for k, m in REAL_MODELS.items() if m.train_tokens)


def run(settings: SizingSettings) -> Outcome[SizingSettings, SizingResult]:
    """Everything the lab shows for ``settings``, or (result None) the sentence that says why no model could be
    sized: there is no fallback model (see ``Resolved``)."""
    return run_lab(settings, _size)


def _size(s: SizingSettings) -> SizingResult:
    model = s.model.resolve()
    cfg = model.cfg
    b = count_params(cfg, pooler=s.pooler, mlm_head=s.mlm_head)
    compared = {model.label: b}
    for name in s.compare:  # a preset also chosen here shows as published, in this model's place
        compared[name] = REAL_MODELS[name].breakdown
    gpu_bytes = gpu_memory_bytes(s.gpu)
    return SizingResult(
        model, b, summary(b, model.real, s.pooler, s.mlm_head), tuple(compared.items()),
        tuple(comparison_rows(compared)), run_lab(s.scaling, lambda used: scaling_curves(cfg, used)), gpu_bytes,
        inference_memory(cfg, b.total, s.inference, gpu_bytes),
        run_lab(s.training, lambda used: training_needs(cfg, b.total, used, gpu_bytes)),
        training_compute(b.total, model.real, s.compute), paper_token_points(),
    )

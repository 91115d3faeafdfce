"""What the sizing lab page needs beyond the arithmetic: editable fields, the config a student's input resolves
to (with a sentence when it cannot), formulas with the numbers filled in, and table rows. No streamlit here."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..config import ACTIVATIONS, ARCHS, NORM_POSITIONS, NORMS, POSITIONALS, PRESETS, ModelConfig
from ..course_tables import INFO, MISLABELLED, OK, ROUNDED, WRONG, CourseTable
from ..models.hf_config import config_to_hf, import_hf_config, parse_config_json
from ..presets import REAL_MODELS
from ..sizing import GROUPS, ParamBreakdown, approx_params, human_count

DEFAULT_PRESET = "GPT-2 small"
TEACHING_PREFIX = "teaching: "


def preset_names() -> list[str]:
    """Real models first (in the course's order), then the app's small teaching configs."""
    return list(REAL_MODELS) + [TEACHING_PREFIX + k for k in PRESETS]


def preset_config(name: str) -> ModelConfig:
    if name.startswith(TEACHING_PREFIX):
        return PRESETS[name.removeprefix(TEACHING_PREFIX)]
    if name not in REAL_MODELS:
        raise ValueError(f"Unknown preset {name!r}.")
    return REAL_MODELS[name].cfg


def preset_counts_pooler(name: str) -> bool:
    return name in REAL_MODELS and REAL_MODELS[name].pooler


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # "int", "optional_int", "choice", "bool", "optional_bool"
    label: str
    help: str
    choices: tuple = ()


EDITABLE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("arch", "choice", "Architecture", "decoder = GPT / LLaMA, encoder = BERT, encoder-decoder = the "
              "original Transformer", ARCHS),
    FieldSpec("n_layer", "int", "Layers L", "Number of blocks (each stack of an encoder-decoder has L)."),
    FieldSpec("d_model", "int", "d_model (hidden_size)", "Width of every token vector."),
    FieldSpec("n_head", "int", "Heads n_h", "Query heads per attention layer."),
    FieldSpec("n_kv_head", "int", "K/V heads n_kv", "= n_h for MHA, fewer for GQA, 1 for MQA."),
    FieldSpec("d_head", "int", "d_head", "Width of one head; usually d_model / n_h."),
    FieldSpec("d_ff", "int", "d_ff (intermediate_size)", "Inner width of the FFN; 4·d_model in GPT and BERT."),
    FieldSpec("vocab_size", "int", "Vocabulary V", "Rows of the token embedding (and columns of the LM head)."),
    FieldSpec("max_seq_len", "int", "Context n_ctx", "Rows of a learned position table; free for RoPE / ALiBi."),
    FieldSpec("type_vocab_size", "int0", "Segment types", "BERT's token-type embeddings (2); 0 for none."),
    FieldSpec("activation", "choice", "FFN activation", "swiglu adds a third (gate) matrix.", ACTIVATIONS),
    FieldSpec("norm", "choice", "Norm", "LayerNorm learns a gain and a bias; RMSNorm only a gain.", NORMS),
    FieldSpec("norm_position", "choice", "Norm position", "pre-norm adds one final norm.", NORM_POSITIONS),
    FieldSpec("positional", "choice", "Positions", "Only learned positions are parameters.", POSITIONALS),
    FieldSpec("bias", "bool", "Biases", "A bias on every linear layer (GPT-2, BERT) or none (LLaMA)."),
    FieldSpec("qkv_bias", "bool", "Q/K/V bias", "Qwen keeps biases on Q, K and V only."),
    FieldSpec("tie_embeddings", "bool", "Tied LM head", "The output layer reuses the token embedding."),
    FieldSpec("embed_norm", "bool", "Embedding norm", "BERT normalises the summed embeddings."),
)


@dataclass(frozen=True)
class Resolved:
    """The config the page sizes and where it came from, or (cfg None) the sentence that says why there is none.

    There is no fallback model on purpose: a preset's totals shown under the student's own fields read as the
    totals of those fields."""

    cfg: ModelConfig | None
    label: str
    error: str | None = None
    notes: tuple[str, ...] = ()


MAX_NAME_CHARS = 80  # a config's _name_or_path goes into chart titles and table rows


def config_from_fields(values: dict[str, Any], base: ModelConfig, label: str = "your model") -> Resolved:
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
        return Resolved(None, label, error=str(err))


def config_from_text(text: str | bytes) -> Resolved:
    """A ModelConfig from pasted or uploaded config.json text, or the sentence that says what is wrong."""
    try:
        data = parse_config_json(text)
        imported = import_hf_config(data)
    except ValueError as err:
        return Resolved(None, "config.json", error=str(err))
    name = str(data.get("_name_or_path") or imported.model_type)
    if len(name) > MAX_NAME_CHARS:
        name = name[:MAX_NAME_CHARS - 1] + "…"
    return Resolved(imported.cfg, f"config.json ({name})", notes=imported.notes)


def kv_head_choices(n_head: int) -> list[int]:
    """The n_kv_head values n_head allows, largest first: n_head (MHA), its divisors (GQA), 1 (MQA)."""
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        return []
    small = [d for d in range(1, math.isqrt(n_head) + 1) if n_head % d == 0]  # a field may hold 10**12
    return sorted(set(small) | {n_head // d for d in small}, reverse=True)


def kv_head_label(n_head: int, n_kv_head: int) -> str:
    """'8 · GQA': a choice of n_kv_head with the kind of attention it makes."""
    kind = "MHA" if n_kv_head == n_head else "MQA" if n_kv_head == 1 else "GQA"
    return f"{n_kv_head} · {kind}"


def kv_head_default(base: ModelConfig, n_head: int) -> int:
    """The choice that keeps ``base``'s kind of attention: all heads for MHA, else the largest divisor of the new
    n_head not above the preset's n_kv_head (1 stays MQA, Llama-3's 8 stays 8 while it divides)."""
    choices = kv_head_choices(n_head)
    if not choices:
        raise ValueError(f"n_head must be a whole number of at least 1 (got {n_head!r}).")
    if base.n_kv_head == base.n_head:
        return choices[0]
    return next(d for d in choices if d <= base.n_kv_head)


def example_config_json(name: str) -> str:
    """A config.json for a preset, to paste and edit (the preset's own fields, or the nearest HF family)."""
    if name in REAL_MODELS:
        return json.dumps(REAL_MODELS[name].hf, indent=2)
    hf = config_to_hf(preset_config(name))
    return json.dumps(hf or REAL_MODELS[DEFAULT_PRESET].hf, indent=2)


# ---------------------------------------------------------------------------------------------------------------
# Formulas and tables
# ---------------------------------------------------------------------------------------------------------------

def plain_formula(latex: str) -> str:
    """'d\\cdot (n_h d_h) + n_{kv} d_h' -> 'd·(n_h·d_h) + n_kv·d_h' for a table cell."""
    s = latex.replace(r"\cdot ", "·").replace(r"\cdot", "·")
    s = re.sub(r"_\{([^}]*)\}", r"_\1", s)
    return s.replace("n_h d_h", "n_h·d_h").replace("n_kv d_h", "n_kv·d_h")


def breakdown_rows(b: ParamBreakdown) -> list[dict]:
    rows = []
    for r in b.rows():
        rows.append({"part": r["part"] if b.cfg.arch != "encoder-decoder" else f"{r['stack']}: {r['part']}",
                     "group": r["group"], "formula (one copy)": plain_formula(r["formula"]),
                     "per copy": r["per copy"], "copies": r["copies"], "total": r["total"],
                     "share %": round(r["share %"], 2)})
    return rows


def symbol_values(cfg: ModelConfig) -> str:
    """The symbols of the formulas with this config's numbers, as one line of markdown."""
    pairs = [("L", cfg.n_layer), ("d", cfg.d_model), ("n_h", cfg.n_head), ("n_kv", cfg.n_kv_head),
             ("d_h", cfg.d_head), ("d_ff", cfg.d_ff), ("V", cfg.vocab_size)]
    if cfg.positional == "learned":
        pairs.append(("n_ctx", cfg.max_seq_len))
    if cfg.type_vocab_size:
        pairs.append(("n_type", cfg.type_vocab_size))
    return " · ".join(f"**{k}** = {v:,}" for k, v in pairs)


def per_layer_latex(b: ParamBreakdown) -> tuple[str, str]:
    """(symbolic, numeric) LaTeX for one block: the sum of its parts' formulas, one line per group."""
    stack = "decoder" if b.cfg.arch == "encoder-decoder" else "model"
    parts = [p for p in b.parts if p.in_every_layer and p.stack == stack]
    lines: dict[str, dict[str, int]] = {}
    for p in parts:  # equal formulas (W_K and W_V, the norms) are written once with a factor
        group = lines.setdefault(p.group, {})
        group[p.formula] = group.get(p.formula, 0) + 1
    rendered = []
    for group, formulas in sorted(lines.items(), key=lambda kv: GROUPS.index(kv[0])):
        terms = []
        for formula, times in formulas.items():
            inner = f"({formula})" if "+" in formula and (times > 1 or len(formulas) > 1) else formula
            terms.append(inner if times == 1 else f"{times}\\cdot {inner}")
        rendered.append(" + ".join(terms) + rf"\quad\text{{({group})}}")
    symbolic = r"\begin{aligned} N_{\text{layer}} =\; & " + r" \\ + \; & ".join(rendered) + r" \end{aligned}"
    groups: dict[str, int] = {}
    for p in parts:
        groups[p.group] = groups.get(p.group, 0) + p.count
    ordered = sorted(groups.items(), key=lambda kv: GROUPS.index(kv[0]))
    numeric = r"N_{\text{layer}} = " + " + ".join(rf"\underbrace{{{_num(n)}}}_{{\text{{{g}}}}}" for g, n in ordered) \
        + f" = {_num(b.per_layer)}"
    return symbolic, numeric


def _num(n: int) -> str:
    return f"{n:,}".replace(",", "{,}")


def total_latex(b: ParamBreakdown) -> tuple[str, str]:
    """(symbolic, numeric) LaTeX for the whole model: once-only parts plus L times the block."""
    stacks = 2 if b.cfg.arch == "encoder-decoder" else 1
    once = [p for p in b.parts if not p.in_every_layer]
    sym_terms = [p.formula if "+" not in p.formula else f"({p.formula})" for p in once]
    layer_term = "L\\cdot N_{\\text{layer}}"
    if stacks == 2:
        enc = sum(p.count for p in b.parts if p.in_every_layer and p.stack == "encoder")
        layer_term = "L\\cdot (N_{\\text{enc layer}} + N_{\\text{layer}})"
        num_layer = f"{b.cfg.n_layer}\\cdot ({enc:,} + {b.per_layer:,})"
    else:
        num_layer = f"{b.cfg.n_layer}\\cdot {b.per_layer:,}"
    symbolic = "N = " + " + ".join(sym_terms + [layer_term])
    numeric = "N = " + " + ".join([f"{p.total:,}" for p in once] + [num_layer]) + f" = {b.total:,}"
    return symbolic, numeric.replace(",", "{,}")


def summary(b: ParamBreakdown, name: str | None) -> dict[str, Any]:
    """The headline numbers: exact total, the published figure (for a real preset) and the 12·L·d² shortcut."""
    out: dict[str, Any] = {"total": b.total, "total_text": f"{b.total:,}", "human": human_count(b.total),
                           "approx": approx_params(b.cfg), "non_embedding": b.non_embedding}
    if name in REAL_MODELS and REAL_MODELS[name].cfg == b.cfg:
        m = REAL_MODELS[name]
        out.update(published=m.published_label, published_source=m.source, why=m.why,
                   published_error=f"{m.error_percent:+.1f}%")
    return out


def comparison_rows(breakdowns: dict[str, ParamBreakdown]) -> list[dict]:
    rows = []
    for name, b in breakdowns.items():
        cfg = b.cfg
        real = REAL_MODELS.get(name)
        rows.append({
            "model": name, "exact": b.total, "≈": human_count(b.total),
            "published": real.published_label if real is not None and real.cfg == cfg else "",
            "L": cfg.n_layer, "d_model": cfg.d_model, "heads (q/kv)": f"{cfg.n_head}/{cfg.n_kv_head}",
            "d_ff": cfg.d_ff, "V": cfg.vocab_size,
            "embeddings %": round(100 * b.group_total("embeddings") / b.total, 1),
            "attention %": round(100 * b.attention / b.total, 1), "FFN %": round(100 * b.ffn / b.total, 1),
            "head %": round(100 * b.group_total("head") / b.total, 1),
        })
    return rows


# Plain symbols rather than emoji: projectors and headless browsers often lack an emoji font.
VERDICT_MARK = {OK: "✓", ROUNDED: "≈", INFO: "", WRONG: "✗", MISLABELLED: "⚑"}


def course_table_rows(table: CourseTable) -> tuple[list[dict], list[dict], list[dict]]:
    """(the notes' table as printed, the same table marked cell by cell, one explanation per flagged cell)."""
    printed = [dict(zip(table.columns, row)) for row in table.notes_rows]
    marked, explained = [], []
    for row in table.checks:
        line = {table.columns[0]: row.notes_model}
        for cell in row.cells:
            mark = VERDICT_MARK[cell.verdict]
            if cell.verdict == INFO:
                line[cell.column] = f"{cell.notes_value}"
            elif cell.verdict == OK:
                line[cell.column] = f"{mark} {cell.notes_value}"
            elif cell.verdict == MISLABELLED:
                line[cell.column] = f"{mark} {cell.notes_value} is {cell.exact} (wrong header)"
            else:
                line[cell.column] = f"{mark} {cell.notes_value} → {cell.exact}"
            if cell.verdict != OK:
                explained.append({"model": row.notes_model, "column": cell.column, "notes": cell.notes_value,
                                  "exact": cell.exact, "verdict": cell.verdict, "why": cell.why})
        line["exact count"] = f"{REAL_MODELS[row.preset].total:,}"
        line["preset"] = row.preset
        marked.append(line)
    return printed, marked, explained

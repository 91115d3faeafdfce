"""The sizing lab's numbers as the page prints them: the parameter formulas as LaTeX (one block, then the whole
model) and as plain table cells, the formulas' symbols with a config's values, the breakdown and comparison tables,
and the course notes' table marked cell by cell against the exact counts."""
from __future__ import annotations

import re
from collections.abc import Mapping

from ..config import ModelConfig
from ..i18n import Msg
from ..course_tables import INFO, MISLABELLED, OK, ROUNDED, WRONG, CourseTable
from ..presets import REAL_MODELS
from ..sizing import GROUPS, ParamBreakdown, human_count


def plain_formula(latex: str) -> str:
    """'d\\cdot (n_h d_h) + n_{kv} d_h' -> 'd·(n_h·d_h) + n_kv·d_h' for a table cell."""
    s = latex.replace(r"\cdot ", "·").replace(r"\cdot", "·")
    s = re.sub(r"_\{([^}]*)\}", r"_\1", s)
    return s.replace("n_h d_h", "n_h·d_h").replace("n_kv d_h", "n_kv·d_h")


def breakdown_rows(b: ParamBreakdown) -> list[dict]:
    """One row per part; ``part``, ``stack`` and ``group`` are explorer.sizing's names, which the page says in the
    student's language (catalog sizing.part.*, sizing.stack.*, sizing.group.*), as it does the column names."""
    rows = []
    for r in b.rows():
        rows.append({"part": r["part"], "stack": r["stack"] if b.cfg.arch == "encoder-decoder" else "",
                     "group": r["group"], "formula": plain_formula(r["formula"]),
                     "per_copy": r["per copy"], "copies": r["copies"], "total": r["total"],
                     "share": round(r["share %"], 2)})
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


def per_layer_latex(b: ParamBreakdown, group_names: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(symbolic, numeric) LaTeX for one block: the sum of its parts' formulas, one line per group, each group
    named by ``group_names`` (the page's words for explorer.sizing.GROUPS; the ids themselves by default)."""
    named = (lambda g: group_names.get(g, g)) if group_names else (lambda g: g)  # noqa: E731
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
        rendered.append(" + ".join(terms) + rf"\quad\text{{({named(group)})}}")
    symbolic = r"\begin{aligned} N_{\text{layer}} =\; & " + r" \\ + \; & ".join(rendered) + r" \end{aligned}"
    groups: dict[str, int] = {}
    for p in parts:
        groups[p.group] = groups.get(p.group, 0) + p.count
    ordered = sorted(groups.items(), key=lambda kv: GROUPS.index(kv[0]))
    numeric = r"N_{\text{layer}} = " + " + ".join(rf"\underbrace{{{_num(n)}}}_{{\text{{{named(g)}}}}}" for g, n in ordered) \
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

def comparison_rows(breakdowns: dict[str, ParamBreakdown]) -> list[dict]:
    rows = []
    for name, b in breakdowns.items():
        cfg = b.cfg
        real = REAL_MODELS.get(name)
        rows.append({  # keys are column ids: the page names them from the catalog (sizing.compare_col.*)
            "model": name, "exact": b.total, "approx": human_count(b.total),
            "published": real.published_label if real is not None and real.cfg == cfg else "",
            "n_layer": cfg.n_layer, "d_model": cfg.d_model, "heads": f"{cfg.n_head}/{cfg.n_kv_head}",
            "d_ff": cfg.d_ff, "vocab_size": cfg.vocab_size,
            "embeddings": round(100 * b.group_total("embeddings") / b.total, 1),
            "attention": round(100 * b.attention / b.total, 1), "ffn": round(100 * b.ffn / b.total, 1),
            "head": round(100 * b.group_total("head") / b.total, 1),
        })
    return rows


# Plain symbols rather than emoji: projectors and headless browsers often lack an emoji font.
VERDICT_MARK = {OK: "✓", ROUNDED: "≈", INFO: "", WRONG: "✗", MISLABELLED: "⚑"}


def course_table_rows(table: CourseTable) -> tuple[list[dict], list[dict], list[dict]]:
    """(the notes' table as printed, the same table marked cell by cell, one explanation per flagged cell). The
    notes' own headers stay as printed; a marked cell with words in it is a Msg, and the two added columns are
    ``exact_count`` and ``preset`` (the page names them)."""
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
                line[cell.column] = Msg("sizing.course.mislabelled_cell", mark=mark, notes=cell.notes_value,
                                        exact=cell.exact)
            else:
                line[cell.column] = f"{mark} {cell.notes_value} → {cell.exact}"
            if cell.verdict != OK:
                explained.append({"model": row.notes_model, "column": cell.column, "notes": cell.notes_value,
                                  "exact": cell.exact, "verdict": cell.verdict, "why": cell.why})
        line["exact_count"] = f"{REAL_MODELS[row.preset].total:,}"
        line["preset"] = row.preset
        marked.append(line)
    return printed, marked, explained

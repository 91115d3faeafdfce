"""The course notes' model-size tables, cell by cell, checked against the exact configurations.

The rows are transcribed from ``seed/llm-notes.md`` (section "GPT 系列模型的发展" and the BERT / Qwen / LLaMA / GPT-3
table of the pre-training section). Every check is computed from the presets, so a wrong preset would show up here
too; the explanations say what the column really holds and why the number differs. ``NOTES_ERRORS`` quotes the
other sentences of the notes that are wrong, each with its correction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .i18n import Msg
from .presets import REAL_MODELS, RealModel, bert_with_pretraining_heads, norm_placements
from .sizing import approx_params, human_count

# Verdict ids; the page names them from the catalog (sizing.verdict.<id>).
OK, ROUNDED, WRONG, INFO = "ok", "rounded", "wrong", "info"
MISLABELLED = "mislabelled"


@dataclass(frozen=True)
class CellCheck:
    column: str  # the notes' column header
    notes_value: str
    exact: str
    verdict: str  # OK, ROUNDED, WRONG, MISLABELLED or INFO
    why: str  # a Msg


@dataclass(frozen=True)
class RowCheck:
    notes_model: str
    preset: str  # key of REAL_MODELS
    cells: tuple[CellCheck, ...]


@dataclass(frozen=True)
class CourseTable:
    title: str  # a Msg
    section: str  # the notes' heading, verbatim
    columns: tuple[str, ...]
    notes_rows: tuple[tuple[str, ...], ...]  # exactly as printed in the notes
    checks: tuple[RowCheck, ...]
    remarks: tuple[str, ...]  # Msgs: mistakes in the text around the table that change a count


# What each dimension column claims to hold: a ModelConfig field and how to name it.
_FIELD_NAMES = {name: Msg(f"sizing.course.field.{name}")
                for name in ("n_layer", "d_model", "n_head", "d_head", "d_ff", "qk_width")}


def _field(cfg, name: str) -> int:
    # The notes' MultiHeadSelfAttention takes dim_k = "所有头的总查询/键维度", the width of all heads together.
    return cfg.n_head * cfg.d_head if name == "qk_width" else getattr(cfg, name)


def _dim_check(column: str, claimed_field: str, notes_value: str, model: RealModel) -> CellCheck:
    cfg = model.cfg
    value = int(notes_value)
    exact = _field(cfg, claimed_field)
    if value == exact:
        why = Msg("sizing.course.dim_ok", field=_FIELD_NAMES[claimed_field], exact=exact)
        if claimed_field == "qk_width":
            why = Msg("sizing.course.qk_width_ok", field=_FIELD_NAMES[claimed_field], n_head=cfg.n_head,
                      d_head=cfg.d_head, exact=exact)
        return CellCheck(column, notes_value, str(exact), OK, why)
    holds = [f for f in ("d_model", "d_ff", "n_layer", "n_head", "d_head") if getattr(cfg, f) == value]
    if holds:
        what = _FIELD_NAMES[holds[0]]
        extra = f" = {cfg.d_ff // cfg.d_model} x d_model" if holds[0] == "d_ff" and cfg.d_ff % cfg.d_model == 0 else ""
        why = Msg("sizing.course.dim_other", field=_FIELD_NAMES[claimed_field], exact=exact, value=value, what=what,
                  extra=extra)
    else:
        why = Msg("sizing.course.dim_none", field=_FIELD_NAMES[claimed_field], exact=exact, value=value,
                  model=model.key)
    return CellCheck(column, notes_value, str(exact), WRONG, why)


_UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def parse_size(text: str) -> tuple[float, int]:
    """'0.12B' -> (1.2e8, 2 decimals shown). The number of decimals is the precision the notes claim."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.([0-9]+))?)\s*([KMBT])\s*", text)
    if not m:
        raise ValueError(Msg("sizing.course.bad_size", text=repr(text)))
    return float(m.group(1)) * _UNITS[m.group(3)], len(m.group(2) or "")


def _count_check(column: str, notes_value: str, model: RealModel) -> CellCheck:
    claimed, decimals = parse_size(notes_value)
    unit = _UNITS[notes_value.strip()[-1]]
    exact = model.total
    shown = round(exact / unit, decimals)
    exact_text = f"{exact:,} ({human_count(exact)})"
    if abs(shown - claimed / unit) < 1e-9:
        return CellCheck(column, notes_value, exact_text, OK,
                         Msg("sizing.course.count_ok", exact=human_count(exact), notes=notes_value, why=model.why))
    off = 100 * (claimed - exact) / exact
    suffix = notes_value.strip()[-1]
    return CellCheck(column, notes_value, exact_text, ROUNDED,
                     Msg("sizing.course.count_rounded", exact=f"{exact / unit:.{decimals + 2}f}{suffix}",
                         shown=f"{shown:.{decimals}f}{suffix}", notes=notes_value, off=off, why=model.why))


def _info(column: str, notes_value: str, why: str) -> CellCheck:
    return CellCheck(column, notes_value, "", INFO, why)


def _header_check(column: str, notes_value: str, model: RealModel) -> CellCheck:
    """A column whose numbers are right but whose header names another dimension: GPT's 'Hidden_size' holds d_ff."""
    cfg = model.cfg
    value = int(notes_value)
    if value != cfg.d_ff:
        return _dim_check(column, "d_model", notes_value, model)
    return CellCheck(column, notes_value, "d_ff", MISLABELLED,
                     Msg("sizing.course.header_wrong", value=value, ratio=cfg.d_ff // cfg.d_model,
                         d_model=cfg.d_model))


def _gpt_table() -> CourseTable:
    columns = ("模型", "Decoder Layer", "Hidden_size", "注意力头数", "注意力维度", "总参数量", "预训练语料")
    rows = (("GPT-1", "12", "3072", "12", "768", "0.12B", "5GB"),
            ("GPT-2", "48", "6400", "25", "1600", "1.5B", "40GB"),
            ("GPT-3", "96", "49152", "96", "12288", "175B", "570GB"))
    presets = {"GPT-1": "GPT-1", "GPT-2": "GPT-2 XL", "GPT-3": "GPT-3 175B"}
    corpus = {"GPT-1": Msg("sizing.course.corpus.gpt1"), "GPT-2": Msg("sizing.course.corpus.gpt2"),
              "GPT-3": Msg("sizing.course.corpus.gpt3")}
    checks = []
    for row in rows:
        m = REAL_MODELS[presets[row[0]]]
        cells = (_dim_check(columns[1], "n_layer", row[1], m), _header_check(columns[2], row[2], m),
                 _dim_check(columns[3], "n_head", row[3], m), _dim_check(columns[4], "qk_width", row[4], m),
                 _count_check(columns[5], row[5], m), _info(columns[6], row[6], corpus[row[0]]))
        checks.append(RowCheck(row[0], m.key, cells))
    gpt1, gpt2, gpt3 = (REAL_MODELS[k] for k in ("GPT-1", "GPT-2 XL", "GPT-3 175B"))
    remarks = (
        Msg("sizing.course.remark.hidden_size", d1=gpt1.cfg.d_model, d2=gpt2.cfg.d_model, d3=gpt3.cfg.d_model,
            h1=gpt1.cfg.d_head, h2=gpt2.cfg.d_head, h3=gpt3.cfg.d_head),
        Msg("sizing.course.remark.learned_positions", p1=gpt1.breakdown.position_embedding,
            p2=gpt2.breakdown.position_embedding, p3=gpt3.breakdown.position_embedding),
        Msg("sizing.course.remark.pre_norm"),
        Msg("sizing.course.remark.bert_positions"),
    )
    return CourseTable(Msg("sizing.course.gpt_title"), "GPT 系列模型的发展", columns, rows, tuple(checks), remarks)


def _bert_llama_table() -> CourseTable:
    columns = ("模型", "hidden_layers（隐藏层数）", "hidden_size（隐藏层维度）", "heads（注意力头数）", "整体参数量",
               "预训练数据量")
    rows = (("BERT-base", "12", "768", "12", "0.1B", "3B"),
            ("BERT-large", "24", "1024", "16", "0.3B", "3B"),
            ("Qwen-1.8B", "24", "2048", "16", "1.8B", "2.2T"),
            ("LLaMA-7B", "32", "4096", "32", "7B", "1T"),
            ("GPT-3", "96", "12288", "96", "175B", "300B"))
    presets = {"GPT-3": "GPT-3 175B"}
    data = {"BERT-base": Msg("sizing.course.data.bert_base"), "BERT-large": Msg("sizing.course.data.bert_large"),
            "Qwen-1.8B": Msg("sizing.course.data.qwen"), "LLaMA-7B": Msg("sizing.course.data.llama"),
            "GPT-3": Msg("sizing.course.data.gpt3")}
    checks = []
    for row in rows:
        m = REAL_MODELS[presets.get(row[0], row[0])]
        cells = (_dim_check(columns[1], "n_layer", row[1], m), _dim_check(columns[2], "d_model", row[2], m),
                 _dim_check(columns[3], "n_head", row[3], m), _count_check(columns[4], row[4], m),
                 _info(columns[5], row[5], data[row[0]]))
        checks.append(RowCheck(row[0], m.key, cells))
    heads = {k: human_count(bert_with_pretraining_heads(REAL_MODELS[k].hf) - REAL_MODELS[k].total)
             for k in ("BERT-base", "BERT-large")}
    remarks = tuple(_missing_columns_remark(REAL_MODELS[k]) for k in ("Qwen-1.8B", "LLaMA-7B")) + (
        Msg("sizing.course.remark.bert_heads", base=heads["BERT-base"], large=heads["BERT-large"]),
    )
    return CourseTable(Msg("sizing.course.bert_title"), "预训练 (LLM 的参数规模)", columns, rows, tuple(checks),
                       remarks)


def _missing_columns_remark(m: RealModel) -> str:
    cfg, b = m.cfg, m.breakdown
    guess = approx_params(cfg)
    return Msg("sizing.course.remark.missing_columns", model=m.key, guess=human_count(guess),
               total=human_count(b.total), lm_head=human_count(b.lm_head), d_ff=cfg.d_ff, vocab=cfg.vocab_size)


COURSE_TABLES: tuple[CourseTable, ...] = (_gpt_table(), _bert_llama_table())


# ---- the other mistakes of the notes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class NotesError:
    section: str  # the heading of the notes it sits under
    quote: str  # verbatim from the notes
    correction: str  # a Msg
    source: str


_GPT1_RELEASE, _CHATGPT_RELEASE = (2018, 6), (2022, 11)  # (year, month): GPT-1 blog post, ChatGPT launch


def _years_between(start: tuple[int, int], end: tuple[int, int]) -> float:
    return (end[0] - start[0]) + (end[1] - start[1]) / 12


def _notes_errors() -> tuple[NotesError, ...]:
    groups = norm_placements()
    post, pre_ln, pre_rms = groups[("post", "layernorm")], groups[("pre", "layernorm")], groups[("pre", "rmsnorm")]
    years = _years_between(_GPT1_RELEASE, _CHATGPT_RELEASE)
    return (
        NotesError("预训练任务——CLM", "因果语言模型，Casual Language Model", Msg("sizing.notes.causal"),
                   "Radford et al. 2018, Section 3.1"),
        NotesError("预训练任务——CLM", "N-gram 语言模型是基于前 N 个 token 来预测下一个 token", Msg("sizing.notes.ngram"),
                   "Jurafsky & Martin, Speech and Language Processing, Chapter 3"),
        NotesError("GPT", "GPT，即 Generative Pre-Training Language Model", Msg("sizing.notes.gpt_name"),
                   "Radford et al. 2018, 'Improving Language Understanding by Generative Pre-Training'"),
        NotesError("GPT 系列模型的发展", "OpenAI 通过数十年的努力证明了其思路的正确性",
                   Msg("sizing.notes.years", gpt1=_GPT1_RELEASE[0], chatgpt=_CHATGPT_RELEASE[0], years=round(years)),
                   "OpenAI, June 2018 (GPT-1) and November 2022 (ChatGPT)"),
        NotesError("预训练", "在 64块 TPU 上训练了 4天", Msg("sizing.notes.tpus"), "Devlin et al. 2019, Appendix A.2"),
        NotesError("Layer Normalization", "LayerNorm 通常放在残差连接之后",
                   Msg("sizing.notes.post_ln", post=", ".join(post), pre_ln=", ".join(pre_ln),
                       pre_rms=", ".join(pre_rms)),
                   "Radford et al. 2019, Section 2.3; Xiong et al. 2020; Zhang & Sennrich 2019 (RMSNorm)"),
    )


NOTES_ERRORS: tuple[NotesError, ...] = _notes_errors()

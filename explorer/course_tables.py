"""The course notes' model-size tables, cell by cell, checked against the exact configurations.

The rows are transcribed from ``seed/llm-notes.md`` (section "GPT 系列模型的发展" and the BERT / Qwen / LLaMA / GPT-3
table of the pre-training section). Every check is computed from the presets, so a wrong preset would show up here
too; the explanations say what the column really holds and why the number differs. ``NOTES_ERRORS`` quotes the
other sentences of the notes that are wrong, each with its correction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .presets import REAL_MODELS, RealModel, bert_with_pretraining_heads, norm_placements
from .sizing import approx_params, human_count

OK, ROUNDED, WRONG, INFO = "correct", "loosely rounded", "mistake", "not a size"
MISLABELLED = "right number, wrong header"


@dataclass(frozen=True)
class CellCheck:
    column: str  # the notes' column header
    notes_value: str
    exact: str
    verdict: str  # OK, ROUNDED, WRONG, MISLABELLED or INFO
    why: str


@dataclass(frozen=True)
class RowCheck:
    notes_model: str
    preset: str  # key of REAL_MODELS
    cells: tuple[CellCheck, ...]


@dataclass(frozen=True)
class CourseTable:
    title: str
    section: str
    columns: tuple[str, ...]
    notes_rows: tuple[tuple[str, ...], ...]  # exactly as printed in the notes
    checks: tuple[RowCheck, ...]
    remarks: tuple[str, ...]  # mistakes in the text around the table that change a count


# What each dimension column claims to hold: a ModelConfig field and how to name it.
_FIELD_NAMES = {"n_layer": "the number of layers", "d_model": "d_model (the hidden size)",
                "n_head": "the number of heads", "d_head": "d_head (one head's width)",
                "d_ff": "d_ff (the FFN's inner width)",
                "qk_width": "the total query/key width n_h·d_h (the notes' dim_k)"}


def _field(cfg, name: str) -> int:
    # The notes' MultiHeadSelfAttention takes dim_k = "所有头的总查询/键维度", the width of all heads together.
    return cfg.n_head * cfg.d_head if name == "qk_width" else getattr(cfg, name)


def _dim_check(column: str, claimed_field: str, notes_value: str, model: RealModel) -> CellCheck:
    cfg = model.cfg
    value = int(notes_value)
    exact = _field(cfg, claimed_field)
    if value == exact:
        why = f"{_FIELD_NAMES[claimed_field]} = {exact}."
        if claimed_field == "qk_width":
            why = (f"{_FIELD_NAMES[claimed_field]} = {cfg.n_head} x {cfg.d_head} = {exact}, which equals d_model "
                   f"here. One head alone is d_head = {cfg.d_head} wide.")
        return CellCheck(column, notes_value, str(exact), OK, why)
    holds = [f for f in ("d_model", "d_ff", "n_layer", "n_head", "d_head") if getattr(cfg, f) == value]
    if holds:
        what = _FIELD_NAMES[holds[0]]
        extra = f" = {cfg.d_ff // cfg.d_model} x d_model" if holds[0] == "d_ff" and cfg.d_ff % cfg.d_model == 0 else ""
        why = (f"The column is labelled as {_FIELD_NAMES[claimed_field]}, which is {exact}; the number {value} is "
               f"{what}{extra}.")
    else:
        why = f"{_FIELD_NAMES[claimed_field]} is {exact}; {value} matches no dimension of {model.key}."
    return CellCheck(column, notes_value, str(exact), WRONG, why)


_UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def parse_size(text: str) -> tuple[float, int]:
    """'0.12B' -> (1.2e8, 2 decimals shown). The number of decimals is the precision the notes claim."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.([0-9]+))?)\s*([KMBT])\s*", text)
    if not m:
        raise ValueError(f"Cannot read {text!r} as a size like 0.12B or 340M.")
    return float(m.group(1)) * _UNITS[m.group(3)], len(m.group(2) or "")


def _count_check(column: str, notes_value: str, model: RealModel) -> CellCheck:
    claimed, decimals = parse_size(notes_value)
    unit = _UNITS[notes_value.strip()[-1]]
    exact = model.total
    shown = round(exact / unit, decimals)
    exact_text = f"{exact:,} ({human_count(exact)})"
    if abs(shown - claimed / unit) < 1e-9:
        return CellCheck(column, notes_value, exact_text, OK,
                         f"{human_count(exact)} rounds to {notes_value}. {model.why}")
    off = 100 * (claimed - exact) / exact
    return CellCheck(column, notes_value, exact_text, ROUNDED,
                     f"{exact / unit:.{decimals + 2}f}{notes_value.strip()[-1]} rounds to "
                     f"{shown:.{decimals}f}{notes_value.strip()[-1]}, not {notes_value} ({off:+.1f}%). {model.why}")


def _info(column: str, notes_value: str, why: str) -> CellCheck:
    return CellCheck(column, notes_value, "", INFO, why)


def _header_check(column: str, notes_value: str, model: RealModel) -> CellCheck:
    """A column whose numbers are right but whose header names another dimension: GPT's 'Hidden_size' holds d_ff."""
    cfg = model.cfg
    value = int(notes_value)
    if value != cfg.d_ff:
        return _dim_check(column, "d_model", notes_value, model)
    return CellCheck(column, notes_value, "d_ff", MISLABELLED,
                     f"The number is right, the header is not: {value} is d_ff, the FFN's inner width "
                     f"({cfg.d_ff // cfg.d_model} x d_model), while hidden_size means d_model = {cfg.d_model}.")


def _gpt_table() -> CourseTable:
    columns = ("模型", "Decoder Layer", "Hidden_size", "注意力头数", "注意力维度", "总参数量", "预训练语料")
    rows = (("GPT-1", "12", "3072", "12", "768", "0.12B", "5GB"),
            ("GPT-2", "48", "6400", "25", "1600", "1.5B", "40GB"),
            ("GPT-3", "96", "49152", "96", "12288", "175B", "570GB"))
    presets = {"GPT-1": "GPT-1", "GPT-2": "GPT-2 XL", "GPT-3": "GPT-3 175B"}
    corpus = {"GPT-1": "BooksCorpus (about 7,000 books); not a model size, so not checked here.",
              "GPT-2": "WebText, 40GB of text; not a model size.",
              "GPT-3": "570GB is the filtered Common Crawl alone; GPT-3 trained on 300B tokens drawn from a mix "
                       "of five corpora (Brown et al. 2020, Table 2.2)."}
    checks = []
    for row in rows:
        m = REAL_MODELS[presets[row[0]]]
        cells = (_dim_check(columns[1], "n_layer", row[1], m), _header_check(columns[2], row[2], m),
                 _dim_check(columns[3], "n_head", row[3], m), _dim_check(columns[4], "qk_width", row[4], m),
                 _count_check(columns[5], row[5], m), _info(columns[6], row[6], corpus[row[0]]))
        checks.append(RowCheck(row[0], m.key, cells))
    gpt1, gpt2, gpt3 = (REAL_MODELS[k] for k in ("GPT-1", "GPT-2 XL", "GPT-3 175B"))
    remarks = (
        "The Hidden_size header is wrong, not its numbers: they are d_ff, the FFN's inner width (4 x d_model). "
        "hidden_size (config.json's name for d_model) is the 注意力维度 column: "
        f"{gpt1.cfg.d_model}, {gpt2.cfg.d_model} and {gpt3.cfg.d_model}. That column is right as the notes' "
        "MultiHeadSelfAttention defines it (dim_k, the query/key width of all heads together); one head is "
        f"d_head = {gpt1.cfg.d_head}, {gpt2.cfg.d_head} and {gpt3.cfg.d_head} wide.",
        "The text says GPT keeps the Transformer's sinusoidal position encoding. GPT-1 already used learned "
        "position embeddings (Radford et al. 2018, Section 4.1), which are parameters: "
        f"{gpt1.breakdown.position_embedding:,} in GPT-1, {gpt2.breakdown.position_embedding:,} in GPT-2 XL and "
        f"{gpt3.breakdown.position_embedding:,} in GPT-3.",
        "The text says GPT moved LayerNorm in front of attention. That was GPT-2 (Radford et al. 2019, Section "
        "2.3), which also added a final LayerNorm; GPT-1 is post-norm like the original Transformer.",
        "The text says BERT uses a trainable fully-connected layer for positions: it is a learned embedding table "
        "(one row per position, 512 x d_model), looked up, not multiplied.",
    )
    return CourseTable("GPT-1 to GPT-3", "GPT 系列模型的发展", columns, rows, tuple(checks), remarks)


def _bert_llama_table() -> CourseTable:
    columns = ("模型", "hidden_layers（隐藏层数）", "hidden_size（隐藏层维度）", "heads（注意力头数）", "整体参数量",
               "预训练数据量")
    rows = (("BERT-base", "12", "768", "12", "0.1B", "3B"),
            ("BERT-large", "24", "1024", "16", "0.3B", "3B"),
            ("Qwen-1.8B", "24", "2048", "16", "1.8B", "2.2T"),
            ("LLaMA-7B", "32", "4096", "32", "7B", "1T"),
            ("GPT-3", "96", "12288", "96", "175B", "300B"))
    presets = {"GPT-3": "GPT-3 175B"}
    data = {"BERT-base": "3.3B words (BooksCorpus 0.8B + English Wikipedia 2.5B): words, not tokens as the text "
                         "says.",
            "BERT-large": "Same corpus as BERT-base: 3.3B words.",
            "Qwen-1.8B": "2.2T tokens (Qwen Technical Report); not a model size.",
            "LLaMA-7B": "1.0T tokens (Touvron et al. 2023a); the 33B and 65B models saw 1.4T.",
            "GPT-3": "300B tokens (Brown et al. 2020, Table 2.2), drawn from the 570GB of filtered Common Crawl "
                     "and four other corpora."}
    checks = []
    for row in rows:
        m = REAL_MODELS[presets.get(row[0], row[0])]
        cells = (_dim_check(columns[1], "n_layer", row[1], m), _dim_check(columns[2], "d_model", row[2], m),
                 _dim_check(columns[3], "n_head", row[3], m), _count_check(columns[4], row[4], m),
                 _info(columns[5], row[5], data[row[0]]))
        checks.append(RowCheck(row[0], m.key, cells))
    remarks = tuple(_missing_columns_remark(REAL_MODELS[k]) for k in ("Qwen-1.8B", "LLaMA-7B")) + (
        "BERT counts include the pooler (as released); the pre-training heads (MLM and NSP) add "
        + " and ".join(f"{human_count(bert_with_pretraining_heads(REAL_MODELS[k].hf) - REAL_MODELS[k].total)} to "
                       f"{k}" for k in ("BERT-base", "BERT-large")) + ".",
    )
    return CourseTable("BERT, Qwen, LLaMA and GPT-3", "预训练 (LLM 的参数规模)", columns, rows, tuple(checks),
                       remarks)


def _missing_columns_remark(m: RealModel) -> str:
    cfg, b = m.cfg, m.breakdown
    guess = approx_params(cfg)
    return (f"{m.key}: layers, hidden size and heads are not enough to get the size. The shortcut 12·L·d² + V·d "
            f"gives {human_count(guess)} instead of {human_count(b.total)}: it misses the untied output layer "
            f"({human_count(b.lm_head)}) and assumes d_ff = 4·d, while this SwiGLU FFN has three matrices of width "
            f"d_ff = {cfg.d_ff}. The table needs the vocabulary ({cfg.vocab_size:,}), d_ff and whether the head "
            "is tied.")


COURSE_TABLES: tuple[CourseTable, ...] = (_gpt_table(), _bert_llama_table())


# ---- the other mistakes of the notes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class NotesError:
    section: str  # the heading of the notes it sits under
    quote: str  # verbatim from the notes
    correction: str
    source: str


_GPT1_RELEASE, _CHATGPT_RELEASE = (2018, 6), (2022, 11)  # (year, month): GPT-1 blog post, ChatGPT launch


def _years_between(start: tuple[int, int], end: tuple[int, int]) -> float:
    return (end[0] - start[0]) + (end[1] - start[1]) / 12


def _notes_errors() -> tuple[NotesError, ...]:
    groups = norm_placements()
    post, pre_ln, pre_rms = groups[("post", "layernorm")], groups[("pre", "layernorm")], groups[("pre", "rmsnorm")]
    years = _years_between(_GPT1_RELEASE, _CHATGPT_RELEASE)
    return (
        NotesError("预训练任务——CLM", "因果语言模型，Casual Language Model",
                   "Causal Language Model: causal as in cause and effect, each token is predicted from the tokens "
                   "before it only. 'Casual' is a typo (the pre-training section spells it right: Causal Language "
                   "Model，CLM).", "Radford et al. 2018, Section 3.1"),
        NotesError("预训练任务——CLM", "N-gram 语言模型是基于前 N 个 token 来预测下一个 token",
                   "An N-gram model predicts the next token from the previous N−1 tokens: P(w_t | w_{t−N+1} … "
                   "w_{t−1}). A bigram (N = 2) looks at one token, a trigram at two.",
                   "Jurafsky & Martin, Speech and Language Processing, Chapter 3"),
        NotesError("GPT", "GPT，即 Generative Pre-Training Language Model",
                   "GPT stands for Generative Pre-trained Transformer: the T is the Transformer decoder it is built "
                   "from. 'Generative Pre-Training' is the title of the GPT-1 paper, not the name of the model.",
                   "Radford et al. 2018, 'Improving Language Understanding by Generative Pre-Training'"),
        NotesError("GPT 系列模型的发展", "OpenAI 通过数十年的努力证明了其思路的正确性",
                   f"Years, not decades: GPT-1 came out in {_GPT1_RELEASE[0]} and ChatGPT in {_CHATGPT_RELEASE[0]}, "
                   f"about {years:.0f} years later.", "OpenAI, June 2018 (GPT-1) and November 2022 (ChatGPT)"),
        NotesError("预训练", "在 64块 TPU 上训练了 4天",
                   "BERT-base trained on 4 Cloud TPUs, 16 TPU chips in all; the 64 chips (16 Cloud TPUs) were "
                   "BERT-large's. Each took 4 days.", "Devlin et al. 2019, Appendix A.2"),
        NotesError("Layer Normalization", "LayerNorm 通常放在残差连接之后",
                   "That is post-LN, the layout of " + ", ".join(post) + ". Large language models are pre-LN: "
                   "the norm goes inside each sub-layer's branch, x + Sublayer(Norm(x)), the residual path is "
                   "never normalised, and one final norm follows the last layer (" + ", ".join(pre_ln)
                   + " with LayerNorm; " + ", ".join(pre_rms) + " with RMSNorm). Pre-LN trains stably "
                   "without the learning-rate warm-up post-LN needs.",
                   "Radford et al. 2019, Section 2.3; Xiong et al. 2020; Zhang & Sennrich 2019 (RMSNorm)"),
    )


NOTES_ERRORS: tuple[NotesError, ...] = _notes_errors()

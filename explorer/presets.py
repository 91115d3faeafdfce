"""Real model families as they were published, for sizing (never instantiated by the app).

Each preset is written the way its ``config.json`` reads (or, for GPT-3, which has none, from Table 2.1 of
Brown et al. 2020 in GPT-2's layout, which the paper says it reuses). ``published`` is the figure the paper or
model card gives; ``why`` says why the exact count differs from it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from .config import PRESETS, ModelConfig
from .i18n import Msg
from .models.hf_config import import_hf_config
from .sizing import ParamBreakdown, count_params, human_count


@dataclass(frozen=True)
class RealModel:
    key: str
    family: str
    hf: dict  # config.json fields (model_type included)
    published: float  # parameters, as the paper / model card states them
    published_label: str  # as written there: "117M", "6.7B"
    source: str
    why: str  # why the exact count differs from the published one (a Msg)
    pooler: bool = False  # count BERT's pooler, as in the released checkpoint
    hf_class: str = "AutoModelForCausalLM"  # the transformers class whose parameters() the count matches
    train_tokens: float | None = None  # tokens seen in pre-training, from the paper

    @cached_property
    def cfg(self) -> ModelConfig:
        return import_hf_config(self.hf).cfg

    @cached_property
    def breakdown(self) -> ParamBreakdown:
        return count_params(self.cfg, pooler=self.pooler)

    @property
    def total(self) -> int:
        return self.breakdown.total

    @property
    def error_percent(self) -> float:
        """How far the published figure is from the exact count, in percent of the exact count."""
        return 100.0 * (self.published - self.total) / self.total


def _gpt2(n_layer, d, n_head, ctx=1024, vocab=50257) -> dict:
    return {"model_type": "gpt2", "n_layer": n_layer, "n_embd": d, "n_head": n_head, "n_positions": ctx,
            "vocab_size": vocab}


def _llama(n_layer, d, n_head, d_ff, *, kv=None, vocab=32000, ctx=2048, theta=10000.0, eps=1e-6, tied=False,
           model_type="llama") -> dict:
    return {"model_type": model_type, "num_hidden_layers": n_layer, "hidden_size": d, "num_attention_heads": n_head,
            "num_key_value_heads": kv or n_head, "intermediate_size": d_ff, "vocab_size": vocab,
            "max_position_embeddings": ctx, "rope_theta": theta, "rms_norm_eps": eps, "tie_word_embeddings": tied}


def _bert(n_layer, d, n_head, d_ff) -> dict:
    return {"model_type": "bert", "num_hidden_layers": n_layer, "hidden_size": d, "num_attention_heads": n_head,
            "intermediate_size": d_ff, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}


# The GPT-2 paper's sizes equal the count with GPT-1's vocabulary instead of GPT-2's: the gap is the difference
# times d_model every time (see gpt2_paper_vocab_check).
_GPT1_VOCAB, _GPT2_VOCAB = 40478, 50257
_GPT2_WHY = Msg("sizing.why.gpt2", v1=_GPT1_VOCAB, v2=_GPT2_VOCAB, extra=_GPT2_VOCAB - _GPT1_VOCAB)
_GPT3_SRC = "Brown et al. 2020, Table 2.1"
_GPT3_WHY = Msg("sizing.why.gpt3")
_GPT3_TOKENS = 300e9  # every GPT-3 size saw 300B tokens (Brown et al. 2020, Table 2.2)


def _gpt2_model(key: str, n_layer: int, d: int, n_head: int, published: float, label: str) -> RealModel:
    return RealModel(key, "GPT", _gpt2(n_layer, d, n_head), published, label, "Radford et al. 2019, Table 2",
                     _GPT2_WHY, hf_class="GPT2LMHeadModel")


def _gpt3_model(size: str, n_layer: int, d: int, n_head: int, published: float, label: str, why: str = _GPT3_WHY
                ) -> RealModel:
    return RealModel(f"GPT-3 {size}", "GPT-3", _gpt2(n_layer, d, n_head, 2048), published, label, _GPT3_SRC, why,
                     hf_class="GPT2LMHeadModel", train_tokens=_GPT3_TOKENS)
def _llama_why(size: str) -> Msg:
    return Msg("sizing.why.llama", size=size)
_LLAMA_65B = _llama(80, 8192, 64, 22016)
_LLAMA2_7B = _llama(32, 4096, 32, 11008, ctx=4096, eps=1e-5)
_LLAMA2_70B = _llama(80, 8192, 64, 28672, kv=8, ctx=4096, eps=1e-5)
_LLAMA3_8B = _llama(32, 4096, 32, 14336, kv=8, vocab=128256, ctx=8192, theta=500000.0, eps=1e-5)
_LLAMA3_70B = _llama(80, 8192, 64, 28672, kv=8, vocab=128256, ctx=8192, theta=500000.0, eps=1e-5)
_QWEN_1_8B = {"model_type": "qwen", "num_hidden_layers": 24, "hidden_size": 2048, "num_attention_heads": 16,
              "kv_channels": 128, "intermediate_size": 11008, "vocab_size": 151936, "seq_length": 8192,
              "no_bias": True, "tie_word_embeddings": False}
_SMOLLM2 = _llama(30, 576, 9, 1536, kv=3, vocab=49152, ctx=8192, theta=100000.0, eps=1e-5, tied=True)
_MINILM = {"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 12,
           "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
_BERT_LARGE = _bert(24, 1024, 16, 4096)


def _counted(hf: dict, **heads) -> ParamBreakdown:
    return count_params(import_hf_config(hf).cfg, **heads)


def _vocab_params(b: ParamBreakdown) -> int:
    return b.token_embedding + b.lm_head


def bert_with_pretraining_heads(hf: dict) -> int:
    """BertForPreTraining: the released BertModel (pooler included), the MLM head, and NSP's d x 2 + 2 classifier."""
    d = import_hf_config(hf).cfg.d_model
    return _counted(hf, pooler=True, mlm_head=True).total + 2 * d + 2


@dataclass(frozen=True)
class LayoutChange:
    """How many parameters a change of layout moves, group by group (after minus before)."""

    before: ModelConfig
    after: ModelConfig
    attention: int
    ffn: int
    total: int


def layout_change(before: ModelConfig, after: ModelConfig) -> LayoutChange:
    b, a = count_params(before), count_params(after)
    return LayoutChange(before, after, a.attention - b.attention, a.ffn - b.ffn, a.total - b.total)


def _billions(n: float) -> str:
    # Two decimals: the two changes differ by 3.7B, which one decimal of a 70B model would still show, but the
    # savings (9.40B) and the addition (13.09B) are quoted to the same precision as the totals they explain.
    return f"{n / 1e9:.2f}B"


def _llama2_70b_why() -> str:
    """Why Llama-2-70B is bigger than LLaMA-65B although GQA shrinks its attention: every number is counted."""
    old, new = import_hf_config(_LLAMA_65B).cfg, import_hf_config(_LLAMA2_70B).cfg
    ch = layout_change(old, new)
    total_old, total_new = count_params(old).total, count_params(new).total
    return Msg("sizing.why.llama2_70b", total_new=_billions(total_new), n_layer=new.n_layer, d_model=new.d_model,
               n_kv_head=new.n_kv_head, n_head=new.n_head, groups=new.n_head // new.n_kv_head,
               saved=_billions(-ch.attention), d_ff_old=old.d_ff, d_ff_new=new.d_ff, added=_billions(ch.ffn),
               net=_billions(ch.total), total_old=_billions(total_old))

REAL_MODELS: dict[str, RealModel] = {m.key: m for m in (
    RealModel("GPT-1", "GPT", {"model_type": "openai-gpt", "n_layer": 12, "n_embd": 768, "n_head": 12,
                                "n_positions": 512, "vocab_size": 40478},
              117e6, "117M", "Radford et al. 2018; size from the GPT-2 paper, Table 2",
              Msg("sizing.why.gpt1"),
              hf_class="OpenAIGPTLMHeadModel", train_tokens=None),
    _gpt2_model("GPT-2 small", 12, 768, 12, 117e6, "117M"),
    _gpt2_model("GPT-2 medium", 24, 1024, 16, 345e6, "345M"),
    _gpt2_model("GPT-2 large", 36, 1280, 20, 762e6, "762M"),
    _gpt2_model("GPT-2 XL", 48, 1600, 25, 1542e6, "1542M"),
    _gpt3_model("Small", 12, 768, 12, 125e6, "125M"),
    _gpt3_model("Medium", 24, 1024, 16, 350e6, "350M"),
    _gpt3_model("Large", 24, 1536, 16, 760e6, "760M"),
    _gpt3_model("XL", 24, 2048, 16, 1.3e9, "1.3B",
                Msg("sizing.why.gpt3_xl")),
    _gpt3_model("2.7B", 32, 2560, 32, 2.7e9, "2.7B"),
    _gpt3_model("6.7B", 32, 4096, 32, 6.7e9, "6.7B"),
    _gpt3_model("13B", 40, 5120, 40, 13.0e9, "13.0B",
                Msg("sizing.why.gpt3_13b")),
    _gpt3_model("175B", 96, 12288, 96, 175e9, "175B"),
    RealModel("BERT-base", "BERT", _bert(12, 768, 12, 3072), 110e6, "110M", "Devlin et al. 2019, Section 3",
              Msg("sizing.why.bert_base"), pooler=True, hf_class="AutoModel", train_tokens=3.3e9),
    RealModel("BERT-large", "BERT", _BERT_LARGE, 340e6, "340M", "Devlin et al. 2019, Section 3",
              Msg("sizing.why.bert_large", total=human_count(bert_with_pretraining_heads(_BERT_LARGE))),
              pooler=True, hf_class="AutoModel", train_tokens=3.3e9),
    RealModel("LLaMA-7B", "LLaMA", _llama(32, 4096, 32, 11008), 6.7e9, "6.7B", "Touvron et al. 2023a, Table 2",
              _llama_why("6.7B"), train_tokens=1.0e12),
    RealModel("LLaMA-13B", "LLaMA", _llama(40, 5120, 40, 13824), 13.0e9, "13.0B", "Touvron et al. 2023a, Table 2",
              _llama_why("13.0B"), train_tokens=1.0e12),
    RealModel("LLaMA-33B", "LLaMA", _llama(60, 6656, 52, 17920), 32.5e9, "32.5B", "Touvron et al. 2023a, Table 2",
              _llama_why("32.5B"), train_tokens=1.4e12),
    RealModel("LLaMA-65B", "LLaMA", _LLAMA_65B, 65.2e9, "65.2B", "Touvron et al. 2023a, Table 2",
              _llama_why("65.2B"), train_tokens=1.4e12),
    RealModel("Llama-2-7B", "LLaMA", _LLAMA2_7B, 7e9, "7B", "Touvron et al. 2023b, Table 1",
              Msg("sizing.why.llama2_7b", total=_billions(_counted(_LLAMA2_7B).total)), train_tokens=2.0e12),
    RealModel("Llama-2-70B", "LLaMA", _LLAMA2_70B, 70e9, "70B", "Touvron et al. 2023b, Table 1", _llama2_70b_why(),
              train_tokens=2.0e12),
    RealModel("Llama-3-8B", "LLaMA", _LLAMA3_8B, 8e9, "8B", "Meta 2024, Llama 3 model card",
              Msg("sizing.why.llama3_8b", vocab=_LLAMA3_8B["vocab_size"],
                  added=_billions(_vocab_params(_counted(_LLAMA3_8B)) - _vocab_params(_counted(_LLAMA2_7B)))),
              train_tokens=15e12),
    RealModel("Llama-3-70B", "LLaMA", _LLAMA3_70B, 70e9, "70B", "Meta 2024, Llama 3 model card",
              Msg("sizing.why.rounded_down", total=human_count(_counted(_LLAMA3_70B).total)), train_tokens=15e12),
    RealModel("Qwen-1.8B", "Qwen", _QWEN_1_8B, 1.8e9, "1.8B", "Bai et al. 2023 (Qwen Technical Report), Table 1",
              Msg("sizing.why.qwen", vocab=_QWEN_1_8B["vocab_size"], in_vocab=_billions(_vocab_params(_counted(_QWEN_1_8B))),
                  total=_billions(_counted(_QWEN_1_8B).total)),
              hf_class="Qwen2ForCausalLM", train_tokens=2.2e12),
    RealModel("SmolLM2-135M", "LLaMA", _SMOLLM2, 135e6, "135M", "Hugging Face 2024, model card",
              Msg("sizing.why.smollm2", embedding=human_count(_counted(_SMOLLM2).token_embedding),
                  total=human_count(_counted(_SMOLLM2).total)),
              train_tokens=2e12),
    RealModel("all-MiniLM-L6-v2", "BERT", _MINILM, 22.7e6, "22.7M", "sentence-transformers model card",
              Msg("sizing.why.minilm", embedding=human_count(_counted(_MINILM).token_embedding)),
              pooler=True, hf_class="AutoModel"),
)}


def hf_model_type(model: RealModel) -> str:
    """The model_type transformers should build for the test (Qwen-1 code is not in transformers; Qwen2 has the
    same parameter layout)."""
    return "qwen2" if model.hf["model_type"] == "qwen" else model.hf["model_type"]


def gpt2_paper_vocab_check(model: RealModel) -> int:
    """The exact count of a GPT-2 preset as if its vocabulary were GPT-1's (40,478 tokens)."""
    return count_params(model.cfg.replace(vocab_size=40478)).total


# ---- facts the pages quote, computed from the presets ----------------------------------------------------------

SWIGLU_RULE = 8 / 3  # LLaMA-1: d_ff = 2/3 · 4d, so the three SwiGLU matrices hold the 8d² of a 4d two-matrix FFN
# LLaMA rounds d_ff up to a multiple of 256, which adds up to 256/4096 = 2.3% of 8/3 at d = 4096: a ratio within 3%
# of 8/3 follows the rule. Llama-2-70B and Llama-3 multiply 8/3·d by 1.3 before rounding (ffn_dim_multiplier in
# Meta's params.json) and land on exactly 3.5·d.
_SWIGLU_TOLERANCE = 0.03


def ffn_ratios() -> dict[str, float]:
    """d_ff / d_model of every SwiGLU preset."""
    return {k: m.cfg.d_ff / m.cfg.d_model for k, m in REAL_MODELS.items() if m.cfg.activation == "swiglu"}


def swiglu_ratio_caption() -> Msg:
    """The course's FFN against SwiGLU's, with the d_ff/d of every SwiGLU preset (not all of them are 8/3)."""
    ratios = ffn_ratios()
    near = {k: r for k, r in ratios.items() if abs(r / SWIGLU_RULE - 1) < _SWIGLU_TOLERANCE}
    wider: dict[float, list[str]] = {}
    for k, r in ratios.items():
        if k not in near:
            wider.setdefault(r, []).append(k)
    parts = [Msg("sizing.swiglu.rule", ratios=Msg.join(
        [Msg("sizing.swiglu.ratio_in", ratio=f"{r:.2f}", model=k) for k, r in near.items()], sep=", "))]
    for r, keys in sorted(wider.items()):
        models = Msg("sizing.swiglu.and_list", head=", ".join(keys[:-1]), last=keys[-1]) if len(keys) > 1 else keys[0]
        parts.append(Msg("sizing.swiglu.wider", models=models, ratio=f"{r:g}",
                         ratio2=f"{r:.2f}", per_layer=f"{3 * r:g}"))
    return Msg.join(parts, sep=" ")


_SIZE_SUFFIX = re.compile(r"[- ](small|medium|large|XL|Small|Medium|Large|base|\d+(\.\d+)?[MB])$")


def _lineage(key: str) -> str:
    """'GPT-2 XL' -> 'GPT-2', 'LLaMA-7B' -> 'LLaMA', 'Llama-2-70B' -> 'Llama-2': the model without its size."""
    return _SIZE_SUFFIX.sub("", key)


def norm_placements() -> dict[tuple[str, str], list[str]]:
    """(norm_position, norm) -> the models that use it, read from their configs, oldest first."""
    groups: dict[tuple[str, str], list[str]] = {("post", "layernorm"): [], ("pre", "layernorm"): [],
                                                ("pre", "rmsnorm"): []}
    original = PRESETS["original-transformer"]
    groups.setdefault((original.norm_position, original.norm), []).append("the original Transformer")
    for key, m in REAL_MODELS.items():
        names = groups.setdefault((m.cfg.norm_position, m.cfg.norm), [])
        if _lineage(key) not in names:
            names.append(_lineage(key))
    return groups

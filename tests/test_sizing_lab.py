"""The sizing lab's settings -> run -> outcome, without Streamlit: bad input gives an outcome with a sentence and no
numbers, each panel explains its own mistakes, and every number is checked against an independent formula."""
import dataclasses
import json

import pytest

from explorer.config import ModelConfig
from explorer.labs.sizing import (CONFIG_SOURCE, FIELDS_SOURCE, ModelSettings, SizingSettings, Summary, kv_head_label,
                                  preset_names, resolve_model, run)
from explorer.labs.sizing_panels import (CHINCHILLA, CUSTOM, PAPER, ComputeSettings, InferenceSettings, ScalingSettings,
                                         TrainingSettings, token_choices)
from explorer.presets import REAL_MODELS
from explorer.sizing import ENCODER_KEEPS_NO_KV_CACHE, GPUS, count_params
from explorer.viz.sizing import scaling_curves

BERT = ModelSettings(preset="BERT-base")


def _run(**changes):
    outcome = run(dataclasses.replace(SizingSettings(), **changes))
    assert outcome.ok, outcome.error
    return outcome.result


@pytest.mark.parametrize("model, words", [
    (ModelSettings(FIELDS_SOURCE, "BERT-base", (("n_head", 7), ("n_kv_head", 7))), "divisible"),
    (ModelSettings(FIELDS_SOURCE, "GPT-2 small", (("d_model", -768),)), "at least 1"),
    (ModelSettings(CONFIG_SOURCE, config_text='{"model_type": "gpt2", "n_layer": 12,'), "not valid JSON"),
    (ModelSettings(CONFIG_SOURCE, config_text=b"\x89PNG\r\n"), "UTF-8"),
    (ModelSettings(preset="GPT-4"), "Preset"),
    (ModelSettings(FIELDS_SOURCE, fields=(("window", 4),)), "window"),
    (ModelSettings(CONFIG_SOURCE, config_text=None), "config.json"),
])
def test_a_model_that_cannot_be_sized_gives_its_sentence_and_no_numbers(model, words):
    outcome = run(SizingSettings(model=model))
    assert outcome.result is None and outcome.fallback is None  # no other model's numbers under the student's input
    assert words in outcome.error
    assert resolve_model(model).error == outcome.error and resolve_model(model).result is None


def test_shared_settings_that_cannot_be_used_give_a_sentence():
    for changes, words in (({"gpu": "TPU v5"}, "GPU"), ({"compare": ("GPT-2 small", "GPT-5")}, "compare")):
        outcome = run(dataclasses.replace(SizingSettings(), **changes))
        assert outcome.result is None and words in outcome.error


def test_an_unchanged_preset_keeps_its_name_however_it_is_given():
    hf = json.dumps(REAL_MODELS["Llama-3-8B"].hf)
    for model in (ModelSettings(preset="Llama-3-8B"), ModelSettings(FIELDS_SOURCE, "Llama-3-8B", (("n_layer", 32),)),
                  ModelSettings(CONFIG_SOURCE, "Llama-3-8B", config_text=hf)):
        resolved = resolve_model(model).result
        assert resolved.label == "Llama-3-8B" and resolved.real is REAL_MODELS["Llama-3-8B"]
    edited = resolve_model(ModelSettings(FIELDS_SOURCE, "Llama-3-8B", (("n_layer", 31),))).result
    assert edited.label == "Llama-3-8B (edited)" and edited.real is None


def test_a_new_width_derives_d_head_unless_told_not_to():
    gpt2 = REAL_MODELS["GPT-2 small"].cfg
    fields = (("d_model", 1536), ("n_head", 12), ("d_head", gpt2.d_head))
    derived = resolve_model(ModelSettings(FIELDS_SOURCE, "GPT-2 small", fields)).result.cfg
    kept = resolve_model(ModelSettings(FIELDS_SOURCE, "GPT-2 small", fields, derive_head=False)).result.cfg
    assert derived.d_head == 1536 // 12 and kept.d_head == gpt2.d_head
    typed = resolve_model(ModelSettings(FIELDS_SOURCE, "GPT-2 small", fields[:2] + (("d_head", 96),))).result.cfg
    assert typed.d_head == 96  # a d_head the student typed is kept


@pytest.mark.parametrize("name", preset_names())
@pytest.mark.parametrize("pooler, mlm_head", [(False, False), (True, False), (True, True)])
def test_the_summary_is_always_complete(name, pooler, mlm_head):
    result = _run(model=ModelSettings(preset=name), pooler=pooler, mlm_head=mlm_head)
    s = result.summary
    assert isinstance(s, Summary)
    assert all(getattr(s, f.name) is not None for f in dataclasses.fields(s) if f.name != "published")
    cfg = result.model.cfg
    assert s.total == count_params(cfg, pooler=pooler, mlm_head=mlm_head).total
    assert s.approx == 12 * cfg.n_layer * cfg.d_model ** 2 + cfg.vocab_size * cfg.d_model
    assert s.total_text == f"{s.total:,}" and s.n_layer == cfg.n_layer
    real = REAL_MODELS.get(name)
    if real is None:
        assert s.published is None
    else:
        assert all(getattr(s.published, f.name) is not None for f in dataclasses.fields(s.published))
        assert s.published.label == real.published_label
        assert s.published.comparable == (pooler == real.pooler and not mlm_head)


def test_an_encoder_keeps_no_kv_cache_whatever_the_batch():
    for inference in (InferenceSettings(), InferenceSettings(batch=0)):
        memory = _run(model=BERT, inference=inference).inference
        assert memory.encoder and memory.kv_cache is None and memory.error is None
        assert memory.needed == dict(memory.weights)["bf16"]
    assert "no KV cache" in ENCODER_KEEPS_NO_KV_CACHE
    assert not _run().inference.encoder


def test_the_kv_cache_and_weights_follow_the_formula():
    cfg = REAL_MODELS["Llama-3-8B"].cfg
    memory = _run(model=ModelSettings(preset="Llama-3-8B"),
                  inference=InferenceSettings(batch=4, seq_len=8192, kv_dtype="fp32")).inference
    assert memory.kv_cache == 2 * cfg.n_layer * cfg.n_kv_head * cfg.d_head * 8192 * 4 * 4
    n = REAL_MODELS["Llama-3-8B"].total
    assert dict(memory.weights) == {"fp32": 4 * n, "bf16": 2 * n, "int8": n, "int4": n / 2}
    a100 = GPUS["NVIDIA A100 (80 GiB)"]["memory_gib"] * 2 ** 30
    assert memory.needed == 2 * n + memory.kv_cache and memory.gpus == -(-memory.needed // a100)


def test_a_panel_with_a_wrong_input_explains_it_and_leaves_the_others_alone():
    good = _run()
    bad_batch = _run(inference=InferenceSettings(batch=0))
    assert "batch" in bad_batch.inference.error and bad_batch.inference.kv_cache is None
    assert bad_batch.inference.weights == good.inference.weights
    bad_micro = _run(training=TrainingSettings(micro_batch=0))
    assert bad_micro.training.result is None and "batch" in bad_micro.training.error
    no_gpus = _run(compute=ComputeSettings(n_gpus=0))
    assert no_gpus.compute.result is None and "GPUs" in no_gpus.compute.error
    no_layers = _run(scaling=ScalingSettings(layers=()))
    assert no_layers.scaling.result is None and "layer count" in no_layers.scaling.error
    for bad in (bad_batch, bad_micro, no_gpus, no_layers):
        assert bad.summary == good.summary and bad.comparison == good.comparison
    assert bad_batch.training == good.training and bad_batch.compute == good.compute
    assert bad_micro.inference == good.inference and bad_micro.scaling == good.scaling


def test_training_memory_follows_zero():
    n = REAL_MODELS["LLaMA-7B"].total
    needs = _run(model=ModelSettings(preset="LLaMA-7B"), training=TrainingSettings(n_gpus=8, zero_stage=3)).training
    states = needs.result.memory.states
    # Rajbhandari et al. 2019, Figure 1: stage 3 splits all 16 bytes per parameter over the GPUs
    assert (states.weights, states.gradients, states.optimizer) == (2 * n / 8, 2 * n / 8, 12 * n / 8)
    assert [s.total for s in needs.result.by_stage] == [16 * n, 4 * n + 12 * n / 8, 2 * n + 14 * n / 8, 16 * n / 8]


def test_compute_follows_six_n_d():
    n = REAL_MODELS["GPT-3 175B"].total
    model = ModelSettings(preset="GPT-3 175B")
    peak = GPUS["NVIDIA A100 (80 GiB)"]["tflops"] * 1e12
    for tokens, expected in ((CHINCHILLA, 20 * n), (PAPER, 300e9), (CUSTOM, 42e9)):
        spent = _run(model=model, compute=ComputeSettings(tokens, 42.0, 512, mfu=0.5)).compute.result
        # 6·N·D in float64 rounds twice (relative error at most 2·2^-53), the integer product not at all
        assert spent.tokens == expected and spent.flops == pytest.approx(6 * n * expected, rel=1e-15)
        # a handful of float64 products and one division on each side: a few ulps apart
        assert spent.seconds == pytest.approx(6 * n * expected / (512 * peak * 0.5), rel=1e-14)
        assert spent.hardware == "512 × NVIDIA A100"


def test_the_paper_token_choice_is_only_offered_where_a_paper_gives_it():
    assert PAPER in token_choices(REAL_MODELS["GPT-3 175B"]) and PAPER not in token_choices(None)
    assert PAPER not in token_choices(REAL_MODELS["GPT-2 small"])  # no published token count
    outcome = _run(model=ModelSettings(preset="GPT-2 small"), compute=ComputeSettings(PAPER)).compute
    assert outcome.result is None and "Chinchilla" in outcome.error
    custom = _run(compute=ComputeSettings(CUSTOM, -5.0)).compute
    assert custom.result is None and "training tokens" in custom.error


def test_scaling_curves_count_the_resized_model():
    curves = _run(scaling=ScalingSettings((512, 2048), (24, 6))).scaling.result
    assert [c.n_layer for c in curves] == [6, 24]
    gpt2 = REAL_MODELS["GPT-2 small"].cfg
    for curve in curves:
        assert curve.d_models == (512, 768, 1024, 1536, 2048)
        # GPT-2's layout at another size: 64-wide heads, d_ff = 4·d, its vocabulary and context
        expected = [count_params(ModelConfig(n_layer=curve.n_layer, d_model=d, n_head=d // 64, vocab_size=50257,
                                             max_seq_len=gpt2.max_seq_len)).total for d in curve.d_models]
        assert list(curve.exact) == expected
        fig_exact = next(t for t in scaling_curves(curves).data if t.name == f"{curve.n_layer} layers (exact)")
        assert list(fig_exact.y) == expected


def test_gqa_keeps_its_group_size_when_resized():
    curve = _run(model=ModelSettings(preset="Llama-3-8B"), scaling=ScalingSettings((1024, 1024), (32,))
                 ).scaling.result[0]
    cfg = REAL_MODELS["Llama-3-8B"].cfg  # 32 query heads share 8 K/V heads: groups of 4
    resized = ModelConfig(**{**cfg.to_dict(), "d_model": 1024, "n_head": 16, "n_kv_head": 4, "d_head": 64,
                             "d_ff": round(cfg.d_ff / cfg.d_model * 1024)})
    assert curve.exact == (count_params(resized).total,)


def test_the_kv_head_label_names_the_attention():
    assert [kv_head_label(8, n) for n in (8, 2, 1)] == ["8 · MHA", "2 · GQA", "1 · MQA"]
